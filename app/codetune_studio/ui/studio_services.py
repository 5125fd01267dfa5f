"""What the window and its panels need from the layers below, bundled so tests can inject it."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from codetune_studio.core.child_cmd import python_module_command

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from codetune_studio.core.paths import StudioPaths
    from codetune_studio.plugins.registry import PluginEntry
    from codetune_studio.secrets import SecretStore
    from codetune_studio.services.analysis import AnalysisService
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.services.training import TrainingRunService

__all__ = [
    "StudioServices",
    "WorkerLaunch",
    "default_worker_launch",
    "discover_plugins",
    "probe_database",
    "resources_dir",
]

logger = logging.getLogger(__name__)


def resources_dir() -> Path:
    """The ``resources/`` folder: sample datasets, recipes and documentation."""
    env = os.environ.get("CODETUNE_RESOURCES_DIR")
    if env:
        return Path(env)
    frozen = getattr(sys, "_MEIPASS", None)  # a PyInstaller bundle keeps it beside the code
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[3] / "resources"


@dataclass(frozen=True, slots=True)
class WorkerLaunch:
    """How to start one training worker process.

    Attributes:
        argv: The command line.
        env: Extra environment variables (added to the studio's own).
        cwd: The working folder.
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


def default_worker_launch(
    *,
    recipe_file: Path,
    run_id: int,
    output_dir: Path,
    data_dir: Path,
    database_url: str | None,
    resume_from: Path | None = None,
    online: bool = False,
) -> WorkerLaunch:
    """The real worker: ``python -m codetune_studio.worker`` (the frozen studio re-entered).

    Args:
        recipe_file: The recipe as JSON.
        run_id: The run's database id.
        output_dir: Where the run writes checkpoints.
        data_dir: The studio's data folder (the worker finds the database from it).
        database_url: The database URL when it is not the local SQLite store.
        resume_from: A checkpoint folder to resume from.
        online: Allow the worker to download models.

    Returns:
        The launch description.
    """
    argv = python_module_command(
        "codetune_studio.worker",
        "--recipe",
        str(recipe_file),
        "--run-id",
        str(run_id),
        "--output-dir",
        str(output_dir),
        "--data-dir",
        str(data_dir),
        "--record",
    )
    if resume_from is not None:
        argv += ["--resume", str(resume_from)]
    if online:
        argv.append("--online")
    env = {"PYTHONUNBUFFERED": "1"}
    if database_url:
        env["CODETUNE_DATABASE_URL"] = database_url
    return WorkerLaunch(argv=argv, env=env, cwd=output_dir)


def discover_plugins(disabled: Sequence[str] = ()) -> list[PluginEntry]:
    """The installed plugins, through the registry (never raises)."""
    from codetune_studio.plugins.registry import discover

    return discover(disabled)


def probe_database(url: str, sqlite_path: Path, timeout_s: float = 5.0) -> str:
    """Connect to ``url`` once and describe what is there, for the Settings dialog.

    Args:
        url: The database URL to try; empty for the local SQLite store.
        sqlite_path: The local SQLite file.
        timeout_s: Seconds to keep trying.

    Returns:
        A one-line description such as ``"Connected: postgresql, schema at 0001 (current)"``.

    Raises:
        StorageError: If it cannot connect; the message says why.
    """
    from codetune_studio.services.database import DatabaseService, open_database

    opened = open_database(
        url or None,
        sqlite_path=sqlite_path,
        allow_fallback=False,
        connect_timeout=timeout_s,
        upgrade=False,
    )
    try:
        status = DatabaseService(opened.database).status()
    finally:
        opened.close()
    schema = (
        "schema is current"
        if status.is_current
        else f"schema at {status.revision or 'empty'}; it is upgraded when the studio uses it"
    )
    return f"Connected to {status.url_masked} ({status.dialect}); {schema}."


@dataclass(slots=True)
class StudioServices:
    """Everything below the window that panels use, injected so tests can pass fakes.

    Attributes:
        experiments: Runs, metrics, configs and datasets.
        paths: The studio's folders.
        secrets: The API key store.
        database_label: What the status bar says about the database in use.
        database_url: The URL of the database in use, handed to workers so they record there;
            ``None`` lets a worker use the SQLite store in the data folder.
        offline: Whether the network is off limits.
        worker_launch: Builds the command line of a training worker (tests swap in a fake).
        plugins: Lists the installed plugins.
        test_database: Tries a database URL for the Settings dialog.
        resources: The folder with sample datasets, recipes and docs.
        fallback_reason: Why the local store stands in for an unreachable PostgreSQL, if it does.
    """

    experiments: ExperimentService
    paths: StudioPaths
    secrets: SecretStore
    database_label: str
    database_url: str | None = None
    offline: bool = False
    worker_launch: Callable[..., WorkerLaunch] = default_worker_launch
    plugins: Callable[[Sequence[str]], list[PluginEntry]] = discover_plugins
    test_database: Callable[[str, Path], str] = probe_database
    resources: Path = field(default_factory=resources_dir)
    fallback_reason: str | None = None

    @property
    def analysis(self) -> AnalysisService:
        """Runs analysis plugins (with the declared keys only) and records what they find."""
        from codetune_studio.services.analysis import AnalysisService

        return AnalysisService(self.secrets, self.experiments, offline=self.offline)

    @property
    def training(self) -> TrainingRunService:
        """Plans runs (database row, output folder, resume checkpoint) for the run host."""
        from codetune_studio.services.training import TrainingRunService

        return TrainingRunService(self.experiments, self.paths.runs_dir)
