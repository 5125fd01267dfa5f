"""The starter model: a small Llama-style model built on this machine from text every machine has.

``model: starter`` lets a new user fine-tune within minutes, with no download. On first use the
studio reads the Python standard library's own source (files that parse with :mod:`ast`, in a
seeded order, up to a size cap), trains a byte-level BPE tokenizer on it, builds a Llama-architecture
causal LM of a few million parameters and pre-trains it briefly, so that fine-tuning moves a model
that already knows something about Python. The result is cached under
``<data dir>/models/starter-v2/``, written to a temporary folder and renamed into place, under a file
lock, so two processes never both build it or see half of it.

A packaged studio carries the model already built (``<bundle>/models/starter-v2``, read-only):
on first use it is copied into the data folder instead of being built, which takes about a second
rather than three and a half minutes, and the data folder then looks exactly as a source
install's does.

The folder is an ordinary Hugging Face model folder: ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load it with no studio code.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import math
import os
import random
import shutil
import sys
import sysconfig
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from codetune_studio.core.build_info import bundle_dir
from codetune_studio.core.errors import ConfigError, TrainingError
from codetune_studio.engine.data import DEFAULT_CHAT_TEMPLATE

if TYPE_CHECKING:
    # Imported where used: resolving a model or checking the cache must not cost the 5 s that
    # importing torch and transformers takes (``dataset inspect`` calls them).
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

__all__ = [
    "DEFAULT_PRETRAIN_STEPS",
    "STARTER_NAME",
    "ProgressCallback",
    "StarterSpec",
    "build_tiny_model_and_tokenizer",
    "bundled_starter_dir",
    "cached_starter_dir",
    "check_local_model",
    "ensure_starter_model",
    "is_starter_cached",
    "resolve_model",
    "starter_model_dir",
]

logger = logging.getLogger(__name__)

#: The folder name under ``<data dir>/models``; bump the version when the recipe below changes.
#: v2 pre-trains on 3.3x the tokens of v1 (500 steps of 8 rows against 300 of 4): v1 stopped at a
#: loss of 5.45, where a tune on the sample pairs wrote noise; v2 reaches about 4.3, and the same
#: tune writes parseable bodies. A v1 folder stays where it is, so adapters trained on it (they
#: record its path) still load on the base they were trained on.
STARTER_NAME: Final = "starter-v2"

#: ``on_progress(done, total, message)``, called as the build advances.
ProgressCallback = Callable[[int, int, str], None]

BOS_TOKEN: Final = "<|endoftext|>"  # noqa: S105 - a token, not a password
# <|im_end|> ends a chat turn and a document, as in Qwen2's chat models.
EOS_TOKEN: Final = "<|im_end|>"  # noqa: S105
PAD_TOKEN: Final = "<|pad|>"  # noqa: S105
SPECIAL_TOKENS: Final = (BOS_TOKEN, PAD_TOKEN, "<|im_start|>", EOS_TOKEN)
_MARKER: Final = "starter.json"
_MAX_POSITIONS: Final = 1024
#: Pre-training steps of the cached starter model (about 3.5 minutes on two idle CPU cores).
DEFAULT_PRETRAIN_STEPS: Final = 500


@dataclass(frozen=True, slots=True)
class StarterSpec:
    """How a starter model is built. The defaults make the cached ``starter-v2``."""

    vocab_size: int = 4096
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    intermediate: int = 688
    max_positions: int = _MAX_POSITIONS
    corpus_bytes: int = 4_000_000
    pretrain_steps: int = DEFAULT_PRETRAIN_STEPS
    seq_len: int = 256
    batch_size: int = 8
    learning_rate: float = 3e-3
    seed: int = 0


@dataclass(frozen=True, slots=True)
class _BuildReport:
    spec: dict[str, Any]
    parameters: int
    corpus_files: int
    corpus_bytes: int
    corpus_tokens: int
    loss_first: float | None
    loss_last: float | None
    seconds: float
    python: str


def starter_model_dir(cache_root: Path) -> Path:
    """Where the starter model lives (or will live) under a data folder."""
    return Path(cache_root) / "models" / STARTER_NAME


def bundled_starter_dir() -> Path | None:
    """The starter model a packaged studio ships with, or ``None`` (a source install, or none)."""
    folder = bundle_dir()
    if folder is None:
        return None
    bundled = folder / "models" / STARTER_NAME
    return bundled if _is_complete(bundled) else None


def cached_starter_dir(cache_root: Path) -> Path | None:
    """A complete starter model that loads without building: the data folder's, else the bundle's."""
    folder = starter_model_dir(cache_root)
    if _is_complete(folder):
        return folder
    return bundled_starter_dir()


def is_starter_cached(cache_root: Path) -> bool:
    """Whether the starter model loads without a build (in the data folder, or bundled)."""
    return cached_starter_dir(cache_root) is not None


def ensure_starter_model(
    cache_root: Path,
    *,
    on_progress: ProgressCallback | None = None,
    pretrain_steps: int = DEFAULT_PRETRAIN_STEPS,
) -> Path:
    """Return the starter model's folder, building it first if it is not cached yet.

    Args:
        cache_root: The studio's data folder; the model goes to ``models/starter-v2`` inside it.
        on_progress: Called with ``(done, total, message)`` while building.
        pretrain_steps: Pre-training steps for a fresh build (ignored when cached).

    Returns:
        A folder loadable by ``AutoModelForCausalLM.from_pretrained`` and
        ``AutoTokenizer.from_pretrained``.

    Raises:
        TrainingError: If the model cannot be built or written.
    """
    folder = starter_model_dir(cache_root)
    if _is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(folder.parent / f".{STARTER_NAME}.lock"):
        if _is_complete(folder):  # another process built it while we waited for the lock
            return folder
        if folder.exists():  # pragma: no cover - left by a rename interrupted half way
            shutil.rmtree(folder)
        for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
            # A build killed half way; we hold the lock, so nobody else is writing it.
            shutil.rmtree(stale, ignore_errors=True)
        bundled = bundled_starter_dir()
        if bundled is not None:
            logger.info("copying the bundled starter model to %s", folder)
            _copy_atomically(bundled, folder)
            return folder
        logger.info("building the starter model in %s (once; a few minutes)", folder)
        spec = StarterSpec(pretrain_steps=pretrain_steps)
        _build_atomically(folder, spec, on_progress)
    return folder


def build_tiny_model_and_tokenizer(
    folder: Path,
    *,
    vocab_size: int = 512,
    hidden: int = 64,
    layers: int = 1,
    pretrain_steps: int = 0,
) -> Path:
    """Build a very small starter-style model in ``folder`` (for tests; a few seconds).

    Args:
        folder: Where to write it; created if missing.
        vocab_size: Tokenizer vocabulary size.
        hidden: Hidden size (4 attention heads of ``hidden / 4``).
        layers: Decoder layers.
        pretrain_steps: Pre-training steps (0: random weights).

    Returns:
        ``folder``, loadable by ``AutoModelForCausalLM`` and ``AutoTokenizer``.
    """
    spec = StarterSpec(
        vocab_size=vocab_size,
        hidden=hidden,
        layers=layers,
        heads=4,
        intermediate=hidden * 2,
        corpus_bytes=150_000,
        pretrain_steps=pretrain_steps,
        seq_len=64,
        batch_size=4,
    )
    _build(Path(folder), spec, None)
    return Path(folder)


def check_local_model(model: str, *, allow_pickle: bool = False) -> None:
    """Check a recipe's ``model`` when it is a local folder (before a run is even planned).

    Raises:
        ConfigError: The folder is not a loadable, safe model folder.
    """
    local = Path(model).expanduser()
    if model != "starter" and local.is_dir():
        from codetune_studio.engine.model_folder import check_model_folder

        try:
            check_model_folder(local, allow_pickle=allow_pickle)
        except ConfigError as exc:
            raise ConfigError(f"model: {exc}") from None


def resolve_model(
    model: str,
    *,
    data_dir: Path,
    offline: bool,
    on_progress: ProgressCallback | None = None,
    allow_pickle: bool = False,
    pickle_hint: str = "",
) -> Path | str:
    """Turn a recipe's ``model`` into something ``from_pretrained`` accepts.

    A local folder is checked first (:func:`~codetune_studio.engine.model_folder.
    check_model_folder`): damaged, foreign or pickled weights end in one line, not a traceback.

    Args:
        model: ``"starter"``, a local model folder, or a hub id.
        data_dir: The studio's data folder (for the starter model).
        offline: Whether the network may not be used.
        on_progress: Progress of a starter build, when one is needed.
        allow_pickle: Accept a folder with only pickled ``pytorch_model.bin`` weights.
        pickle_hint: What the user can do about pickled weights, in the caller's terms.

    Returns:
        A local folder, or a hub id (online, or offline when it is in the local cache).

    Raises:
        ConfigError: If a folder is not a model folder, or a hub id is needed offline and is not
            cached.
    """
    if model == "starter":
        return ensure_starter_model(data_dir, on_progress=on_progress)
    local = Path(model).expanduser()
    if local.is_dir():
        from codetune_studio.engine.model_folder import check_model_folder

        try:
            check_model_folder(local, allow_pickle=allow_pickle, pickle_hint=pickle_hint)
        except ConfigError as exc:
            raise ConfigError(f"model: {exc}") from None
        return local.resolve()
    if _looks_like_path(model):
        raise ConfigError(
            f"model: folder {local} not found; use a model folder, a hub id or 'starter'"
        )
    if offline and not _in_hub_cache(model):
        raise ConfigError(
            f"model: {model!r} is not in the local Hugging Face cache and the studio is offline; "
            f"download it once with network (hf download {model}), point model: at a local "
            "folder, or use model: starter"
        )
    return model


# --- building ---------------------------------------------------------------------------------


def _copy_atomically(source: Path, folder: Path) -> None:
    """Copy a finished model folder into place; a copy cut short leaves only a staging folder."""
    staging = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        # copyfile, not copy2: the bundle's files may be read-only, the user's copy must not be.
        shutil.copytree(source, staging, copy_function=shutil.copyfile)
        _fsync_tree(staging)
        staging.rename(folder)
    except OSError as exc:
        raise TrainingError(
            f"Could not copy the bundled starter model to {folder}: {exc}; "
            "free some disk space or choose another data folder (--data-dir)"
        ) from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _build_atomically(
    folder: Path, spec: StarterSpec, on_progress: ProgressCallback | None
) -> None:
    staging = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _build(staging, spec, on_progress)
        _fsync_tree(staging)
        staging.rename(folder)
    except OSError as exc:
        raise TrainingError(f"Could not write the starter model to {folder}: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _build(folder: Path, spec: StarterSpec, on_progress: ProgressCallback | None) -> _BuildReport:
    started = time.perf_counter()
    total = spec.pretrain_steps + 4
    progress = on_progress or (lambda _done, _total, _message: None)
    progress(0, total, "reading the Python standard library")
    corpus = _stdlib_corpus(spec.corpus_bytes, seed=spec.seed)
    progress(1, total, f"training the tokenizer on {len(corpus)} files")
    tokenizer = _train_tokenizer(corpus, spec.vocab_size)
    progress(2, total, "tokenizing the corpus")
    blocks = _token_blocks(tokenizer, corpus, spec.seq_len)
    progress(3, total, "building the model")
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(_config(spec, tokenizer))
    losses = _pretrain(model, blocks, spec, lambda step, msg: progress(3 + step, total, msg))
    folder.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with _quiet_progress_bars():  # the caller shows its own progress; no stray tqdm output
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    report = _BuildReport(
        spec=asdict(spec),
        parameters=sum(p.numel() for p in model.parameters()),
        corpus_files=len(corpus),
        corpus_bytes=sum(len(text) for text in corpus),
        corpus_tokens=int(blocks.numel()),
        loss_first=losses[0] if losses else None,
        loss_last=_tail_mean(losses),
        seconds=round(time.perf_counter() - started, 1),
        python=sys.version.split()[0],
    )
    (folder / _MARKER).write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    progress(total, total, "starter model ready")
    logger.info(
        "starter model: %d parameters, loss %s -> %s in %.1f s",
        report.parameters,
        report.loss_first,
        report.loss_last,
        report.seconds,
    )
    return report


def _stdlib_corpus(max_bytes: int, *, seed: int) -> list[str]:
    """Standard-library sources that parse, in a seeded order, up to ``max_bytes`` characters."""
    root, files = _source_files()
    random.Random(seed).shuffle(files)  # noqa: S311 - reproducibility, not secrecy
    corpus: list[str] = []
    size = 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            ast.parse(text)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue  # test data files that are broken on purpose, or unreadable
        if len(text) > 200_000 or not text.strip():
            continue  # a few giant generated tables would crowd out real code
        corpus.append(text)
        size += len(text)
        if size >= max_bytes:
            break
    if not corpus:
        raise TrainingError(f"No Python source found under {root} to build the starter model from")
    return corpus


def _source_files() -> tuple[Path, list[Path]]:
    """The standard library's ``.py`` files in a stable order; installed packages' as a fallback.

    A frozen build (PyInstaller) ships the standard library compiled, without sources; the
    installed packages' folder is then the next text every machine with the studio has.
    """
    paths = sysconfig.get_paths()
    for key in ("stdlib", "purelib"):
        root = Path(paths[key])
        skip = "site-packages" if key == "stdlib" else ""
        files = sorted(
            (path for path in root.rglob("*.py") if not skip or skip not in path.parts),
            key=lambda path: path.relative_to(root).as_posix(),
        )
        if files:
            return root, files
    return Path(paths["stdlib"]), []


def _train_tokenizer(corpus: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    # The tokenizer builder's code, with the settings starter-v1 was built with: the output is
    # the same, so cached starter models stay valid (tests/unit/test_tokenizer_build.py checks).
    from codetune_studio.engine.tokenizer_build import TokenizerSpec, train_tokenizer

    spec = TokenizerSpec(
        kind="bpe",
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=DEFAULT_CHAT_TEMPLATE,
        model_max_length=_MAX_POSITIONS,
        extra_special=("<|im_start|>",),
    )
    return train_tokenizer(corpus, spec)


def _token_blocks(
    tokenizer: PreTrainedTokenizerFast, corpus: list[str], seq_len: int
) -> torch.Tensor:
    """The corpus as one stream of ids (documents separated by EOS), cut into rows."""
    import torch

    eos = int(tokenizer.eos_token_id)
    core = tokenizer.backend_tokenizer  # the Rust tokenizer: no warnings about long inputs
    stream: list[int] = []
    for start in range(0, len(corpus), 64):  # batches: one call on all of it needs gigabytes
        for encoding in core.encode_batch(corpus[start : start + 64], add_special_tokens=False):
            stream.extend(encoding.ids)
            stream.append(eos)
    rows = len(stream) // seq_len
    if rows < 2:
        raise TrainingError("The starter corpus is too small to pre-train on")
    return torch.tensor(stream[: rows * seq_len], dtype=torch.long).view(rows, seq_len)


def _config(spec: StarterSpec, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,  # a quarter of the parameters otherwise, for nothing
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _pretrain(
    model: LlamaForCausalLM,
    blocks: torch.Tensor,
    spec: StarterSpec,
    on_step: Callable[[int, str], None],
) -> list[float]:
    """A plain next-token loop: AdamW, linear warm-up, cosine decay, seeded batch order."""
    import torch

    if spec.pretrain_steps <= 0:
        return []
    generator = torch.Generator().manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)
    warmup = max(1, spec.pretrain_steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, spec.pretrain_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    losses: list[float] = []
    for step in range(spec.pretrain_steps):
        rows = torch.randint(0, blocks.shape[0], (spec.batch_size,), generator=generator)
        batch = blocks[rows]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(float(loss.item()), 4))
        on_step(
            step + 1, f"pre-training: step {step + 1}/{spec.pretrain_steps}, loss {losses[-1]:.3f}"
        )
    model.eval()  # type: ignore[no-untyped-call]
    return losses


# --- helpers ----------------------------------------------------------------------------------


def _tail_mean(losses: list[float]) -> float | None:
    if not losses:
        return None
    tail = losses[-max(1, len(losses) // 10) :]
    return round(sum(tail) / len(tail), 4)


def _is_complete(folder: Path) -> bool:
    return all(
        (folder / name).is_file()
        for name in ("config.json", "model.safetensors", "tokenizer.json", _MARKER)
    )


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive, blocking lock between processes (released if the holder dies)."""
    with path.open("a+b") as handle:
        _lock(handle)
        try:
            yield
        finally:
            _unlock(handle)


def _lock(handle: IO[bytes]) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        handle.seek(0)
        while True:
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            except OSError:  # LK_LOCK gives up after 10 s; keep waiting for the builder
                time.sleep(0.5)
            else:
                return
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _unlock(handle: IO[bytes]) -> None:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _looks_like_path(model: str) -> bool:
    return (
        model.startswith((".", "/", "~"))
        or "\\" in model
        or model.count("/") > 1
        or Path(model).is_absolute()
    )


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id is simply "not cached"
        return False
    return isinstance(found, str)
