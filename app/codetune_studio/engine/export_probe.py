"""The export checker's child process: loads artifacts with plain libraries only.

This module is run as a fresh process (``python -m codetune_studio.engine.export_probe MODE``,
through ``python_module_command`` so that the frozen build runs it too) and imports nothing from
the studio: what it proves is that ``transformers``, ``peft``, ``safetensors`` and ``gguf`` alone
can load an export, which is all a user's own scripts will have. Its package ``__init__`` files
hold only docstrings and a version string; the ``artifact`` mode reports any studio module that
got loaded anyway, and the caller fails the check if there is one.

Modes:

``reference``
    Loads the source (a PEFT adapter on its base, or a full model) in float32, the way the studio
    holds it, greedily continues a few fixed prompts and saves the token ids and the logits at
    every position.
``artifact``
    Checks an export's files (present, sizes as written), loads it (adapter on its base, or the
    merged model), runs the reference's token ids through it and compares: the greedy tokens must
    match (except where the reference's top two logits are closer than the tolerance) and the
    largest absolute logit difference must stay under the tolerance.
``weights``
    Saves the source's merged float32 weights, the reference for a GGUF check.
``gguf``
    Reads a GGUF file back with ``gguf``'s reader and compares every tensor (after undoing the
    layout changes the format applies, dequantized for Q8_0) with the merged weights, and the
    metadata with the source's config and tokenizer.

Each mode writes a JSON report (``--report``): ``{"ok": bool, "checks": [{"name", "ok",
"detail"}], ...}``; the exit status is 0 when the mode ran (whatever the verdict), 3 when it
could not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

# The export's own record of itself; written by the exporter, read here as plain JSON.
MANIFEST = "export.json"
ADAPTER_CONFIG = "adapter_config.json"
_HASH_CHUNK = 1 << 20


class _Report:
    """Collects named checks; the verdict is that all of them passed."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        return bool(ok)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check["ok"] for check in self.checks)

    def write(self, path: Path) -> None:
        data = {"ok": self.ok, "checks": self.checks, **self.extra}
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# --- loading ----------------------------------------------------------------------------------


def _torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _load_causal_lm(folder: Path, dtype: Any) -> Any:
    """Load a PEFT adapter on its base, or a full model, with plain transformers/peft."""
    from transformers import AutoModelForCausalLM

    adapter_config = folder / ADAPTER_CONFIG
    if adapter_config.is_file():
        from peft import PeftModel

        base_path = json.loads(adapter_config.read_text(encoding="utf-8"))[
            "base_model_name_or_path"
        ]
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
        model: Any = PeftModel.from_pretrained(base, str(folder))
    else:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
    model.eval()
    return model


def _prompt_ids(tokenizer: Any, prompts: list[dict[str, str]]) -> list[list[int]]:
    ids: list[list[int]] = []
    for prompt in prompts:
        if prompt["kind"] == "chat":
            messages = [{"role": "user", "content": prompt["text"]}]
            rendered = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            ids.append(list(tokenizer(rendered, add_special_tokens=False)["input_ids"]))
        else:
            ids.append(list(tokenizer(prompt["text"])["input_ids"]))
    return ids


def _logits(model: Any, ids: list[int]) -> Any:
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], dtype=torch.long))
    return out.logits[0].float().numpy()


def _greedy(model: Any, ids: list[int], new_tokens: int, eos: int | None) -> list[int]:
    sequence = list(ids)
    for _ in range(new_tokens):
        nxt = int(_logits(model, sequence)[-1].argmax())
        sequence.append(nxt)
        if eos is not None and nxt == eos:
            break
    return sequence


# --- modes ------------------------------------------------------------------------------------


def _mode_reference(args: argparse.Namespace) -> _Report:
    import numpy as np
    from transformers import AutoTokenizer

    source = Path(args.source)
    prompts = json.loads(Path(args.prompts).read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = _load_causal_lm(source, _torch_dtype("fp32"))
    tensors: dict[str, Any] = {}
    for index, ids in enumerate(_prompt_ids(tokenizer, prompts)):
        sequence = _greedy(model, ids, args.new_tokens, tokenizer.eos_token_id)
        tensors[f"ids.{index}"] = np.asarray(sequence, dtype=np.int64)
        tensors[f"prompt_len.{index}"] = np.asarray([len(ids)], dtype=np.int64)
        tensors[f"logits.{index}"] = _logits(model, sequence)
    _save_atomically(tensors, args.out, {"prompts": json.dumps(prompts)})
    report = _Report()
    report.add("reference", True, f"{len(prompts)} prompts from {source}")
    return report


def _save_atomically(tensors: dict[str, Any], out: str, metadata: dict[str, str] | None) -> None:
    """Save then rename: a reference may be cached, so a killed child must leave none."""
    from safetensors.numpy import save_file

    partial = f"{out}.partial"
    save_file(tensors, partial, metadata=metadata)
    Path(partial).replace(out)


def _file_checks(folder: Path, report: _Report) -> bool:
    """Every file the manifest lists is there, with its size and content as written."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return report.add("manifest", False, f"{manifest_path} is missing: not an export")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    problems: list[str] = []
    for name, info in sorted(manifest.get("files", {}).items()):
        path = folder / name
        if not path.is_file():
            kind = "tokenizer file" if "token" in name or "chat_template" in name else "file"
            problems.append(f"missing {kind} {name}")
            continue
        size = path.stat().st_size
        if size != info["size"]:
            problems.append(f"{name} is truncated or changed: {size} bytes, {info['size']} written")
        elif _sha256(path) != info["sha256"]:
            problems.append(f"{name} changed since export (sha256 differs)")
    detail = "; ".join(problems) or f"{len(manifest.get('files', {}))} files as written"
    return report.add("files", not problems, detail)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mode_artifact(args: argparse.Namespace) -> _Report:
    from safetensors import safe_open
    from transformers import AutoTokenizer

    report = _Report()
    folder = Path(args.export)
    # Files first, but go on loading either way: the load's own error says more about a
    # damaged file than a size mismatch does.
    _file_checks(folder, report)
    with safe_open(args.reference, "np") as ref:
        prompts = json.loads((ref.metadata() or {})["prompts"])
        reference = {key: ref.get_tensor(key) for key in ref.keys()}  # noqa: SIM118
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = _load_causal_lm(folder, "auto")
    except Exception as exc:  # noqa: BLE001 - any load failure is the verdict, with its reason
        report.add("load", False, f"cannot load {folder}: {type(exc).__name__}: {exc}")
        return report
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    report.add("load", True, f"loaded with transformers/peft as {dtype}")
    _compare_tokenizer(tokenizer, prompts, reference, report)
    _compare_logits(model, reference, len(prompts), args.tolerance, report)
    report.extra["studio_modules"] = sorted(
        name for name in sys.modules if name.startswith("codetune_studio.") and _has_code(name)
    )
    return report


def _has_code(module_name: str) -> bool:
    # The packages on the way to this module (their __init__ files) are docstrings only.
    return module_name not in {"codetune_studio.engine", __name__, "codetune_studio.__main__"}


def _compare_tokenizer(
    tokenizer: Any, prompts: list[dict[str, str]], reference: dict[str, Any], report: _Report
) -> None:
    try:
        ours = _prompt_ids(tokenizer, prompts)
    except Exception as exc:  # noqa: BLE001 - e.g. no chat template: part of the verdict
        report.add("tokenizer", False, f"cannot tokenize the prompts: {exc}")
        return
    bad = [
        index
        for index, ids in enumerate(ours)
        if ids != reference[f"ids.{index}"][: int(reference[f"prompt_len.{index}"][0])].tolist()
    ]
    detail = (
        f"prompts {bad} tokenize differently (tokenizer or chat template differs)"
        if bad
        else f"{len(ours)} prompts tokenize the same (chat template included)"
    )
    report.add("tokenizer", not bad, detail)


def _compare_logits(
    model: Any, reference: dict[str, Any], count: int, tolerance: float, report: _Report
) -> None:
    import numpy as np

    worst = 0.0
    token_problems: list[str] = []
    for index in range(count):
        ids = reference[f"ids.{index}"].tolist()
        start = int(reference[f"prompt_len.{index}"][0])
        expected = reference[f"logits.{index}"]
        got = _logits(model, ids)
        worst = max(worst, float(np.abs(got - expected).max()))
        for pos in range(start - 1, len(ids) - 1):
            if int(got[pos].argmax()) == ids[pos + 1]:
                continue
            top2 = np.sort(expected[pos])[-2:]
            if float(top2[1] - top2[0]) >= tolerance:  # a near-tie may go either way
                token_problems.append(f"prompt {index} token {pos + 1 - start}")
    report.extra["max_abs_logit_diff"] = worst
    report.add(
        "greedy tokens",
        not token_problems,
        "greedy continuation differs at " + ", ".join(token_problems[:5])
        if token_problems
        else f"greedy continuation identical on {count} prompts",
    )
    report.add(
        "logits",
        worst <= tolerance,
        f"max |logit difference| {worst:.3g} "
        + ("<=" if worst <= tolerance else "exceeds the tolerance")
        + f" {tolerance:g}",
    )


def _merged_state_dict(source: Path) -> dict[str, Any]:
    model = _load_causal_lm(source, _torch_dtype("fp32"))
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return {name: tensor.detach().float().numpy() for name, tensor in model.state_dict().items()}


def _mode_weights(args: argparse.Namespace) -> _Report:
    weights = _merged_state_dict(Path(args.source))
    _save_atomically({name: value.copy() for name, value in weights.items()}, args.out, None)
    report = _Report()
    report.add("weights", True, f"{len(weights)} merged tensors")
    return report


# --- GGUF -------------------------------------------------------------------------------------

#: Largest allowed |difference| per GGUF tensor type, relative to the tensor's largest |value|.
GGUF_TOLERANCE = {"F32": 1e-6, "F16": 1e-3, "Q8_0": 1.6e-2}


def _unpermute(weight: Any, heads: int) -> Any:
    """Undo llama.cpp's Q/K row order (pairs of rotary halves interleaved) back to HF's."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    return field.contents()


def _mode_gguf(args: argparse.Namespace) -> _Report:
    report = _Report()
    try:
        from gguf import GGUFReader

        reader = GGUFReader(args.gguf)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is the verdict
        report.add("read", False, f"cannot read {args.gguf}: truncated or not GGUF ({exc})")
        return report
    report.add("read", True, f"{len(reader.tensors)} tensors")
    _gguf_metadata(reader, Path(args.source_tokenizer), Path(args.source_config), report)
    _gguf_tensors(reader, args, report)
    return report


def _gguf_metadata(reader: Any, tokenizer_dir: Path, config_dir: Path, report: _Report) -> None:
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = AutoConfig.from_pretrained(str(config_dir))
    arch = _field(reader, "general.architecture")
    heads = config.num_attention_heads
    expected = {
        f"{arch}.block_count": config.num_hidden_layers,
        f"{arch}.embedding_length": config.hidden_size,
        f"{arch}.feed_forward_length": config.intermediate_size,
        f"{arch}.attention.head_count": heads,
        f"{arch}.attention.head_count_kv": getattr(config, "num_key_value_heads", None) or heads,
        f"{arch}.context_length": config.max_position_embeddings,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.eos_token_id": tokenizer.eos_token_id,
        "tokenizer.chat_template": tokenizer.chat_template,
    }
    problems = [
        f"{key} is {_field(reader, key)!r}, expected {value!r}"
        for key, value in expected.items()
        if _field(reader, key) != value
    ]
    vocab = {token_id: token for token, token_id in tokenizer.get_vocab().items()}
    tokens = _field(reader, "tokenizer.ggml.tokens") or []
    wrong = [i for i, token in enumerate(tokens) if i in vocab and vocab[i] != token]
    if len(tokens) < len(vocab) or wrong:
        problems.append(f"token list differs from the tokenizer ({len(wrong)} tokens differ)")
    if _field(reader, "tokenizer.ggml.eot_token_id") is None:
        problems.append("no end-of-turn token id (tokenizer.ggml.eot_token_id)")
    if not _field(reader, "tokenizer.ggml.merges"):
        problems.append("no BPE merges")
    report.add(
        "metadata", not problems, "; ".join(problems) or f"{len(expected) + 3} keys as expected"
    )


def _gguf_tensors(reader: Any, args: argparse.Namespace, report: _Report) -> None:
    import numpy as np
    from gguf import MODEL_ARCH_NAMES, get_tensor_name_map
    from gguf.quants import dequantize
    from safetensors.numpy import load_file

    merged = load_file(args.weights)
    arch_name = _field(reader, "general.architecture")
    arch = next(key for key, value in MODEL_ARCH_NAMES.items() if value == arch_name)
    blocks = int(_field(reader, f"{arch_name}.block_count"))
    heads = int(_field(reader, f"{arch_name}.attention.head_count"))
    kv_heads = int(_field(reader, f"{arch_name}.attention.head_count_kv"))
    name_map = get_tensor_name_map(arch, blocks)
    by_gguf_name: dict[str, str] = {}
    for source_name in merged:
        gguf_name = name_map.get_name(source_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is not None:
            by_gguf_name.setdefault(gguf_name, source_name)
    problems: list[str] = []
    seen: set[str] = set()
    for tensor in reader.tensors:
        hf_name = by_gguf_name.get(tensor.name)
        if hf_name is None:
            problems.append(f"unexpected tensor {tensor.name}")
            continue
        seen.add(tensor.name)
        kind = tensor.tensor_type.name
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        expected = merged[hf_name]
        if args.permute and tensor.name.endswith("attn_q.weight"):
            values = _unpermute(values, heads)
        elif args.permute and tensor.name.endswith("attn_k.weight"):
            values = _unpermute(values, kv_heads)
        if values.shape != expected.shape:
            problems.append(f"{tensor.name} has shape {values.shape}, expected {expected.shape}")
            continue
        scale = max(float(np.abs(expected).max()), 1e-6)
        diff = float(np.abs(values - expected).max())
        if diff > GGUF_TOLERANCE.get(kind, 1e-3) * scale:
            problems.append(
                f"tensor {tensor.name} ({kind}) differs from the merged weights: "
                f"max |diff| {diff:.3g} (largest |value| {scale:.3g})"
            )
    missing = set(by_gguf_name) - seen
    if args.tied:  # llama.cpp reuses token_embd when there is no output tensor
        missing.discard("output.weight")
    problems.extend(f"missing tensor {name}" for name in sorted(missing))
    report.add(
        "tensors",
        not problems,
        "; ".join(problems[:5]) or f"{len(seen)} tensors match the merged weights",
    )


# --- entry point ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export_probe", description=__doc__)
    modes = parser.add_subparsers(dest="mode", required=True)
    ref = modes.add_parser("reference")
    ref.add_argument("--source", required=True)
    ref.add_argument("--prompts", required=True)
    ref.add_argument("--new-tokens", type=int, default=8)
    ref.add_argument("--out", required=True)
    art = modes.add_parser("artifact")
    art.add_argument("--export", required=True)
    art.add_argument("--reference", required=True)
    art.add_argument("--tolerance", type=float, required=True)
    weights = modes.add_parser("weights")
    weights.add_argument("--source", required=True)
    weights.add_argument("--out", required=True)
    gguf = modes.add_parser("gguf")
    gguf.add_argument("--gguf", required=True)
    gguf.add_argument("--weights", required=True)
    gguf.add_argument("--source-tokenizer", required=True)
    gguf.add_argument("--source-config", required=True)
    gguf.add_argument("--permute", action="store_true")
    gguf.add_argument("--tied", action="store_true")
    for sub in (ref, art, weights, gguf):
        sub.add_argument("--report", required=True)
    return parser


_MODES = {
    "reference": _mode_reference,
    "artifact": _mode_artifact,
    "weights": _mode_weights,
    "gguf": _mode_gguf,
}


def main(argv: list[str] | None = None) -> int:
    """Run one mode; 0 when it ran (see the report for the verdict), 3 when it could not."""
    args = _parser().parse_args(argv)
    try:
        import torch

        threads = int(_env("CODETUNE_TORCH_THREADS", "0"))
        if threads > 0:
            torch.set_num_threads(threads)
        report = _MODES[args.mode](args)
    except Exception:  # noqa: BLE001 - the parent reads this as the reason
        traceback.print_exc()
        return 3
    report.write(Path(args.report))
    return 0


def _env(name: str, default: str) -> str:
    import os

    return os.environ.get(name, default) or default


if __name__ == "__main__":
    sys.exit(main())
