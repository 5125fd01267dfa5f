"""Where the studio keeps its files, from platformdirs, overridable by ``--data-dir``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["APP_NAME", "StudioPaths", "resolve_paths"]

APP_NAME = "codetune-studio"
DATA_DIR_ENV = "CODETUNE_DATA_DIR"
CONFIG_DIR_ENV = "CODETUNE_CONFIG_DIR"


@dataclass(frozen=True, slots=True)
class StudioPaths:
    """The per-user folders the studio reads and writes."""

    data_dir: Path
    config_dir: Path
    log_dir: Path
    cache_dir: Path

    @property
    def settings_file(self) -> Path:
        """The settings file inside the config folder."""
        return self.config_dir / "settings.json"

    @property
    def database_file(self) -> Path:
        """The default SQLite database."""
        return self.data_dir / "studio.db"

    @property
    def runs_dir(self) -> Path:
        """The parent folder of every run's output."""
        return self.data_dir / "runs"

    @property
    def log_file(self) -> Path:
        """The rotating log file."""
        return self.log_dir / "studio.log"

    def ensure(self) -> StudioPaths:
        """Create the folders if they do not exist yet and return ``self``."""
        for folder in (self.data_dir, self.config_dir, self.log_dir, self.cache_dir):
            # Owner-only: the database, the settings and the logs live here.
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self


def resolve_paths(data_dir: Path | str | None = None) -> StudioPaths:
    """Work out the studio's folders.

    ``data_dir`` (the ``--data-dir`` flag) moves everything under one folder, which keeps a
    portable install or a test self-contained. Without it, ``CODETUNE_DATA_DIR`` and
    ``CODETUNE_CONFIG_DIR`` are honoured, then the platform's per-user folders.

    Args:
        data_dir: A folder that holds all the studio's files, or ``None`` for the defaults.

    Returns:
        The resolved folders (not yet created: call :meth:`StudioPaths.ensure`).
    """
    if data_dir is None and os.environ.get(DATA_DIR_ENV):
        data_dir = os.environ[DATA_DIR_ENV]
    if data_dir is not None:
        root = Path(data_dir).expanduser().resolve()
        config = os.environ.get(CONFIG_DIR_ENV)
        return StudioPaths(
            data_dir=root,
            config_dir=Path(config).expanduser().resolve() if config else root / "config",
            log_dir=root / "logs",
            cache_dir=root / "cache",
        )
    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    config = os.environ.get(CONFIG_DIR_ENV)
    return StudioPaths(
        data_dir=dirs.user_data_path,
        config_dir=Path(config).expanduser().resolve() if config else dirs.user_config_path,
        log_dir=dirs.user_log_path,
        cache_dir=dirs.user_cache_path,
    )
