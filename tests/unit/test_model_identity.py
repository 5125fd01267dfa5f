"""Which base model a version came from: a folder's content hash, a Hub snapshot's revision."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codetune_studio.services.model_identity import base_model_identity, folder_fingerprint

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_a_local_folder_is_named_by_a_hash_of_its_config_and_weights(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "model.safetensors").write_bytes(b"weights-1")
    (folder / "README.md").write_text("not part of the identity")
    first = base_model_identity(str(folder), tmp_path)
    assert first is not None
    assert first.startswith("sha256:")
    (folder / "README.md").write_text("edited")
    assert folder_fingerprint(folder) == first
    (folder / "model.safetensors").write_bytes(b"weights-2")
    assert folder_fingerprint(folder) != first


def test_a_hub_model_is_named_by_its_cached_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    refs = tmp_path / "hub" / "models--org--tiny" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("0123456789abcdef\n")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert base_model_identity("org/tiny", tmp_path) == "0123456789abcdef"
    assert base_model_identity("org/not-cached", tmp_path) is None
