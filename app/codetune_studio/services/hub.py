"""Publish an export folder to the Hugging Face Hub.

The token comes from the studio's secret store (the keyring, name ``huggingface``), never from the
database or a file. Every way a push commonly fails gets its own message: offline, no token, a
token without write access (401/403), a repository name someone already has (409).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from codetune_studio.core.errors import ExportError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from codetune_studio.secrets import SecretStore

__all__ = ["HUB_SECRET", "HubPushResult", "push_folder"]

logger = logging.getLogger(__name__)

HUB_SECRET: Final = "huggingface"  # noqa: S105 - the secret's name, not its value
_OFFLINE_VARS: Final = ("HF_HUB_OFFLINE", "CODETUNE_OFFLINE")


@dataclass(frozen=True, slots=True)
class HubPushResult:
    """A finished push.

    Attributes:
        repo_id: The repository (``owner/name``).
        url: Its web address.
        commit_url: The upload's commit.
        files: How many files were uploaded.
        total_bytes: Their total size.
    """

    repo_id: str
    url: str
    commit_url: str
    files: int
    total_bytes: int


def push_folder(
    folder: Path,
    repo_id: str,
    secrets: SecretStore,
    *,
    private: bool = False,
    progress: Callable[[str, float], None] | None = None,
    offline: bool = False,
    endpoint: str | None = None,
) -> HubPushResult:
    """Create ``repo_id`` on the Hub and upload ``folder`` (card included) as one commit.

    Args:
        folder: The export folder.
        repo_id: ``owner/name``.
        secrets: Where the Hugging Face token is.
        private: Create the repository private.
        progress: Called with a message and the fraction done.
        offline: The studio runs offline (also ``HF_HUB_OFFLINE=1``).
        endpoint: The Hub's address; ``HF_ENDPOINT`` or huggingface.co by default.

    Returns:
        Where it went.

    Raises:
        ExportError: With a message for each failure: offline, token missing, no write access,
            name taken, Hub unreachable.
        SecretError: The keyring cannot be read.
    """
    report = progress or (lambda _message, _fraction: None)
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise ExportError(f"--push {repo_id}: give the repository as owner/name")
    if offline or any(os.environ.get(name, "").strip() in {"1", "true"} for name in _OFFLINE_VARS):
        raise ExportError(
            "cannot push to the Hugging Face Hub: the studio is offline (HF_HUB_OFFLINE or "
            "--offline); push again with the network on"
        )
    token = _token(secrets)
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    files = [path for path in sorted(folder.rglob("*")) if path.is_file()]
    total = sum(path.stat().st_size for path in files)
    report(f"creating {'private ' if private else ''}repository {repo_id}", 0.05)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=False, repo_type="model")
        report(f"uploading {len(files)} files ({total / 1e6:.1f} MB)", 0.2)
        commit = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            commit_message="Upload model exported by CodeTune Studio",
        )
    except Exception as exc:
        raise _hub_error(exc, repo_id) from exc
    report("pushed", 1.0)
    return HubPushResult(repo_id, str(url), str(commit.commit_url), len(files), total)


def _token(secrets: SecretStore) -> str:
    from codetune_studio.core.errors import SecretError

    try:
        token = secrets.get(HUB_SECRET).get_secret_value()
    except SecretError as exc:
        raise ExportError(
            "no Hugging Face token: store one with `codetune-studio keys set huggingface` "
            f"(a token with write access) and push again ({exc})"
        ) from exc
    return token


def _hub_error(exc: BaseException, repo_id: str) -> ExportError:
    """Turn whatever huggingface_hub raised into one actionable message."""
    status = _status_code(exc)
    if status in {401, 403}:
        return ExportError(
            f"the Hub refused the push to {repo_id} ({status}): the token is invalid or lacks "
            "write access to that namespace; create a token with the 'write' role and store it "
            "with `codetune-studio keys set huggingface`"
        )
    if status == 409:
        return ExportError(
            f"the repository name {repo_id} is already taken on the Hub (by you or someone "
            "else); choose another name, or delete that repository on the Hub first"
        )
    if status is None and _is_connection_error(exc):
        return ExportError(
            "cannot reach the Hugging Face Hub (no network or the Hub is down); nothing was "
            "pushed, try again later"
        )
    return ExportError(f"the push to {repo_id} failed: {type(exc).__name__}: {exc}")


def _status_code(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return int(code) if isinstance(code, int) else None


def _is_connection_error(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        name = type(current).__name__
        if "Connect" in name or "Offline" in name or "Timeout" in name:
            return True
        current = current.__cause__ or current.__context__
    return False
