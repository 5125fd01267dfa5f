"""The run history: find runs, label them, compare them, follow them, and trace where they came from.

The window's runs view, its comparison, ``codetune-studio runs ...`` and ``models ...`` all go
through :class:`RunHistoryService`; each method is one unit of work returning core models.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune_studio.core.comparison import (
    Comparison,
    Curve,
    LineageStep,
    RunEvalResults,
    RunResults,
    RunSummary,
    best_run,
    check_metric,
    recipe_differences,
)
from codetune_studio.core.errors import ConflictError
from codetune_studio.core.models import MetricPoint, ModelVersion, Run
from codetune_studio.core.status import RunStatus
from codetune_studio.services.experiments import current_host
from codetune_studio.storage.evaluations import EvalResultRepository
from codetune_studio.storage.repositories import ModelVersionRepository, RunRepository
from codetune_studio.storage.run_history import MetricAggregate, RunHistoryRepository

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from typing import IO

    import numpy as np
    from numpy.typing import NDArray

    from codetune_studio.core.evaluation import ModelEvaluation
    from codetune_studio.storage.db import Database
    from codetune_studio.storage.evaluations import EvalScore
    from codetune_studio.storage.run_history import CurvePoints

__all__ = [
    "LOG_FILE_NAME",
    "LogLines",
    "RunFilter",
    "RunHistoryService",
    "read_log_increment",
    "render_log_line",
]

logger = logging.getLogger(__name__)

#: The worker's log file inside a run's output folder (the run host and the queue write it).
LOG_FILE_NAME = "worker.log"

_RESULT_METRICS = (
    "loss",
    "eval_loss",
    "perplexity",
    "tokens_per_second",
    "tokens",
    "memory_mb",
    "eval_pass@1",
)
_CURVE_EXTRAS = ("tokens", "epoch")


class RunFilter:
    """What the runs list shows: every filter is optional.

    Args:
        statuses: Only these statuses.
        owner: Only this owner's runs.
        tag: Only runs with this tag.
        model: Only runs whose recipe's model contains this text.
        text: Only runs whose id, name, note, model, dataset or tags contain this text.
        sweep_id: Only this sweep's runs.
        limit: At most this many runs (newest first).
    """

    def __init__(
        self,
        *,
        statuses: Sequence[RunStatus] = (),
        owner: str | None = None,
        tag: str | None = None,
        model: str | None = None,
        text: str | None = None,
        sweep_id: str | None = None,
        limit: int | None = 500,
    ) -> None:
        self.statuses = tuple(statuses)
        self.owner = owner or None
        self.tag = tag or None
        self.model = model or None
        self.text = (text or "").strip().lower() or None
        self.sweep_id = sweep_id
        self.limit = limit

    def matches(self, summary: RunSummary) -> bool:
        """Whether a run passes the filters SQL could not apply (tag, model, text)."""
        run = summary.run
        if self.tag is not None and self.tag not in run.tags:
            return False
        if self.model is not None and self.model.lower() not in summary.model.lower():
            return False
        if self.text is None:
            return True
        haystack = " ".join(
            [str(run.id), run.name, run.note or "", summary.model, summary.dataset, *run.tags]
        )
        return self.text in haystack.lower()


def render_log_line(line: str) -> str:
    """A worker log line as people read it: JSON records become ``time LEVEL message``.

    Args:
        line: One line of the worker's stderr log.

    Returns:
        The readable line (a traceback, when the record has one, on the following lines).
    """
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return line
        if isinstance(record, dict) and "message" in record:
            text = f"{record.get('time', '')} {record.get('level', 'INFO')} {record['message']}"
            if record.get("traceback"):
                text += "\n" + str(record["traceback"])
            return text.strip()
    return line


def read_log_increment(
    path: Path, offset: int, *, first_bytes: int = 256 * 1024, final: bool = False
) -> tuple[int, list[str]]:
    """The complete lines appended to a worker log since ``offset``, readable.

    Args:
        path: The log file.
        offset: Where the previous call stopped (0 at first: then only the last
            ``first_bytes`` are read, so a long log does not flood the view).
        first_bytes: How much of a long log the first call reads.
        final: The writer is done (the run ended): a last line without its newline is
            complete, so it comes out too instead of waiting for a newline that never comes.

    Returns:
        The offset to pass next time, and the new lines (a partial last line waits, unless
        ``final``).
    """
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            if offset == 0 and size > first_bytes:
                offset = size - first_bytes
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return offset, []
    end = len(data) if final else data.rfind(b"\n") + 1
    text = data[:end].decode("utf-8", "replace")
    return offset + end, [render_log_line(line) for line in text.splitlines() if line]


class LogLines:
    """The complete lines of a log file that is still being written, as they arrive.

    A worker writes a line in more than one piece now and then (a long record, a full pipe
    buffer); reading what is on disk would then show that line cut in two. A trailing piece
    without its newline waits here until the newline arrives, or until ``final`` says the
    writer is done. Lines are decoded whole, so a character split across writes stays intact.

    Args:
        handle: The log, opened in binary mode.
        chunk_bytes: How much one read takes, so a long log never sits in memory whole.
    """

    def __init__(self, handle: IO[bytes], *, chunk_bytes: int = 64 * 1024) -> None:
        self._handle = handle
        self._chunk_bytes = chunk_bytes
        self._partial = b""

    def read(self, *, final: bool = False) -> Iterator[str]:
        """The lines completed since the last call (with ``final``, the unfinished one too).

        Args:
            final: The writer has finished: the last line is complete without its newline.

        Yields:
            Each line without its line ending.
        """
        while chunk := self._handle.read(self._chunk_bytes):
            *lines, self._partial = (self._partial + chunk).split(b"\n")
            for line in lines:
                yield _decode_line(line)
        if final and self._partial:
            line, self._partial = self._partial, b""
            yield _decode_line(line)


def _decode_line(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").removesuffix("\r")


class RunHistoryService:
    """Lists, labels, compares and follows runs.

    Args:
        database: The database; one per process.
    """

    def __init__(self, database: Database) -> None:
        self._uow = database.unit_of_work

    # Listing ----------------------------------------------------------------------------------

    def list_runs(
        self,
        run_filter: RunFilter | None = None,
        *,
        known: Mapping[int, RunResults] | None = None,
    ) -> list[RunSummary]:
        """Runs newest first with their results, filtered.

        Two aggregate queries fetch the results of every listed run at once. The results of a
        run that has ended never change: pass the ones already read as ``known`` and only the
        other runs' metrics are aggregated, so refreshing the list stays cheap however long the
        history grows.

        Args:
            run_filter: What to list.
            known: Results already read, by run id (used for ended runs only).
        """
        run_filter = run_filter or RunFilter()
        with self._uow() as session:
            repo = RunHistoryRepository(session)
            rows = repo.search(
                statuses=run_filter.statuses,
                owner=run_filter.owner,
                sweep_id=run_filter.sweep_id,
                limit=None if _needs_python_filter(run_filter) else run_filter.limit,
            )
            runs = [Run.model_validate(row, from_attributes=True) for row in rows]
            summaries = self._summaries(_session_repos(session), runs, known or {})
        kept = [summary for summary in summaries if run_filter.matches(summary)]
        return kept[: run_filter.limit] if run_filter.limit is not None else kept

    def get_summary(self, run_id: int) -> RunSummary:
        """One run with its results.

        Raises:
            NotFoundError: If it does not exist.
        """
        with self._uow() as session:
            run = Run.model_validate(RunRepository(session).get(run_id), from_attributes=True)
            return self._summaries(_session_repos(session), [run])[0]

    def owners(self) -> list[str]:
        """The owners who have runs, sorted (for the runs view's filter)."""
        return sorted({summary.run.owner for summary in self.list_runs(RunFilter(limit=None))})

    # Labels -----------------------------------------------------------------------------------

    def add_tags(self, run_id: int, tags: Iterable[str]) -> Run:
        """Add tags to a run (existing ones stay)."""
        with self._uow() as session:
            row = RunRepository(session).get(run_id)
            updated = RunHistoryRepository(session).set_tags(run_id, [*row.tags, *tags])
            return Run.model_validate(updated, from_attributes=True)

    def set_tags(self, run_id: int, tags: Iterable[str]) -> Run:
        """Replace a run's tags."""
        with self._uow() as session:
            row = RunHistoryRepository(session).set_tags(run_id, tags)
            return Run.model_validate(row, from_attributes=True)

    def set_note(self, run_id: int, note: str | None) -> Run:
        """Replace a run's note."""
        with self._uow() as session:
            row = RunHistoryRepository(session).set_note(run_id, note)
            return Run.model_validate(row, from_attributes=True)

    def record_progress_info(
        self, run_id: int, *, total_steps: int | None = None, log_path: str | None = None
    ) -> None:
        """Store a run's planned length and its log file's location."""
        with self._uow() as session:
            RunHistoryRepository(session).set_progress_info(
                run_id, total_steps=total_steps, log_path=log_path
            )

    # Deleting ---------------------------------------------------------------------------------

    def delete_run(self, run_id: int, *, files: bool = False) -> Path | None:
        """Delete an ended run from the database, and its output folder if asked.

        Args:
            run_id: The run.
            files: Also delete its output folder (only from the machine it lives on).

        Returns:
            The folder that was deleted, if any.

        Raises:
            NotFoundError: If the run does not exist.
            ConflictError: If it has not ended, or its files are on another machine.
        """
        run = self.get_summary(run_id).run
        folder = Path(run.output_dir) if files and run.output_dir else None
        if folder is not None and run.host != current_host():
            msg = (
                f"Run {run_id}'s files are on {run.host} ({run.output_dir}); delete them there "
                "with `codetune-studio runs delete --files`, or delete without --files here."
            )
            raise ConflictError(msg)
        with self._uow() as session:
            RunRepository(session).delete(run_id)
        if folder is not None and folder.exists():
            shutil.rmtree(folder)
            logger.info("Deleted run %s and its folder %s", run_id, folder)
            return folder
        logger.info("Deleted run %s", run_id)
        return None

    # Comparing --------------------------------------------------------------------------------

    def compare(
        self,
        run_ids: Sequence[int],
        *,
        metric: str = "eval_loss",
        known: Mapping[int, RunResults] | None = None,
    ) -> Comparison:
        """Put runs side by side: differing recipe fields, results, and the best run.

        Args:
            run_ids: Two or more runs (one works too: it has no differences).
            metric: The metric that picks the best run (``eval_loss`` is the best eval loss,
                ``pass@1`` the newest code evaluation's; see ``METRIC_NAMES``).
            known: Results already read, by run id, as for :meth:`list_runs` (used for ended
                runs only): comparing a hundred listed runs then aggregates none of their
                metrics again (a second of database time for a hundred 5,000-step runs).

        Raises:
            NotFoundError: If a run does not exist.
            ConfigError: If ``metric`` is not a known metric.
        """
        check_metric(metric)
        with self._uow() as session:
            repo = RunHistoryRepository(session)
            runs = [Run.model_validate(row, from_attributes=True) for row in repo.get_many(run_ids)]
            summaries = self._summaries(_session_repos(session), runs, known or {})
        results = {summary.run.id: summary.results for summary in summaries}
        return Comparison(
            runs=runs,
            differences=recipe_differences({run.id: run.recipe for run in runs}),
            results=results,
            metric=metric,
            best_run_id=best_run(results, metric),
        )

    def curves(
        self, run_ids: Sequence[int], names: Sequence[str], *, max_points: int | None = None
    ) -> list[Curve]:
        """Curves of some metrics of many runs, each with its step, tokens and epoch axes.

        One query reads every curve. Tokens seen are the running total of the per-step
        ``tokens`` metric; between logged steps (``logging_steps`` > 1) each logged step stands
        for the steps since the previous one, so runs of different batch sizes line up by the
        data they have seen.

        Args:
            run_ids: The runs.
            names: The metrics.
            max_points: Thin each run's curves to about this many points, in the database (a
                plot shows no more; the last step is always kept).
        """
        wanted = sorted({*names, *_CURVE_EXTRAS})
        with self._uow() as session:
            data = RunHistoryRepository(session).curves(run_ids, wanted, max_points=max_points)
        curves: list[Curve] = []
        for run_id in run_ids:
            per_name = data.get(run_id, {})
            tokens = per_name.get("tokens")
            epochs = per_name.get("epoch")
            for name in names:
                points = per_name.get(name)
                if points is None:
                    curves.append(Curve(run_id=run_id, name=name))
                    continue
                curves.append(
                    Curve(
                        run_id=run_id,
                        name=name,
                        steps=points.steps.tolist(),
                        values=points.values.tolist(),
                        tokens=_tokens_at(tokens, points.steps).tolist(),
                        epochs=_value_at(epochs, points.steps).tolist(),
                    )
                )
        return curves

    def new_points(self, run_id: int, after_step: int) -> list[MetricPoint]:
        """The points a followed run logged after ``after_step`` (one query, new rows only)."""
        with self._uow() as session:
            return RunHistoryRepository(session).points_after(run_id, after_step)

    # Logs and lineage -------------------------------------------------------------------------

    def log_file(self, run: Run) -> Path | None:
        """Where a run's worker log is, if it is on this machine."""
        candidates = [run.log_path] if run.log_path else []
        if run.output_dir:
            candidates.append(str(Path(run.output_dir) / LOG_FILE_NAME))
        for candidate in candidates:
            path = Path(candidate)
            if path.is_file():
                return path
        return None

    def run_lineage(self, run_id: int) -> list[LineageStep]:
        """A run, then the run it resumed or was cloned from, and so on.

        Raises:
            NotFoundError: If the run does not exist.
        """
        with self._uow() as session:
            chain = RunHistoryRepository(session).lineage(run_id)
            return [
                LineageStep(
                    run_id=row.id, name=row.name, status=row.status.value, relation=relation
                )
                for row, relation in chain
            ]

    def model_version(self, version_id: int) -> ModelVersion:
        """One model version.

        Raises:
            NotFoundError: If it does not exist.
        """
        with self._uow() as session:
            row = ModelVersionRepository(session).get(version_id)
            return ModelVersion.model_validate(row, from_attributes=True)

    def model_lineage(self, version_id: int) -> list[tuple[ModelVersion, list[LineageStep]]]:
        """A model version and its ancestors, each with the run lineage that produced it.

        Returns:
            ``(version, runs)`` from the version back to the first one; ``runs`` is the chain of
            runs (resumed from, cloned from) behind that version, empty for an imported one.

        Raises:
            NotFoundError: If the version does not exist.
        """
        with self._uow() as session:
            versions = ModelVersionRepository(session).lineage(version_id)
            history = RunHistoryRepository(session)
            chain: list[tuple[ModelVersion, list[LineageStep]]] = []
            for row in versions:
                runs = (
                    [
                        LineageStep(
                            run_id=run.id, name=run.name, status=run.status.value, relation=rel
                        )
                        for run, rel in history.lineage(row.run_id)
                    ]
                    if row.run_id is not None
                    else []
                )
                chain.append((ModelVersion.model_validate(row, from_attributes=True), runs))
            return chain

    # Code evaluations -------------------------------------------------------------------------

    def evaluations(self, run_id: int) -> list[ModelEvaluation]:
        """The code evaluations of a run's model versions, newest first, base rows included.

        Per-task outcomes are not read (``EvalService.get_result`` reads one with them).
        """
        from codetune_studio.services.evaluation import evaluation_from_row

        with self._uow() as session:
            pairs = EvalResultRepository(session).of_runs([run_id])
            return [evaluation_from_row(row, with_tasks=False) for _, row in pairs]

    # Internals --------------------------------------------------------------------------------

    def _summaries(
        self,
        repos: tuple[RunHistoryRepository, EvalResultRepository],
        runs: list[Run],
        known: Mapping[int, RunResults] | None = None,
    ) -> list[RunSummary]:
        known = known or {}
        reuse = {run.id for run in runs if run.status.is_terminal and run.id in known}
        repo, eval_repo = repos
        stats = repo.aggregates([run.id for run in runs if run.id not in reuse], _RESULT_METRICS)
        # Evaluations come after a run ends, so they are read every time, even for runs whose
        # training results are reused: one light query (no per-task outcomes).
        evals = _newest_evaluations(eval_repo.scores_of_runs([run.id for run in runs]))
        return [
            RunSummary(
                run=run,
                results=(
                    known[run.id] if run.id in reuse else _results(run, stats.get(run.id, {}))
                ).with_eval(evals.get(run.id)),
            )
            for run in runs
        ]


def _session_repos(session: Any) -> tuple[RunHistoryRepository, EvalResultRepository]:
    """The two repositories a run summary reads from, in one unit of work's session."""
    return RunHistoryRepository(session), EvalResultRepository(session)


def _newest_evaluations(scores: Sequence[EvalScore]) -> dict[int, RunEvalResults]:
    """Each run's newest tuned evaluation, with its base's pass@1 when it was compared."""
    rows_by_id = {row.id: row for row in scores}
    newest: dict[int, RunEvalResults] = {}
    for row in scores:  # newest first
        run_id = row.run_id
        if run_id in newest or row.variant != "tuned":
            continue
        metrics: dict[str, Any] = dict(row.metrics or {})
        by_k = {int(k): float(v) for k, v in dict(metrics.get("pass_at_k") or {}).items()}
        k = max(by_k, default=None)
        base = rows_by_id.get(metrics.get("base_result_id") or -1)
        newest[run_id] = RunEvalResults(
            pass_at_1=row.pass_at_1,
            pass_at_k=by_k[k] if k is not None else None,
            eval_k=k,
            base_pass_at_1=base.pass_at_1 if base is not None else None,
            eval_tasks=row.task_source,
            eval_id=row.id,
        )
    return newest


def _needs_python_filter(run_filter: RunFilter) -> bool:
    return any(value is not None for value in (run_filter.tag, run_filter.model, run_filter.text))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _results(run: Run, stats: dict[str, MetricAggregate]) -> RunResults:
    loss = stats.get("loss")
    evals = stats.get("eval_loss")
    perplexity = stats.get("perplexity")
    speed = stats.get("tokens_per_second")
    tokens = stats.get("tokens")
    memory = stats.get("memory_mb")
    passes = stats.get("eval_pass@1")
    end = run.ended_at or (datetime.now(UTC) if run.status is RunStatus.RUNNING else None)
    wall = (end - run.started_at).total_seconds() if end and run.started_at else None
    return RunResults(
        steps=loss.last_step if loss else None,
        final_loss=_finite(loss.last) if loss else None,
        best_eval_loss=_finite(evals.minimum) if evals else None,
        perplexity=_finite(perplexity.minimum) if perplexity else None,
        tokens_per_second=_finite(speed.mean) if speed else None,
        tokens_seen=_finite(tokens.total) if tokens else None,
        wall_time_s=wall,
        peak_memory_mb=_finite(memory.maximum) if memory else None,
        final_pass_at_1=_finite(passes.last) if passes else None,
    )


def _tokens_at(tokens: CurvePoints | None, steps: NDArray[np.int64]) -> NDArray[np.float64]:
    """Tokens seen at each step: the running total at the last logged step not after it."""
    import numpy as np

    if tokens is None or not len(tokens.steps):
        return np.full(len(steps), np.nan)
    index = np.searchsorted(tokens.steps, steps, side="right") - 1
    return np.where(index >= 0, tokens.totals[np.maximum(index, 0)], np.nan)


def _value_at(curve: CurvePoints | None, steps: NDArray[np.int64]) -> NDArray[np.float64]:
    """A curve's value at exactly each step (NaN where it was not read there)."""
    import numpy as np

    if curve is None or not len(curve.steps):
        return np.full(len(steps), np.nan)
    index = np.minimum(np.searchsorted(curve.steps, steps), len(curve.steps) - 1)
    return np.where(curve.steps[index] == steps, curve.values[index], np.nan)
