"""Export a trained adapter or model: the PEFT adapter, a merged model, or GGUF.

Every export is written into a hidden staging folder beside its destination and renamed into
place at the end, so a cancelled or crashed export never leaves a half-written folder under the
name the user asked for. Each one carries ``export.json`` (what was exported, from where, and the
size and SHA-256 of every file: what ``verify`` checks first) and a model card ``README.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from codetune_studio import __version__
from codetune_studio.core.errors import ConfigError, ExportError

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.core.cancel import CancelToken

__all__ = [
    "ADAPTER_CONFIG",
    "MANIFEST",
    "ExportDtype",
    "ExportFormat",
    "ExportRequest",
    "ExportResult",
    "GgufType",
    "ModelCard",
    "SourceArtifact",
    "export_model",
    "inspect_source",
    "merge_memory_bytes",
    "read_manifest",
]

logger = logging.getLogger(__name__)

ExportFormat = Literal["adapter", "merged", "gguf"]
ExportDtype = Literal["auto", "bf16", "fp16", "fp32"]
GgufType = Literal["f16", "q8_0"]

MANIFEST: Final = "export.json"
ADAPTER_CONFIG: Final = "adapter_config.json"
CARD: Final = "README.md"
#: Files of a tokenizer folder worth carrying along (whichever of them exist).
_TOKENIZER_FILES: Final = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
_GENERATION_CONFIG: Final = "generation_config.json"
_BYTES_PER_PARAM: Final = {"fp32": 4, "bf16": 2, "fp16": 2}
#: Headroom over the raw weights a merge needs (the module objects, one tensor being cast).
_MERGE_OVERHEAD: Final = 1.25
_HASH_CHUNK: Final = 1 << 20
DEFAULT_SHARD_SIZE: Final = "2GB"


@dataclass(frozen=True, slots=True)
class SourceArtifact:
    """What a run left behind, as the exporter sees it.

    Attributes:
        path: The folder (a PEFT adapter or a full model).
        kind: ``peft`` for an adapter, ``full`` for a whole model.
        peft_type: PEFT's name for the method (``LORA``, ``PROMPT_TUNING``...), for an adapter.
        base_model: The base model folder or hub id an adapter applies to.
        model_dir: Where the config and weights of the whole model are: the base for an
            adapter, the folder itself for a full model.
    """

    path: Path
    kind: Literal["peft", "full"]
    peft_type: str | None
    base_model: str | None
    model_dir: Path

    @property
    def mergeable(self) -> bool:
        """Whether the weights can be folded into the base (LoRA family, or already full)."""
        return self.kind == "full" or self.peft_type in {"LORA", "DORA", "ADALORA", "IA3"}


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What the model card says about where an export came from.

    Attributes:
        title: The card's heading.
        base_model: The base model id or path.
        dataset_fingerprint: The training data's fingerprint, when known.
        recipe: The training recipe, when known.
        metrics: The run's last value of each metric (eval results included).
        run_id: The run it came from.
        version_id: The model version it came from.
    """

    title: str
    base_model: str | None = None
    dataset_fingerprint: str | None = None
    recipe: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: int | None = None
    version_id: int | None = None


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """One export to make.

    Attributes:
        source: The adapter or model folder to export.
        out: The destination folder; must not exist or be empty.
        format: ``adapter``, ``merged`` or ``gguf``.
        dtype: Weight precision of a merged export (``auto``: the base model's own).
        gguf_type: ``f16`` or ``q8_0`` for GGUF.
        ollama: Also write an Ollama ``Modelfile`` (GGUF only).
        card: What the model card says.
        shard_size: Largest safetensors shard of a merged export (transformers' notation).
        available_memory: Bytes free for a merge; measured when ``None``.
    """

    source: Path
    out: Path
    format: ExportFormat = "adapter"
    dtype: ExportDtype = "auto"
    gguf_type: GgufType = "f16"
    ollama: bool = False
    card: ModelCard = field(default_factory=lambda: ModelCard(title="Exported model"))
    shard_size: str = DEFAULT_SHARD_SIZE
    available_memory: int | None = None


@dataclass(frozen=True, slots=True)
class ExportResult:
    """A finished export.

    Attributes:
        folder: Where it is.
        format: What was written.
        dtype: The weights' precision (``fp32``, ``bf16``, ``fp16``; the GGUF type for GGUF).
        files: Every file written, relative to ``folder``.
        total_bytes: Their total size.
        seconds: How long it took.
    """

    folder: Path
    format: ExportFormat
    dtype: str
    files: tuple[str, ...]
    total_bytes: int
    seconds: float


def inspect_source(folder: Path) -> SourceArtifact:
    """Say what kind of artifact ``folder`` holds.

    Raises:
        ConfigError: It is neither a PEFT adapter nor a model folder.
    """
    folder = Path(folder).expanduser().resolve()
    adapter_config = folder / ADAPTER_CONFIG
    if adapter_config.is_file():
        try:
            config = json.loads(adapter_config.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ConfigError(
                f"{adapter_config} is not readable JSON ({exc}); export the run's folder again"
            ) from None
        if not isinstance(config, dict):
            raise ConfigError(f"{adapter_config} is not a JSON object; export the run again")
        base = config.get("base_model_name_or_path")
        if not base:
            raise ConfigError(f"{adapter_config} names no base model (base_model_name_or_path)")
        peft_type = str(config.get("peft_type", "LORA")).upper()
        if peft_type == "LORA" and config.get("use_dora"):
            peft_type = "DORA"
        model_dir = Path(base).expanduser()
        return SourceArtifact(folder, "peft", peft_type, str(base), model_dir)
    if (folder / "config.json").is_file():
        return SourceArtifact(folder, "full", None, None, folder)
    raise ConfigError(
        f"{folder} holds neither a PEFT adapter ({ADAPTER_CONFIG}) nor a model (config.json); "
        "give a run id, v:VERSION or the folder a run wrote"
    )


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The export's ``export.json``, or ``None`` when ``folder`` is not an export."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def merge_memory_bytes(source: SourceArtifact) -> int:
    """Bytes of memory a merge needs: the whole model in float32, plus headroom.

    The merge runs in float32 whatever the export's precision (rounding once, at the end), so the
    estimate counts 4 bytes a parameter; the parameter count comes from the safetensors headers.
    """
    params = _parameter_count(source.model_dir)
    if source.kind == "peft":
        params += _parameter_count(source.path)
    return int(params * _BYTES_PER_PARAM["fp32"] * _MERGE_OVERHEAD)


def export_model(
    request: ExportRequest,
    *,
    progress: Callable[[str, float], None] | None = None,
    cancel: CancelToken | None = None,
) -> ExportResult:
    """Write one export atomically.

    Args:
        request: What to export, where, and how.
        progress: Called with a message and the fraction done.
        cancel: Checked between stages; a cancelled export leaves nothing behind.

    Returns:
        The finished export.

    Raises:
        ConfigError: The destination is not empty, or the request cannot be met (a merge of
            prompt tuning, an architecture GGUF cannot hold).
        ExportError: Writing failed, it would not fit in memory, or it was cancelled.
    """
    import time

    started = time.perf_counter()
    report = progress or (lambda _message, _fraction: None)
    source = inspect_source(request.source)
    out = Path(request.out).expanduser().resolve()
    _check_destination(out)
    _check_feasible(request, source)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        dtype = _write(request, source, staging, report, cancel)
        _check_cancel(cancel)
        report("writing the model card and manifest", 0.95)
        _write_card(staging, request, source, dtype)
        files = _write_manifest(staging, request, source, dtype)
        _check_cancel(cancel)
        if out.exists():
            out.rmdir()  # empty, checked above
        staging.rename(out)
    except OSError as exc:
        raise ExportError(f"Could not write the export to {out}: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    total = sum((out / name).stat().st_size for name in files)
    report("export written", 1.0)
    return ExportResult(
        out, request.format, dtype, tuple(files), total, time.perf_counter() - started
    )


# --- checks -----------------------------------------------------------------------------------


def _check_destination(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not empty; choose a new folder")


def _check_loadable(source: SourceArtifact) -> None:
    """The folders a merge loads are whole, ours and unpickled (a hub id is left to the hub)."""
    from codetune_studio.engine.model_folder import (
        PICKLE_HINT_CLI,
        check_adapter_folder,
        check_model_folder,
    )

    if source.kind == "peft":
        check_adapter_folder(source.path)
    if source.model_dir.is_dir():
        check_model_folder(source.model_dir, pickle_hint=PICKLE_HINT_CLI)
    elif source.kind == "full":
        raise ConfigError(f"{source.model_dir} is not a folder; give the model folder")


def _check_feasible(request: ExportRequest, source: SourceArtifact) -> None:
    if request.format == "adapter":
        if source.kind != "peft":
            raise ConfigError(
                f"{source.path} is a full model (full fine-tuning), not an adapter; "
                "export it with --format merged"
            )
        return
    if not source.mergeable:
        raise ConfigError(
            f"a {source.peft_type} adapter cannot be merged into its base model (prompt tuning "
            "adds virtual tokens, not weights); export it with --format adapter"
        )
    _check_loadable(source)
    needed = merge_memory_bytes(source)
    available = (
        request.available_memory if request.available_memory is not None else _available_memory()
    )
    if available is not None and needed > available:
        raise ExportError(
            f"merging needs about {_gib(needed)} of memory and {_gib(available)} is available; "
            "close other programs, or export the adapter instead (--format adapter)"
        )


def _check_cancel(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.cancelled:
        raise ExportError("export cancelled; nothing was written")


def _available_memory() -> int | None:
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None  # unknown: do not refuse


def _gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"


def _parameter_count(folder: Path) -> int:
    """Parameters in a folder's safetensors files, from their headers (nothing is loaded)."""
    import struct

    total = 0
    for path in Path(folder).glob("*.safetensors"):
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= int(dim)
            total += count
    return total


# --- writing ----------------------------------------------------------------------------------


def _write(
    request: ExportRequest,
    source: SourceArtifact,
    staging: Path,
    report: Callable[[str, float], None],
    cancel: CancelToken | None,
) -> str:
    """Write the weights and tokenizer into ``staging``; return the weights' precision."""
    if request.format == "adapter":
        report("copying the adapter", 0.2)
        _copy_adapter(source, staging)
        _copy_tokenizer(source, staging)
        return _adapter_dtype(source.path)
    report("loading and merging the model", 0.1)
    model, dtype_name = _merged_model(source, request.dtype)
    _check_cancel(cancel)
    if request.format == "merged":
        report("writing sharded safetensors", 0.5)
        model.save_pretrained(
            str(staging), safe_serialization=True, max_shard_size=request.shard_size
        )
        _copy_tokenizer(source, staging)
        _copy_generation_config(source, staging)
        return dtype_name
    from codetune_studio.engine.gguf_export import write_gguf

    report(f"writing GGUF ({request.gguf_type})", 0.5)
    tokenizer_dir = _tokenizer_dir(source)
    gguf_path = staging / gguf_file_name(request.gguf_type)
    write_gguf(model, tokenizer_dir, gguf_path, request.gguf_type, name=request.card.title)
    if request.ollama:
        from codetune_studio.engine.modelfile import write_modelfile

        report("writing the Ollama Modelfile", 0.9)
        write_modelfile(staging, gguf_path.name, tokenizer_dir)
    return request.gguf_type


def gguf_file_name(gguf_type: str) -> str:
    """The GGUF file's name inside an export folder."""
    return f"model-{gguf_type}.gguf"


def _merged_model(source: SourceArtifact, dtype: ExportDtype) -> tuple[Any, str]:
    """The whole model with the adapter folded in, cast to the export's precision."""
    import torch
    from transformers import AutoModelForCausalLM

    target = _resolve_dtype(source, dtype)
    if source.kind == "peft":
        from peft import PeftModel

        # Merge in float32 and round once at the end: merging in half precision adds the
        # adapter's delta to already-rounded weights and loses its small updates.
        base = AutoModelForCausalLM.from_pretrained(str(source.model_dir), dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(source.path)).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(source.path), dtype=torch.float32)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[target]
    model = model.to(torch_dtype)
    model.config.dtype = torch_dtype
    return model.eval(), target


def _resolve_dtype(source: SourceArtifact, dtype: ExportDtype) -> str:
    if dtype != "auto":
        return dtype
    config_path = source.model_dir / "config.json"
    stored = None
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        stored = config.get("dtype") or config.get("torch_dtype")
    return {"bfloat16": "bf16", "float16": "fp16"}.get(str(stored), "fp32")


def _adapter_dtype(folder: Path) -> str:
    import struct

    for path in folder.glob("*.safetensors"):
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, info in header.items():
            if name != "__metadata__":
                return {"F32": "fp32", "BF16": "bf16", "F16": "fp16"}.get(info["dtype"], "fp32")
    return "fp32"


def _copy_adapter(source: SourceArtifact, staging: Path) -> None:
    weights = list(source.path.glob("adapter_model*.safetensors"))
    if not weights:
        raise ConfigError(
            f"{source.path} has no adapter_model.safetensors; the studio exports safetensors only"
        )
    for path in [source.path / ADAPTER_CONFIG, *weights]:
        shutil.copy2(path, staging / path.name)
    _copy_generation_config(source, staging)


def _tokenizer_dir(source: SourceArtifact) -> Path:
    """Where the tokenizer is: runs save it beside the adapter; else the base's."""
    if (source.path / "tokenizer_config.json").is_file():
        return source.path
    return source.model_dir


def _copy_tokenizer(source: SourceArtifact, staging: Path) -> None:
    folder = _tokenizer_dir(source)
    copied = [name for name in _TOKENIZER_FILES if (folder / name).is_file()]
    if "tokenizer_config.json" not in copied:
        raise ConfigError(f"{folder} has no tokenizer (tokenizer_config.json)")
    for name in copied:
        shutil.copy2(folder / name, staging / name)


def _copy_generation_config(source: SourceArtifact, staging: Path) -> None:
    # The generation config carries the EOS ids that make generation stop: without it a loaded
    # model may run to max_new_tokens.
    for folder in (source.path, source.model_dir):
        path = folder / _GENERATION_CONFIG
        if path.is_file():
            shutil.copy2(path, staging / _GENERATION_CONFIG)
            return


def _write_manifest(
    staging: Path, request: ExportRequest, source: SourceArtifact, dtype: str
) -> list[str]:
    files = sorted(str(path.relative_to(staging)) for path in staging.rglob("*") if path.is_file())
    manifest = {
        "schema_version": 1,
        "format": request.format,
        "dtype": dtype,
        "gguf_type": request.gguf_type if request.format == "gguf" else None,
        "ollama": request.ollama and request.format == "gguf",
        "source": {
            "path": str(source.path),
            "kind": source.kind,
            "peft_type": source.peft_type,
            "base_model": source.base_model,
            "model_dir": str(source.model_dir),
        },
        "studio_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {
            name: {"size": (staging / name).stat().st_size, "sha256": _sha256(staging / name)}
            for name in files
        },
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return [*files, MANIFEST]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_card(staging: Path, request: ExportRequest, source: SourceArtifact, dtype: str) -> None:
    card = request.card
    base = card.base_model or source.base_model or str(source.path)
    # Only a hub id (owner/name) goes in the metadata: the Hub checks that base_model exists.
    is_hub_id = base.count("/") == 1 and not Path(base).expanduser().exists()
    front = [f"base_model: {json.dumps(base)}"] if is_hub_id else []
    lines = [
        "---",
        *front,
        "library_name: " + ("peft" if request.format == "adapter" else "transformers"),
        "tags: [codetune-studio" + (", gguf]" if request.format == "gguf" else "]"),
        "---",
        "",
        f"# {card.title}",
        "",
        f"Exported by CodeTune Studio {__version__} as **{request.format}** ({dtype}).",
        "",
        "| | |",
        "|---|---|",
        f"| Base model | `{base}` |",
        f"| Base weights used | `{source.model_dir}` |",
        f"| Method | {source.peft_type or 'full fine-tuning'} |",
        f"| Dataset fingerprint | `{card.dataset_fingerprint or 'unknown'}` |",
    ]
    if card.run_id is not None:
        lines.append(f"| Run | {card.run_id} |")
    if card.version_id is not None:
        lines.append(f"| Model version | {card.version_id} |")
    lines.append("")
    if card.metrics:
        lines += ["## Metrics (last logged value)", "", "| Metric | Value |", "|---|---|"]
        lines += [f"| {name} | {value:.6g} |" for name, value in sorted(card.metrics.items())]
        lines.append("")
    if card.recipe:
        lines += ["## Recipe", "", "```json", json.dumps(card.recipe, indent=2), "```", ""]
    lines += _usage_lines(request)
    (staging / CARD).write_text("\n".join(lines), encoding="utf-8")


def _usage_lines(request: ExportRequest) -> list[str]:
    if request.format == "gguf":
        usage = [
            f"llama-cli -m {gguf_file_name(request.gguf_type)} -cnv",
            *(["ollama create my-model -f Modelfile"] if request.ollama else []),
        ]
    elif request.format == "merged":
        usage = [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "model = AutoModelForCausalLM.from_pretrained('PATH')",
            "tokenizer = AutoTokenizer.from_pretrained('PATH')",
        ]
    else:
        usage = [
            "from peft import AutoPeftModelForCausalLM",
            "model = AutoPeftModelForCausalLM.from_pretrained('PATH')",
        ]
    fence = "```" + ("sh" if request.format == "gguf" else "python")
    return ["## Use", "", fence, *usage, "```", ""]
