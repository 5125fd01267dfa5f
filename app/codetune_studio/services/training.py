"""Training runs as the database knows them: planning, resuming, recording, registering output.

``codetune-studio train``, the worker process and the window all start runs through
:class:`TrainingRunService`, so a run looks the same in the database whoever started it: a
PENDING row with a recipe snapshot and an output folder, RUNNING with a heartbeat while the engine
trains (through :class:`~codetune_studio.services.recording.RunRecorder`), then its end, and for a
finished run a model version with its lineage.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codetune_studio.core.errors import CodetuneError, ConfigError, NotFoundError
from codetune_studio.core.fileio import atomic_write_text
from codetune_studio.core.status import RunStatus
from codetune_studio.services.experiments import current_user
from codetune_studio.services.recording import RunRecorder

if TYPE_CHECKING:
    from collections.abc import Iterator

    from codetune_studio.core.cancel import CancelToken
    from codetune_studio.core.models import ModelVersion, Run
    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.engine.code_eval import CodeJudge
    from codetune_studio.engine.run import RunResult
    from codetune_studio.engine.sinks import EventSink
    from codetune_studio.services.experiments import ExperimentService

__all__ = [
    "RECIPE_SNAPSHOT",
    "PlannedRun",
    "RecordedRun",
    "TrainingRunService",
    "code_judge_for",
    "new_run_folder_name",
    "open_training_runs",
]

logger = logging.getLogger(__name__)

#: The recipe a run trained with, written into its folder.
RECIPE_SNAPSHOT = "recipe.json"


def code_judge_for(recipe: TrainingRecipe) -> CodeJudge | None:
    """What runs the generated code of the recipe's ``evaluation`` section: the sandbox.

    Args:
        recipe: The recipe.

    Returns:
        A judge for the engine, or ``None`` when the recipe evaluates nothing.
    """
    if recipe.evaluation is None:
        return None
    from codetune_studio.services.evaluation import sandbox_judge

    return sandbox_judge()


def new_run_folder_name() -> str:
    """A sortable, unique folder name such as ``20261126-134055-3f2a``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@dataclass(frozen=True, slots=True)
class PlannedRun:
    """A run recorded as PENDING, ready for the engine.

    Attributes:
        run: The database row.
        output_dir: Where the engine writes checkpoints and the adapter.
        resume_from: The checkpoint to continue from, for a resumed run.
    """

    run: Run
    output_dir: Path
    resume_from: Path | None = None


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """How a recorded run ended, and the model version it registered.

    Attributes:
        result: The engine's result.
        version: The registered model version (finished runs only), or ``None``.
        registration_error: Why a finished run's model version could not be registered.
        storage_problem: Why some of the run's records (metrics, status) could not be stored;
            such a run is recorded FAILED and is never a clean success.
    """

    result: RunResult
    version: ModelVersion | None = None
    registration_error: str | None = None
    storage_problem: str | None = None


@contextmanager
def open_training_runs(
    url: str | None, *, data_dir: Path, upgrade: bool = False
) -> Iterator[TrainingRunService]:
    """Open the database a run records in and yield its :class:`TrainingRunService`.

    There is no fallback to the local store: a run recorded where the window is not reading
    would be lost to it.

    Args:
        url: The database URL; ``None`` for the SQLite store in ``data_dir``.
        data_dir: The studio's data folder (its SQLite file and runs folder).
        upgrade: Apply pending migrations (the worker leaves that to the studio).

    Raises:
        StorageUnavailableError: The database cannot be reached.
    """
    from codetune_studio.core.paths import resolve_paths
    from codetune_studio.services.database import open_database
    from codetune_studio.services.experiments import ExperimentService

    paths = resolve_paths(data_dir)
    opened = open_database(
        url, sqlite_path=paths.database_file, allow_fallback=False, upgrade=upgrade
    )
    try:
        yield TrainingRunService(ExperimentService(opened.database), paths.runs_dir)
    finally:
        opened.close()


class TrainingRunService:
    """Starts, resumes and records training runs.

    Args:
        experiments: The database service.
        runs_dir: The folder under which each run gets its own output folder.
    """

    def __init__(self, experiments: ExperimentService, runs_dir: Path) -> None:
        self._experiments = experiments
        self._runs_dir = runs_dir

    def plan(
        self,
        recipe: TrainingRecipe,
        *,
        name: str | None = None,
        output_dir: Path | None = None,
        resume: str | None = None,
        any_owner: bool = False,
        overwrite: bool = False,
        parent_run_id: int | None = None,
    ) -> PlannedRun:
        """Record a new PENDING run and prepare its folder.

        Args:
            recipe: What to train.
            name: Display name; the recipe's name by default.
            output_dir: Where to write; by default the recipe's ``output_dir``, else a new
                folder under the runs folder. A resumed run continues in its predecessor's folder.
            resume: ``latest``, a run id, a run folder or a checkpoint folder to continue from.
            any_owner: Let ``latest`` pick another user's run (on a shared database).
            overwrite: Allow writing into an existing folder that holds files (a new run
                otherwise refuses, so it cannot silently replace another run's output).
            parent_run_id: The run this one was cloned from ("Clone into Parameters").

        Returns:
            The run and where it writes.

        Raises:
            ConfigError: ``resume`` names nothing that can be resumed, or the output folder
                already holds files (and neither resuming nor ``overwrite``).
        """
        previous: Run | None = None
        checkpoint: Path | None = None
        if resume:
            previous, folder, checkpoint = self.find_resumable(resume, any_owner=any_owner)
            output_dir = output_dir or folder
        folder = Path(output_dir or recipe.output_dir or self._runs_dir / new_run_folder_name())
        # Stored absolute: a relative folder would mean another place from another directory.
        folder = folder.expanduser().resolve()
        if not resume and not overwrite and folder.is_dir() and any(folder.iterdir()):
            raise ConfigError(
                f"The output folder {folder} already holds files; choose another output_dir, "
                "continue that run with --resume, or pass --overwrite to write into it anyway"
            )
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / RECIPE_SNAPSHOT, recipe.model_dump_json(indent=2) + "\n")
        run = self._experiments.create_run(
            name or recipe.name or (previous.name if previous else "run"),
            recipe.model_dump(mode="json"),
            output_dir=str(folder),
            resumed_from_id=previous.id if previous else None,
            parent_run_id=parent_run_id,
            # This process trains it (CLI) or launches its worker (window), which then records
            # its own pid: either way a death before the first heartbeat is noticed at once.
            pid=os.getpid(),
        )
        return PlannedRun(run=run, output_dir=folder, resume_from=checkpoint)

    def find_resumable(
        self, value: str, *, any_owner: bool = False
    ) -> tuple[Run | None, Path, Path]:
        """Find what ``--resume VALUE`` means.

        Args:
            value: ``latest`` (the newest run with a checkpoint), a run id, or a run or
                checkpoint folder.
            any_owner: Let ``latest`` consider every user's runs; by default only the current
                user's, so a shared database cannot steer a resume into someone else's folder.

        Returns:
            The run it belongs to (``None`` for a folder the database does not know), the run's
            folder and the checkpoint to load.

        Raises:
            ConfigError: Nothing to resume was found; the message says where it looked.
        """
        from codetune_studio.engine.checkpoint import TRAINER_STATE, latest_checkpoint

        if value == "latest":
            me = current_user()
            for run in self._experiments.list_runs(limit=None):
                if not any_owner and run.owner != me:
                    continue
                if run.output_dir and (found := latest_checkpoint(Path(run.output_dir))):
                    return run, Path(run.output_dir), found
            whose = "recorded run" if any_owner else f"run of yours ({me})"
            raise ConfigError(
                f"--resume latest: no {whose} has a checkpoint to resume"
                + ("" if any_owner else "; add --any-owner to consider other users' runs")
            )
        if value.isdigit():
            try:
                run = self._experiments.get_run(int(value))
            except NotFoundError:
                raise ConfigError(f"--resume {value}: there is no run {value}") from None
            folder = Path(run.output_dir) if run.output_dir else None
            found = latest_checkpoint(folder) if folder else None
            if folder is None or found is None:
                raise ConfigError(
                    f"--resume {value}: run {value} ({run.status.value}) saved no checkpoint"
                )
            return run, folder, found
        path = Path(value).expanduser().resolve()
        if (path / TRAINER_STATE).is_file():
            checkpoint = path
            folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        else:
            folder, found_checkpoint = path, latest_checkpoint(path)
            if found_checkpoint is None:
                raise ConfigError(
                    f"--resume {value}: no checkpoint in {path}; give a run id, 'latest', "
                    "or a checkpoint-N folder"
                )
            checkpoint = found_checkpoint
        return self._run_in(folder), folder, checkpoint

    def train(
        self,
        run: Run,
        recipe: TrainingRecipe,
        sink: EventSink,
        cancel: CancelToken,
        *,
        output_dir: Path,
        data_dir: Path,
        resume_from: Path | None = None,
        offline: bool = True,
    ) -> RecordedRun:
        """Train ``run`` with the engine, recording it, and register a finished run's output.

        The one way a recorded run trains, used by ``codetune-studio train`` and by the worker
        the window starts: the engine's events go to ``sink`` and to a
        :class:`~codetune_studio.services.recording.RunRecorder` (status, heartbeat, metrics),
        and a finished run's adapter becomes a model version with its lineage.

        Args:
            run: The PENDING run (from :meth:`plan`, or created by the window).
            recipe: What to train.
            sink: The caller's own event sink (progress bar, JSON lines); the caller closes it.
            cancel: Stops (or pauses) the run between optimizer steps.
            output_dir: The run's folder.
            data_dir: The studio's data folder (the starter model's cache).
            resume_from: A checkpoint to continue from exactly.
            offline: Never touch the network.

        Returns:
            The engine's result and the registered model version. A registration failure is
            logged and reported in ``registration_error``; it never undoes the run.
        """
        from codetune_studio.engine.run import run_training
        from codetune_studio.engine.sinks import CompositeSink

        recorder = self.recorder(run.id)
        recorder.start_heartbeat()  # model loading can take minutes: keep the run visibly alive
        try:
            result = run_training(
                recipe,
                CompositeSink([sink, recorder]),
                cancel,
                run_id=run.id,
                output_dir=output_dir,
                data_dir=data_dir,
                resume_from=resume_from,
                offline=offline,
                code_judge=code_judge_for(recipe),
            )
        finally:
            recorder.close()  # flushes the metrics and records how the run ended
        problem = recorder.storage_problem
        if result.status is not RunStatus.FINISHED or problem:
            return RecordedRun(result, storage_problem=problem)
        try:
            return RecordedRun(result, self.register_result(run, recipe, result))
        except CodetuneError as exc:
            logger.exception("could not register the model version of run %s", run.id)
            return RecordedRun(result, registration_error=str(exc))

    def attach_worker(self, run_id: int, *, log_path: Path | None = None) -> Run:
        """Record this process as the one starting a PENDING run (and where it logs).

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If the run has already ended (marked lost meanwhile, for example).
        """
        return self._experiments.record_worker(
            run_id, log_path=str(log_path) if log_path is not None else None
        )

    def recorder(self, run_id: int) -> RunRecorder:
        """The event sink that records a run's progress in the database."""
        return RunRecorder(self._experiments, run_id)

    def get_run(self, run_id: int) -> Run:
        """Return one run.

        Raises:
            NotFoundError: If it does not exist.
        """
        return self._experiments.get_run(run_id)

    def register_result(
        self, run: Run, recipe: TrainingRecipe, result: RunResult
    ) -> ModelVersion | None:
        """Register a finished run's adapter (or model) as a model version with its lineage.

        The parent is the newest version made by the run this one resumed, so a chain of
        resumed runs reads as one lineage.

        Returns:
            The new model version, or ``None`` when the run did not finish with an output.
        """
        from codetune_studio.core.recipe import recipe_hash
        from codetune_studio.services.model_identity import base_model_identity

        if result.status is not RunStatus.FINISHED or result.adapter_path is None:
            return None
        parent = self._newest_version_of(run.resumed_from_id)
        # The runs folder sits in the data folder, where the starter model is cached too.
        base_revision = base_model_identity(recipe.model, self._runs_dir.parent)
        version = self._experiments.add_model_version(
            f"{run.name} (run {run.id})",
            path=str(result.adapter_path),
            base_model=recipe.model,
            base_revision=base_revision,
            run_id=run.id,
            dataset_fingerprint=result.dataset_fingerprint,
            recipe_hash=recipe_hash(recipe),
            parent_id=parent.id if parent else None,
        )
        logger.info("Registered model version %s from run %s", version.id, run.id)
        return version

    def _newest_version_of(self, run_id: int | None) -> ModelVersion | None:
        if run_id is None:
            return None
        versions = self._experiments.list_model_versions(run_id=run_id)
        return versions[0] if versions else None

    def _run_in(self, folder: Path) -> Run | None:
        for run in self._experiments.list_runs(limit=None):
            if run.output_dir and Path(run.output_dir).resolve() == folder.resolve():
                return run
        return None
