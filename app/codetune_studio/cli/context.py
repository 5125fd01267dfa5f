"""Global options and the lazily built services every subcommand may need."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from codetune_studio.core.errors import ConfigError
from codetune_studio.core.logs import configure_logging, parse_level
from codetune_studio.core.paths import StudioPaths, resolve_paths
from codetune_studio.secrets import KeyringSecretStore, SecretStore
from codetune_studio.settings import AppSettings, SettingsStore

if TYPE_CHECKING:
    import argparse

    from codetune_studio.services.database import OpenedDatabase

__all__ = ["OFFLINE_ENV_VARS", "CliContext", "GlobalOptions", "echo", "echo_error", "echo_notice"]

logger = logging.getLogger(__name__)

#: The switches that keep Hugging Face libraries from touching the network.
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def echo(message: str = "") -> None:
    """Write one line of normal output."""
    sys.stdout.write(message + "\n")


def echo_error(message: str) -> None:
    """Write one line of error output, prefixed so it stands out in a terminal."""
    sys.stderr.write(f"error: {message}\n")


def echo_notice(message: str) -> None:
    """Write one line the user should notice but that is not an error."""
    sys.stderr.write(f"note: {message}\n")


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """Options every command accepts, before or after the command name."""

    database: str | None = None
    data_dir: Path | None = None
    log_level: str | None = None
    log_file: Path | None = None
    offline: bool = False
    fallback_sqlite: bool = False
    debug: bool = False

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add the global options to ``parser``."""
        group = parser.add_argument_group("global options (accepted anywhere on the line)")
        group.add_argument(
            "--database",
            metavar="URL",
            help="database URL (also CODETUNE_DATABASE_URL or DATABASE_URL); "
            "default: SQLite in the data folder",
        )
        group.add_argument(
            "--data-dir",
            type=Path,
            metavar="DIR",
            help="keep all studio files under DIR (also CODETUNE_DATA_DIR)",
        )
        group.add_argument(
            "--log-level",
            metavar="LEVEL",
            help="console log level: DEBUG, INFO, WARNING (default), ERROR (also LOG_LEVEL)",
        )
        group.add_argument(
            "--log-file",
            type=Path,
            metavar="FILE",
            help="log file (also LOG_FILE); default: studio.log in the log folder",
        )
        group.add_argument(
            "--offline",
            action="store_true",
            default=None,
            help="never use the network (sets the Hugging Face offline switches)",
        )
        group.add_argument(
            "--fallback-sqlite",
            action="store_true",
            default=None,
            help="if the PostgreSQL server is unreachable, use the local SQLite store",
        )
        group.add_argument(
            "--debug",
            action="store_true",
            default=None,
            help="show tracebacks instead of one-line errors",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> GlobalOptions:
        """Read the options from parsed arguments, falling back to environment variables."""
        log_file = args.log_file or (
            Path(os.environ["LOG_FILE"]) if os.environ.get("LOG_FILE") else None
        )
        return cls(
            database=args.database
            or os.environ.get("CODETUNE_DATABASE_URL")
            or os.environ.get("DATABASE_URL")
            or None,
            data_dir=args.data_dir,
            log_level=args.log_level or os.environ.get("LOG_LEVEL") or None,
            log_file=log_file,
            offline=bool(args.offline),
            fallback_sqlite=bool(args.fallback_sqlite),
            debug=bool(args.debug),
        )


class CliContext:
    """What a command needs, built on first use so ``--help`` and ``paths`` stay instant."""

    def __init__(self, options: GlobalOptions) -> None:
        self.options = options
        self._opened: OpenedDatabase | None = None

    @cached_property
    def paths(self) -> StudioPaths:
        """The studio's folders, created on first use."""
        return resolve_paths(self.options.data_dir).ensure()

    @cached_property
    def settings_store(self) -> SettingsStore:
        """The settings file."""
        return SettingsStore(self.paths.settings_file)

    @cached_property
    def settings(self) -> AppSettings:
        """The effective settings (file, then environment).

        A database password an older studio saved in the file is moved to the keyring first.
        """
        from codetune_studio.services.credentials import migrate_settings_password

        notice = migrate_settings_password(self.settings_store, self.secrets)
        if notice:
            self.settings_store.notices.append(notice)
        return self.settings_store.load()

    @cached_property
    def secrets(self) -> SecretStore:
        """The API key store."""
        return KeyringSecretStore()

    @property
    def offline(self) -> bool:
        """Whether the network is off limits, by flag or setting."""
        return self.options.offline or self.settings.offline

    @property
    def database_url(self) -> str | None:
        """The configured database URL, or ``None`` for the local SQLite store.

        A URL saved without its password gets the keyring's database password, in memory only.
        """
        if self.options.database:
            return self.options.database
        from codetune_studio.services.credentials import resolve_database_url

        return resolve_database_url(self.settings.database.url, self.secrets)

    def database_url_masked(self) -> str:
        """The database in use, safe to print: the password is never shown."""
        url = self.database_url
        if url is None:
            return f"sqlite:///{self.paths.database_file}"
        from codetune_studio.storage.db import mask_url

        return mask_url(url)

    @property
    def log_file(self) -> Path:
        """The log file in use."""
        return self.options.log_file or self.paths.log_file

    def log_file_hint(self) -> str:
        """Where to look for details, safe to call even if start-up failed early."""
        try:
            return str(self.log_file)
        except Exception:  # noqa: BLE001 - only a hint inside an error message
            return "the studio's log file"

    def start(self) -> None:
        """Set up logging and the offline switches; report settings notices."""
        level = self.options.log_level or self.settings.log_level
        try:
            parse_level(level)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        # sys.stderr now, not the default bound at import (a replaced stream may be closed since).
        configure_logging(level, log_file=self.log_file, console=sys.stderr)
        for notice in self.settings_store.notices:
            echo_notice(notice)
        if self.offline:
            for name in OFFLINE_ENV_VARS:
                os.environ[name] = "1"

    def open_database(self, *, upgrade: bool = True) -> OpenedDatabase:
        """Connect to the configured database, once per process.

        Args:
            upgrade: Apply pending schema migrations while connecting (the studio's normal
                start); ``db upgrade`` turns it off to report what it applies itself.

        Raises:
            StorageUnavailableError: The database cannot be reached and fallback is off.
        """
        if self._opened is None:
            from codetune_studio.services.database import open_database

            settings = self.settings.database
            self._opened = open_database(
                self.database_url,
                sqlite_path=self.paths.database_file,
                allow_fallback=self.options.fallback_sqlite or settings.fallback_to_sqlite,
                connect_timeout=settings.connect_timeout_s,
                upgrade=upgrade,
            )
            if self._opened.fallback_reason:
                echo_notice(self._opened.fallback_reason)
            self._mark_lost_runs()
        return self._opened

    def _mark_lost_runs(self) -> None:
        """Any studio process that opens the database records runs whose worker died."""
        from codetune_studio.core.errors import StorageError

        if self._opened is None:
            return
        database = self._opened.database
        try:
            if database.current_revision() != database.head_revision():
                return  # `db upgrade` before its migrations: the tables may not match yet
        except StorageError:
            return  # a damaged database: `db status --check` says so, not this
        from codetune_studio.services.experiments import ExperimentService
        from codetune_studio.services.runs import sweep_lost_runs

        for run in sweep_lost_runs(ExperimentService(self._opened.database)):
            echo_notice(f"Run {run.id} ({run.name}) was lost: {run.error}; marked FAILED.")

    def audit(self, action: str, target: str, details: dict[str, object] | None = None) -> None:
        """Record an action in the audit log; an unreachable database is logged, not raised.

        Args:
            action: What was done, e.g. ``key.set``.
            target: What it was done to (never a secret).
            details: Further plain facts.
        """
        from codetune_studio.core.errors import StorageError
        from codetune_studio.services.audit import AuditService

        try:
            opened = self.open_database()
        except StorageError as exc:
            logger.warning("could not record %s of %s in the audit log: %s", action, target, exc)
            return
        AuditService(opened.database).record_quietly(action, target, details)

    def close(self) -> None:
        """Release the database connection pool."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None
