"""API keys in the OS keyring; the only package that imports ``keyring``."""

from codetune_studio.secrets.store import (
    KEYRING_SERVICE,
    KNOWN_SECRETS,
    KeyringSecretStore,
    MemorySecretStore,
    SecretInfo,
    SecretStore,
)

__all__ = [
    "KEYRING_SERVICE",
    "KNOWN_SECRETS",
    "KeyringSecretStore",
    "MemorySecretStore",
    "SecretInfo",
    "SecretStore",
]
