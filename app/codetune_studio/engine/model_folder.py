"""Checking a model folder before anything loads it: one line naming the file and the fix.

``from_pretrained`` on a damaged or foreign folder fails deep inside transformers or safetensors
(a traceback), or worse, succeeds: a tokenizer larger than the model's embeddings trains until
the first unknown id crashes the kernel, and a folder with only ``pytorch_model.bin`` is read
through pickle, which can run code. :func:`check_model_folder` reads only small files (the config,
each safetensors header, the tokenizer's vocabulary) and never unpickles anything, so it is quick
and safe on hostile input. Every loader of a base model calls it: training, generation and
evaluation, and export.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from codetune_studio.core.errors import ConfigError

__all__ = [
    "PICKLE_HINT_CLI",
    "PICKLE_HINT_RECIPE",
    "check_adapter_folder",
    "check_model_folder",
    "tokenizer_size",
]

#: What to do about pickled weights where a recipe can opt in.
PICKLE_HINT_RECIPE = (
    "convert them to safetensors, or set allow_pickle: true in the recipe if you trust them"
)
#: What to do about pickled weights where nothing can opt in (generate, eval, export).
PICKLE_HINT_CLI = (
    "convert them to safetensors first (load the model in a trusted Python session and call "
    "save_pretrained(folder, safe_serialization=True))"
)

_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
#: A safetensors header larger than this is damage, not a model (real ones are kilobytes).
_MAX_HEADER_BYTES = 100 * 2**20
#: Files the tokenizer check reads whole; a larger one is left to the tokenizer library.
_MAX_TOKENIZER_BYTES = 64 * 2**20


def check_model_folder(folder: Path, *, allow_pickle: bool = False, pickle_hint: str = "") -> None:
    """Refuse a model folder that cannot load, or should not be loaded.

    Args:
        folder: The model folder (``config.json`` and weights, usually a tokenizer).
        allow_pickle: Accept pickled ``pytorch_model.bin`` weights when there are no safetensors.
        pickle_hint: What the user can do about pickled weights; :data:`PICKLE_HINT_RECIPE` by
            default.

    Raises:
        ConfigError: No or unreadable ``config.json``; no weights; pickled weights without
            ``allow_pickle``; a truncated or damaged safetensors file or a missing shard; a
            tokenizer whose ids do not fit the model's embeddings.
    """
    folder = Path(folder)
    config = _read_config(folder)
    _check_weights(folder, allow_pickle=allow_pickle, pickle_hint=pickle_hint)
    _check_tokenizer_fits(folder, config)


def check_adapter_folder(folder: Path, *, pickle_hint: str = "") -> None:
    """Refuse an adapter folder whose weights are damaged or pickled.

    Raises:
        ConfigError: ``adapter_model.safetensors`` is truncated, or only a pickled
            ``adapter_model.bin`` is there.
    """
    folder = Path(folder)
    safe = folder / "adapter_model.safetensors"
    if safe.is_file():
        _check_safetensors(safe)
    elif (folder / "adapter_model.bin").is_file():
        raise ConfigError(
            f"{folder / 'adapter_model.bin'}: the adapter has only pickled weights, which can "
            f"run code when loaded; {pickle_hint or PICKLE_HINT_CLI}"
        )


def tokenizer_size(folder: Path) -> int | None:
    """One more than the largest token id the folder's tokenizer can produce, if readable.

    Reads ``tokenizer.json`` (fast tokenizers) or ``vocab.json`` and ``added_tokens.json``.
    """
    tokenizer_file = folder / "tokenizer.json"
    data = _small_json(tokenizer_file)
    ids: list[int] = []
    if isinstance(data, dict):
        model = data.get("model")
        vocab = model.get("vocab") if isinstance(model, dict) else None
        if isinstance(vocab, dict):
            ids += [v for v in vocab.values() if isinstance(v, int)]
        elif isinstance(vocab, list):  # Unigram: a list of [piece, score]
            ids.append(len(vocab) - 1)
        added = data.get("added_tokens")
        if isinstance(added, list):
            ids += [t["id"] for t in added if isinstance(t, dict) and isinstance(t.get("id"), int)]
    else:
        vocab_json = _small_json(folder / "vocab.json")
        if isinstance(vocab_json, dict):
            ids += [v for v in vocab_json.values() if isinstance(v, int)]
        added_json = _small_json(folder / "added_tokens.json")
        if isinstance(added_json, dict):
            ids += [v for v in added_json.values() if isinstance(v, int)]
    return max(ids) + 1 if ids else None


# --- the parts --------------------------------------------------------------------------------


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"{folder} has no config.json, so it is not a model folder; point to the folder "
            "save_pretrained wrote (config.json and model.safetensors), or use 'starter'"
        )
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_TOKENIZER_BYTES + 1)
        # A config larger than any real one is damage: parse at most its first bytes.
        config = json.loads(raw[:_MAX_TOKENIZER_BYTES].decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(
            f"{path} is not readable JSON ({_short(exc)}); restore it from the model's source"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a JSON object; restore it from the model's source")
    return config


def _check_weights(folder: Path, *, allow_pickle: bool, pickle_hint: str) -> None:
    index = folder / "model.safetensors.index.json"
    single = folder / "model.safetensors"
    if index.is_file():
        for shard in _shards(index):
            _check_safetensors(shard)
        return
    if single.is_file():
        _check_safetensors(single)
        return
    others = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if others:  # an unusual name transformers may still load: check what is there
        for path in others:
            _check_safetensors(path)
        return
    pickled = next((folder / n for n in _PICKLED_WEIGHTS if (folder / n).is_file()), None)
    if pickled is not None:
        if allow_pickle:
            return
        raise ConfigError(
            f"{pickled}: the model has only pickled weights, which can run code when loaded; "
            f"{pickle_hint or PICKLE_HINT_RECIPE}"
        )
    raise ConfigError(
        f"{folder} has no weights ({' or '.join(_SAFE_WEIGHTS)}); copy the complete model folder"
    )


def _shards(index: Path) -> list[Path]:
    data = _small_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ConfigError(
            f"{index} is damaged (no weight_map); copy or download the model folder again"
        )
    shards = []
    for name in sorted({str(v) for v in weight_map.values()}):
        shard = index.parent / name
        if Path(name).name != name or not shard.is_file():
            raise ConfigError(
                f"{index} lists the shard {name}, which is missing; copy the complete model folder"
            )
        shards.append(shard)
    return shards


def _check_safetensors(path: Path) -> None:
    """The header parses and every tensor's bytes lie inside the file (it is not truncated)."""

    def damaged(detail: str) -> ConfigError:
        return ConfigError(
            f"{path} is truncated or damaged ({detail}); copy or download the model again"
        )

    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise damaged(f"{size} bytes, no header")
            (length,) = struct.unpack("<Q", prefix)
            if length > _MAX_HEADER_BYTES or 8 + length > size:
                raise damaged(f"its header claims {length} bytes, the file has {size}")
            header = json.loads(handle.read(length).decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({_short(exc)}); check its permissions") from None
    except (ValueError, RecursionError) as exc:
        raise damaged(f"unreadable header: {_short(exc)}") from None
    if not isinstance(header, dict):
        raise damaged("its header is not a table of tensors")
    data_end = _data_end(header)
    if data_end is None:
        raise damaged("a tensor has no valid data offsets")
    available = size - 8 - length
    if data_end > available:
        raise damaged(
            f"its tensors need {data_end} bytes after the header, the file has {available}"
        )


def _data_end(header: dict[str, Any]) -> int | None:
    """Where the last tensor's bytes end, or ``None`` if an entry's offsets are nonsense."""
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(v, int) for v in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            return None
        end = max(end, offsets[1])
    return end


def _check_tokenizer_fits(folder: Path, config: dict[str, Any]) -> None:
    vocab = _vocab_size(config)
    if vocab is None:
        return
    size = tokenizer_size(folder)
    if size is not None and size > vocab:
        raise ConfigError(
            f"the tokenizer in {folder} has token ids up to {size - 1}, but the model's "
            f"embeddings hold {vocab} (config.json vocab_size): the tokenizer belongs to another "
            "model; put the tokenizer saved with this model in the folder"
        )
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = config.get(key)
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if isinstance(v, int) and not 0 <= v < vocab]
        if bad:
            raise ConfigError(
                f"{folder / 'config.json'}: {key} {bad[0]} is outside the model's vocabulary of "
                f"{vocab}; the config and the tokenizer belong to different models"
            )


def _vocab_size(config: dict[str, Any]) -> int | None:
    value = config.get("vocab_size")
    text_config = config.get("text_config")
    if value is None and isinstance(text_config, dict):
        value = text_config.get("vocab_size")
    return value if isinstance(value, int) and value > 0 else None


def _small_json(path: Path) -> Any:
    """A JSON file's content, or ``None`` when it is missing, too large or not JSON."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_TOKENIZER_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
