"""Naming exactly which base model a model version was trained from.

A Hub model is named by its revision (the commit of the cached snapshot); a local folder (the
starter model included) by a hash of its config and weight files, so a changed folder under the
same path reads as a different base in the lineage.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

__all__ = ["base_model_identity", "folder_fingerprint"]

logger = logging.getLogger(__name__)

_HASHED = ("config.json", "*.safetensors", "*.bin", "*.pt")
_CHUNK = 1 << 20


def folder_fingerprint(folder: Path) -> str:
    """A SHA-256 over a model folder's config and weight files (names and contents).

    Args:
        folder: A model folder (``config.json`` and weights).

    Returns:
        ``sha256:`` followed by the first 32 hexadecimal digits.
    """
    digest = hashlib.sha256()
    files = sorted({path for pattern in _HASHED for path in folder.glob(pattern) if path.is_file()})
    for path in files:
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:32]


def base_model_identity(model: str, data_dir: Path) -> str | None:
    """The revision (Hub) or content hash (local folder) of a recipe's base model.

    Args:
        model: The recipe's ``model``: ``starter``, a folder, or a Hub id.
        data_dir: The studio's data folder (where the starter model lives).

    Returns:
        A Hub commit hash, ``sha256:...`` for a folder, or ``None`` when it cannot be told
        (a Hub model not in the local cache).
    """
    if model == "starter":
        from codetune_studio.engine.starter import starter_model_dir

        folder = starter_model_dir(data_dir)
    else:
        folder = Path(model).expanduser()
    try:
        if folder.is_dir():
            return folder_fingerprint(folder)
    except OSError as exc:
        logger.warning("could not fingerprint the base model folder %s: %s", folder, exc)
        return None
    return _hub_revision(model)


def _hub_revision(model_id: str) -> str | None:
    from huggingface_hub import constants

    refs = Path(constants.HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--")) / "refs"
    try:
        return (refs / "main").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
