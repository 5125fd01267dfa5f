"""API keys in the OS keyring, with read-only environment variables as a fallback.

Keys exist in memory only as :class:`pydantic.SecretStr` and on disk only in the keyring.
Nothing here writes a key to a file, a log record or an error message.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import SecretStr

from codetune_studio.core.errors import SecretError

__all__ = [
    "DATABASE_SECRET",
    "KEYRING_SERVICE",
    "KNOWN_SECRETS",
    "KeyringSecretStore",
    "MemorySecretStore",
    "SecretInfo",
    "SecretStore",
]

logger = logging.getLogger(__name__)

KEYRING_SERVICE = "codetune-studio"
#: The keyring entry holding the database password.
DATABASE_SECRET = "database"  # noqa: S105 - the entry's name, not a password


@dataclass(frozen=True, slots=True)
class _SecretKind:
    label: str
    env_var: str


#: The keys the studio knows, with their display label and read-only environment fallback.
KNOWN_SECRETS: dict[str, _SecretKind] = {
    "openai": _SecretKind("OpenAI", "OPENAI_API_KEY"),
    "anthropic": _SecretKind("Anthropic", "ANTHROPIC_API_KEY"),
    "huggingface": _SecretKind("Hugging Face", "HF_TOKEN"),
    # The shared database's password: the settings keep the URL without it.
    DATABASE_SECRET: _SecretKind("Database password", "PGPASSWORD"),
}

SecretSource = Literal["keyring", "environment"]


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """Where a key is stored; never the key itself."""

    name: str
    label: str
    source: SecretSource | None
    env_var: str

    @property
    def is_set(self) -> bool:
        """Whether the key can be read from anywhere."""
        return self.source is not None


class SecretStore(Protocol):
    """Reads and writes API keys by name (``openai``, ``anthropic``, ``huggingface``)."""

    def get(self, name: str) -> SecretStr:
        """Return the key, or raise :class:`SecretError` saying how to set it."""
        ...

    def set(self, name: str, value: SecretStr) -> None:
        """Store the key, or raise :class:`SecretError` saying why it cannot be stored."""
        ...

    def delete(self, name: str) -> bool:
        """Remove the stored key; return whether there was one."""
        ...

    def info(self, name: str) -> SecretInfo:
        """Say where the key is stored, without reading it out."""
        ...


def _kind(name: str) -> _SecretKind:
    try:
        return KNOWN_SECRETS[name]
    except KeyError:
        known = ", ".join(KNOWN_SECRETS)
        raise SecretError(f"unknown key name {name!r}: use one of {known}") from None


def _missing(name: str) -> SecretError:
    kind = _kind(name)
    return SecretError(
        f"No {kind.label} API key is set. Run `codetune-studio keys set {name}`, add it in "
        f"Settings, or set the {kind.env_var} environment variable."
    )


def _checked_value(name: str, value: SecretStr) -> str:
    _kind(name)
    raw = value.get_secret_value().strip()
    if not raw:
        raise SecretError(f"the {name} key is empty; nothing was stored")
    return raw


class KeyringSecretStore:
    """The production store: the OS keyring (Keychain, Credential Locker, Secret Service)."""

    def __init__(self, service: str = KEYRING_SERVICE) -> None:
        self._service = service

    def get(self, name: str) -> SecretStr:
        """Return the key from the keyring, else from its environment variable."""
        kind = _kind(name)
        stored = self._read_keyring(name)
        if stored:
            return SecretStr(stored)
        from_env = os.environ.get(kind.env_var, "").strip()
        if from_env:
            return SecretStr(from_env)
        raise _missing(name)

    def set(self, name: str, value: SecretStr) -> None:
        """Store the key in the keyring; refuse rather than fall back to a plaintext file."""
        import keyring
        from keyring.errors import KeyringError

        raw = _checked_value(name, value)
        self._require_secure_backend()
        try:
            keyring.set_password(self._service, name, raw)
        except KeyringError as exc:
            raise SecretError(
                f"The OS keyring refused to store the {name} key ({exc.__class__.__name__}). "
                "Unlock the keyring (log in to the desktop session) and try again."
            ) from None
        logger.info("stored the %s key in the %s keyring", name, _backend_name())

    def delete(self, name: str) -> bool:
        """Remove the key from the keyring; environment variables are left alone."""
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError

        _kind(name)
        if self._read_keyring(name) is None:
            return False
        try:
            keyring.delete_password(self._service, name)
        except PasswordDeleteError:
            return False
        except KeyringError as exc:
            raise SecretError(f"The OS keyring refused to delete the {name} key ({exc}).") from None
        return True

    def info(self, name: str) -> SecretInfo:
        """Say whether the key comes from the keyring, the environment, or nowhere."""
        kind = _kind(name)
        source: SecretSource | None = None
        if self._read_keyring(name):
            source = "keyring"
        elif os.environ.get(kind.env_var, "").strip():
            source = "environment"
        return SecretInfo(name=name, label=kind.label, source=source, env_var=kind.env_var)

    def _read_keyring(self, name: str) -> str | None:
        # keyring (and its backend discovery) loads on first use, not with the studio.
        import keyring
        from keyring.errors import KeyringError

        if not _backend_usable():
            return None
        try:
            return keyring.get_password(self._service, name)
        except KeyringError as exc:
            # A locked or broken keyring reads as "not set"; the environment may still have it.
            logger.warning(
                "could not read the %s key from the keyring: %s", name, exc.__class__.__name__
            )
            return None

    @staticmethod
    def _require_secure_backend() -> None:
        if not _backend_usable():
            raise SecretError(
                "No usable OS keyring was found, so the key was not stored. On Linux install and "
                "unlock a Secret Service (for example gnome-keyring or KeePassXC) in your desktop "
                "session; on a headless machine set the key's environment variable instead "
                "(OPENAI_API_KEY, ANTHROPIC_API_KEY, HF_TOKEN)."
            )
        if _backend_is_plaintext():
            raise SecretError(
                f"The configured keyring backend ({_backend_name()}) keeps keys in a plain file, "
                "so the key was not stored. Configure a Secret Service, Keychain or Windows "
                "Credential Locker backend, or use the key's environment variable."
            )


def _backend_usable() -> bool:
    import keyring
    import keyring.backends.fail

    backend = keyring.get_keyring()
    return not isinstance(backend, keyring.backends.fail.Keyring) and backend.priority > 0


def _backend_is_plaintext() -> bool:
    import keyring

    module = type(keyring.get_keyring()).__module__
    return module.startswith("keyrings.alt")


def _backend_name() -> str:
    import keyring

    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


class MemorySecretStore:
    """A store that forgets everything when the process ends, for tests and previews."""

    def __init__(self, initial: dict[str, str] | None = None) -> None:
        self._values = {name: SecretStr(value) for name, value in (initial or {}).items()}

    def get(self, name: str) -> SecretStr:
        """Return the key or raise :class:`SecretError`."""
        _kind(name)
        if name not in self._values:
            raise _missing(name)
        return self._values[name]

    def set(self, name: str, value: SecretStr) -> None:
        """Keep the key in memory."""
        self._values[name] = SecretStr(_checked_value(name, value))

    def delete(self, name: str) -> bool:
        """Forget the key; return whether there was one."""
        _kind(name)
        return self._values.pop(name, None) is not None

    def info(self, name: str) -> SecretInfo:
        """Say whether the key is held."""
        kind = _kind(name)
        source: SecretSource | None = "keyring" if name in self._values else None
        return SecretInfo(name=name, label=kind.label, source=source, env_var=kind.env_var)
