"""The database password lives in the OS keyring; the settings keep the URL without it.

The Settings dialog hands a typed URL to :func:`store_database_url`, which moves any password
into the keyring and returns the URL to save. Every process that connects calls
:func:`resolve_database_url` to put the password back, in memory only. A settings file written
by an older studio with the password inside is fixed once by :func:`migrate_settings_password`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import SecretStr

from codetune_studio.core.errors import SecretError, StorageError
from codetune_studio.secrets import DATABASE_SECRET
from codetune_studio.storage.db import mask_url, split_password, with_password

if TYPE_CHECKING:
    from codetune_studio.secrets import SecretStore
    from codetune_studio.settings import SettingsStore

__all__ = [
    "mask_database_url",
    "migrate_settings_password",
    "resolve_database_url",
    "store_database_url",
]

logger = logging.getLogger(__name__)


def store_database_url(url: str | None, secrets: SecretStore) -> str | None:
    """Move a URL's password into the keyring and return the URL to save.

    Args:
        url: The URL as typed (``None`` or empty for the local store).
        secrets: The keyring.

    Returns:
        The URL without its password.

    Raises:
        StorageError: It is not a database URL.
        SecretError: The keyring refused the password (nothing is saved in plain text then).
    """
    if not url or not url.strip():
        return None
    bare, password = split_password(url)
    if password is not None:
        secrets.set(DATABASE_SECRET, SecretStr(password))
    return bare


def mask_database_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe to show or record."""
    return mask_url(url) if url else url


def resolve_database_url(url: str | None, secrets: SecretStore) -> str | None:
    """Fill in the keyring's database password for a URL saved without one.

    Args:
        url: The configured URL.
        secrets: The keyring.

    Returns:
        The URL to connect with (in memory only; never written anywhere).
    """
    if not url:
        return url
    try:
        password = secrets.get(DATABASE_SECRET).get_secret_value()
    except SecretError:
        return url  # no stored password: trust auth, .pgpass, or the URL has its own
    try:
        return with_password(url, password)
    except StorageError:
        return url  # an invalid URL fails later, where it is connected to, with its message


def migrate_settings_password(store: SettingsStore, secrets: SecretStore) -> str | None:
    """Move a password found in the settings file's database URL into the keyring.

    Args:
        store: The settings file.
        secrets: The keyring.

    Returns:
        A notice for the user, or ``None`` when there was nothing to move.
    """
    url = store.file_database_url()
    if not url:
        return None
    try:
        bare, password = split_password(url)
    except StorageError:
        return None
    if password is None:
        return None
    try:
        secrets.set(DATABASE_SECRET, SecretStr(password))
    except SecretError as exc:
        return (
            f"The settings file keeps the database password in plain text and it could not be "
            f"moved to the keyring: {exc}"
        )
    store.set_database_url(bare)
    logger.info("moved the database password from the settings file to the keyring")
    return "The database password was moved from the settings file to the OS keyring."
