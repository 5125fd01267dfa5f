"""API keys in the OS keyring; the only package that imports ``keyring``."""

from codetune_studio.secrets.store import (
    DATABASE_SECRET,
    KEYRING_SERVICE,
    KNOWN_SECRETS,
    KeyringSecretStore,
    MemorySecretStore,
    SecretInfo,
    SecretStore,
)

__all__ = [
    "DATABASE_SECRET",
    "KEYRING_SERVICE",
    "KNOWN_SECRETS",
    "KeyringSecretStore",
    "MemorySecretStore",
    "SecretInfo",
    "SecretStore",
]
