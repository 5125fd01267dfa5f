"""Hub push against a loopback HTTP server speaking the endpoints huggingface_hub calls."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.errors import ExportError
from codetune_studio.secrets import MemorySecretStore
from codetune_studio.services.hub import push_folder
from tests.hub_server import READ_TOKEN, WRITE_TOKEN, FakeHub

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test session runs offline; a push test needs huggingface_hub's online mode."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


@pytest.fixture
def export_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "README.md").write_text("# card\n")
    (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 2048)
    (folder / "export.json").write_text("{}")
    return folder


def test_push_creates_the_repo_and_uploads_every_file(
    online: None, hub: FakeHub, export_folder: Path
) -> None:
    stages: list[str] = []
    result = push_folder(
        export_folder,
        "me/tiny",
        MemorySecretStore({"huggingface": WRITE_TOKEN}),
        private=True,
        endpoint=hub.url,
        progress=lambda message, _fraction: stages.append(message),
    )
    assert hub.unhandled == []
    assert hub.repos["me/tiny"] == {"private": True}
    assert set(hub.files["me/tiny"]) == {"README.md", "adapter_model.safetensors", "export.json"}
    assert hub.files["me/tiny"]["README.md"] == b"# card\n"
    assert result.files == 3
    assert result.url.endswith("/me/tiny")
    assert stages[0] == "creating private repository me/tiny"
    assert stages[-1] == "pushed"


def test_push_says_when_the_name_is_taken(online: None, hub: FakeHub, export_folder: Path) -> None:
    secrets = MemorySecretStore({"huggingface": WRITE_TOKEN})
    push_folder(export_folder, "me/tiny", secrets, endpoint=hub.url)
    with pytest.raises(ExportError, match="me/tiny is already taken"):
        push_folder(export_folder, "me/tiny", secrets, endpoint=hub.url)


@pytest.mark.parametrize(("token", "status"), [(READ_TOKEN, 403), ("hf_bogus", 401)])
def test_push_says_when_the_token_cannot_write(
    online: None, hub: FakeHub, export_folder: Path, token: str, status: int
) -> None:
    with pytest.raises(ExportError, match=rf"refused the push to me/tiny \({status}\).*write"):
        push_folder(
            export_folder, "me/tiny", MemorySecretStore({"huggingface": token}), endpoint=hub.url
        )
    assert hub.repos == {}


def test_push_says_when_no_token_is_stored(online: None, export_folder: Path) -> None:
    with pytest.raises(ExportError, match=r"no Hugging Face token.*keys set huggingface"):
        push_folder(export_folder, "me/tiny", MemorySecretStore(), endpoint="http://127.0.0.1:9")


def test_push_says_when_offline(export_folder: Path) -> None:
    # The test session itself runs with HF_HUB_OFFLINE=1, as an offline studio does.
    with pytest.raises(ExportError, match="studio is offline"):
        push_folder(export_folder, "me/tiny", MemorySecretStore({"huggingface": WRITE_TOKEN}))


def test_push_says_when_the_hub_cannot_be_reached(online: None, export_folder: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ExportError, match="cannot reach the Hugging Face Hub"):
        push_folder(
            export_folder,
            "me/tiny",
            MemorySecretStore({"huggingface": WRITE_TOKEN}),
            endpoint=f"http://127.0.0.1:{port}",
        )
