"""The run queue: recipes waiting in the database, drained one at a time by a queue runner.

The queue is a set of QUEUED runs, so it survives a closed window and is shared by everyone on
the same PostgreSQL. :class:`QueueService` adds, lists, reorders and removes them;
:class:`QueueRunner` claims the next one (row locks on PostgreSQL, so two runners never take the
same run), starts the training worker for it in a child process on this machine, waits, and goes
on with the next, past failed ones. ``codetune-studio queue run`` and the window both use it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codetune_studio.core.child_env import child_environment
from codetune_studio.core.child_proc import signal_process_group
from codetune_studio.core.errors import CodetuneError
from codetune_studio.core.fileio import atomic_write_text
from codetune_studio.core.models import Run
from codetune_studio.core.status import RunStatus
from codetune_studio.services.experiments import current_host, current_user
from codetune_studio.services.history import LOG_FILE_NAME, render_log_line
from codetune_studio.services.launch import (
    describe_worker_exit,
    launch_environment,
    worker_command,
)
from codetune_studio.storage.run_history import QueueRepository, RunHistoryRepository

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.storage.db import Database

__all__ = ["DEFAULT_RUN_TIMEOUT_S", "QueueRunner", "QueueService", "WorkerOptions"]

logger = logging.getLogger(__name__)

#: The longest a queued run may train before the runner stops it (checkpointing first).
DEFAULT_RUN_TIMEOUT_S = 7 * 24 * 3600.0
_STOP_GRACE_S = 60.0
_RECIPE_FILE = "recipe.json"
_EVENTS_FILE = "events.jsonl"


class QueueService:
    """Adds, lists, reorders and removes queued runs.

    Args:
        database: The database; one per process.
    """

    def __init__(self, database: Database) -> None:
        self._uow = database.unit_of_work

    def add(
        self,
        recipe: TrainingRecipe,
        *,
        name: str | None = None,
        sweep_id: str | None = None,
        parent_run_id: int | None = None,
        owner: str | None = None,
    ) -> Run:
        """Queue a recipe at the end of the queue.

        Args:
            recipe: What to train.
            name: Display name; the recipe's name by default.
            sweep_id: The sweep group it belongs to.
            parent_run_id: The run it was cloned from.
            owner: Who queued it; the current user by default.

        Returns:
            The QUEUED run.
        """
        with self._uow() as session:
            row = QueueRepository(session).enqueue(
                name=name or recipe.name or "run",
                recipe=recipe.model_dump(mode="json"),
                owner=owner or current_user(),
                host=current_host(),
                sweep_id=sweep_id,
                parent_run_id=parent_run_id,
            )
            run = Run.model_validate(row, from_attributes=True)
        logger.info("Queued run %s (%s) at position %s", run.id, run.name, run.queue_position)
        return run

    def list_queued(self) -> list[Run]:
        """The queued runs in the order they will run."""
        with self._uow() as session:
            return [
                Run.model_validate(row, from_attributes=True)
                for row in QueueRepository(session).queued()
            ]

    def move(self, run_id: int, index: int) -> list[Run]:
        """Move a queued run to ``index`` (0: next) and return the new order.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If a worker has already taken it.
        """
        with self._uow() as session:
            rows = QueueRepository(session).move(run_id, index)
            return [Run.model_validate(row, from_attributes=True) for row in rows]

    def remove(self, run_id: int) -> None:
        """Take a run off the queue.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If a worker has already taken it.
        """
        with self._uow() as session:
            QueueRepository(session).remove(run_id)
        logger.info("Removed run %s from the queue", run_id)

    def claim(self, *, host: str | None = None, pid: int | None = None) -> Run | None:
        """Take the next queued run for this process (see ``QueueRepository.claim``).

        Returns:
            The run, now PENDING on this host, or ``None`` when the queue is empty.
        """
        with self._uow() as session:
            row = QueueRepository(session).claim(
                host=host or current_host(), pid=pid if pid is not None else os.getpid()
            )
            return Run.model_validate(row, from_attributes=True) if row is not None else None

    def set_output(self, run_id: int, output_dir: Path) -> None:
        """Record where a claimed run writes, and where its worker log is."""
        with self._uow() as session:
            row = RunHistoryRepository(session).get_many([run_id])[0]
            row.output_dir = str(output_dir)
            row.log_path = str(output_dir / LOG_FILE_NAME)
            session.flush()

    def get(self, run_id: int) -> Run:
        """One run, as stored now.

        Raises:
            NotFoundError: If it does not exist.
        """
        with self._uow() as session:
            row = RunHistoryRepository(session).get_many([run_id])[0]
            return Run.model_validate(row, from_attributes=True)

    def fail(self, run_id: int, reason: str) -> None:
        """Record a claimed run as FAILED when its worker could not record it."""
        from codetune_studio.storage.repositories import RunRepository

        with self._uow() as session:
            repo = RunRepository(session)
            if not repo.get(run_id).status.is_terminal:
                repo.finish(run_id, RunStatus.FAILED, error=reason)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a queue runner starts workers.

    Attributes:
        runs_dir: Each claimed run gets a folder here (on this machine).
        data_dir: The studio's data folder (starter model cache), passed to the worker.
        database_url: The database the worker records in (it holds the password: passed in
            the child's environment only, never on its command line).
        online: Let workers download models.
        run_timeout_s: Stop a run that trains longer than this.
        extra_env: More variables for the worker's environment.
        worker_module: The worker module (tests may substitute one).
    """

    runs_dir: Path
    data_dir: Path
    database_url: str
    online: bool = False
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S
    extra_env: Mapping[str, str] = field(default_factory=dict)
    worker_module: str = "codetune_studio.worker"


class QueueRunner:
    """Drains the queue on this machine, one run at a time, past failures.

    Args:
        queue: The queue service.
        options: How to start workers.
        on_message: Receives one line per event worth telling (claimed, finished...).
    """

    def __init__(
        self,
        queue: QueueService,
        options: WorkerOptions,
        *,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self._queue = queue
        self._options = options
        self._say = on_message or (lambda _line: None)
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop after the current run; ask its worker to checkpoint and stop now."""
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGTERM)

    def drain(
        self, *, wait_for_work: bool = False, poll_s: float = 2.0, max_runs: int | None = None
    ) -> list[Run]:
        """Run queued runs until the queue is empty (or, as a worker, until stopped).

        Args:
            wait_for_work: Keep polling an empty queue for new work (``queue run --worker``).
            poll_s: How often an idle worker looks for work.
            max_runs: Stop after this many runs.

        Returns:
            The runs this runner ran, as they ended.
        """
        done: list[Run] = []
        while not self._stopping.is_set() and (max_runs is None or len(done) < max_runs):
            run = self.run_next()
            if run is not None:
                done.append(run)
                continue
            if not wait_for_work:
                break
            self._stopping.wait(poll_s)
        return done

    def run_next(self) -> Run | None:
        """Claim the next queued run, train it in a worker process and wait for it.

        Returns:
            The run as it ended, or ``None`` when the queue was empty.
        """
        claimed = self._queue.claim()
        if claimed is None:
            return None
        folder = self._options.runs_dir / f"run-{claimed.id}"
        self._say(f"Run {claimed.id} ({claimed.name}): starting in {folder}")
        try:
            exit_code = self._train(claimed, folder)
        except (OSError, CodetuneError) as exc:
            self._queue.fail(claimed.id, f"The training process could not start: {exc}")
        else:
            ended = self._queue.get(claimed.id)
            if not ended.status.is_terminal:
                tail = _log_tail(folder / LOG_FILE_NAME)
                self._queue.fail(claimed.id, describe_worker_exit(exit_code, tail))
        run = self._queue.get(claimed.id)
        detail = f": {run.error}" if run.error else ""
        self._say(f"Run {run.id} ({run.name}): {run.status.value}{detail}")
        return run

    def _train(self, run: Run, folder: Path) -> int:
        from codetune_studio.core.recipe import parse_recipe

        folder.mkdir(parents=True, exist_ok=True)
        self._queue.set_output(run.id, folder)
        recipe = parse_recipe(run.recipe, source=f"queued run {run.id}")
        recipe_file = folder / _RECIPE_FILE
        atomic_write_text(recipe_file, recipe.model_dump_json(indent=2) + "\n")
        argv = worker_command(
            self._worker_args(run, recipe_file, folder),
            recipe.launch,
            module=self._options.worker_module,
        )
        env = child_environment(
            {
                "CODETUNE_DATABASE_URL": self._options.database_url,
                "PYTHONUNBUFFERED": "1",
                **launch_environment(recipe.launch),
                **self._options.extra_env,
            }
        )
        with (folder / _EVENTS_FILE).open("wb") as out, (folder / LOG_FILE_NAME).open("wb") as err:
            self._process = subprocess.Popen(  # noqa: S603 - our own worker command line
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=folder,
                env=env,
                **_new_process_group(),
            )
        try:
            return self._wait(self._process)
        finally:
            self._process = None

    def _worker_args(self, run: Run, recipe_file: Path, folder: Path) -> list[str]:
        args = [
            "--recipe",
            str(recipe_file),
            "--run-id",
            str(run.id),
            "--output-dir",
            str(folder),
            "--data-dir",
            str(self._options.data_dir),
            "--record",
        ]
        if self._options.online:
            args.append("--online")
        return args

    def _wait(self, process: subprocess.Popen[bytes]) -> int:
        deadline = time.monotonic() + self._options.run_timeout_s
        while True:
            try:
                return process.wait(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if time.monotonic() < deadline:
                    continue
            logger.warning("run took longer than %.0f s: stopping it", self._options.run_timeout_s)
            _signal_group(process, signal.SIGTERM)  # the worker checkpoints and ends CANCELLED
            try:
                return process.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                return process.wait()


def _new_process_group() -> dict[str, Any]:
    # Its own group: Ctrl+C in the terminal reaches the runner, which stops the worker politely,
    # and a kill reaches every process `accelerate launch` started.
    if sys.platform == "win32":  # pragma: no cover - POSIX CI
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    return {"start_new_session": True}


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    signal_process_group(process, sig)


def _log_tail(path: Path, lines: int = 20) -> Sequence[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [render_log_line(line) for line in text.splitlines()[-lines:]]
