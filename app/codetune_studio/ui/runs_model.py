"""The runs table: every run in the database, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from codetune_studio.core.status import RunStatus
from codetune_studio.core.units import format_duration

if TYPE_CHECKING:
    from collections.abc import Mapping

    from codetune_studio.core.comparison import RunResults
    from codetune_studio.core.models import Run

__all__ = ["RunsTableModel"]

_COLUMNS = (
    "ID",
    "Name",
    "Status",
    "Owner",
    "Host",
    "Model",
    "Dataset",
    "Method",
    "Started",
    "Duration",
    "Steps",
    "Final loss",
    "Best eval",
    "Tags",
    "Note",
)
_NUMERIC = {"ID", "Duration", "Steps", "Final loss", "Best eval"}
_STATUS_COLOURS = {
    RunStatus.QUEUED: "#7c3aed",
    RunStatus.PENDING: "#6b7280",
    RunStatus.RUNNING: "#2563eb",
    RunStatus.FINISHED: "#16a34a",
    RunStatus.CANCELLED: "#d97706",
    RunStatus.FAILED: "#dc2626",
}
_LOST_COLOUR = "#b45309"
_Index = QModelIndex | QPersistentModelIndex


class RunsTableModel(QAbstractTableModel):
    """Runs as rows; :meth:`set_runs` replaces them, or updates the rows that changed."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._runs: list[Run] = []
        self._lost: dict[int, str] = {}
        self._results: dict[int, RunResults] = {}

    def set_runs(
        self,
        runs: list[Run],
        lost: Mapping[int, str] | None = None,
        results: Mapping[int, RunResults] | None = None,
    ) -> None:
        """Show these runs (already ordered).

        Args:
            runs: The runs.
            lost: Runs still RUNNING in the database whose worker stopped reporting, with why.
            results: Each run's results (steps, losses), when known.
        """
        lost = dict(lost or {})
        results = dict(results or {})
        if (lost, results, runs) == (self._lost, self._results, self._runs):
            return
        if [run.id for run in runs] != [run.id for run in self._runs]:
            self.beginResetModel()
            self._runs = list(runs)
            self._lost = lost
            self._results = results
            self.endResetModel()
            return
        # The same runs in the same order (a refresh while one trains): only the rows that
        # changed are repainted, and the view keeps its selection, current cell and scroll
        # position (a reset repainted every row and re-selected, reloading the run's detail).
        changed = [
            row
            for row, (old, new) in enumerate(zip(self._runs, runs, strict=True))
            if old != new
            or self._results.get(new.id) != results.get(new.id)
            or self._lost.get(new.id) != lost.get(new.id)
        ]
        self._runs = list(runs)
        self._lost = lost
        self._results = results
        last_column = len(_COLUMNS) - 1
        for row in changed:
            self.dataChanged.emit(self.index(row, 0), self.index(row, last_column))

    def results_of(self, run_id: int) -> RunResults | None:
        """A run's results as shown, if known."""
        return self._results.get(run_id)

    def lost_reason(self, run_id: int) -> str | None:
        """Why a run is shown as lost, or ``None`` if it is not."""
        return self._lost.get(run_id)

    def run_at(self, row: int) -> Run | None:
        """The run shown in ``row``, if there is one."""
        return self._runs[row] if 0 <= row < len(self._runs) else None

    def row_of(self, run_id: int) -> int | None:
        """The row showing run ``run_id``, if it is shown."""
        for row, run in enumerate(self._runs):
            if run.id == run_id:
                return row
        return None

    def runs(self) -> list[Run]:
        """The runs shown, in order."""
        return list(self._runs)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._runs)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(_COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        run = self.run_at(index.row())
        if run is None:
            return None
        column = _COLUMNS[index.column()]
        lost = self._lost.get(run.id)
        if lost is not None and column in {"Status", "Note"}:
            return _lost_data(column, role, lost)
        if role == Qt.ItemDataRole.DisplayRole:
            return _cell(run, column, self._results.get(run.id))
        if role == Qt.ItemDataRole.ToolTipRole:
            return run.error or run.note or _cell(run, column, self._results.get(run.id))
        if role == Qt.ItemDataRole.ForegroundRole and column == "Status":
            return QColor(_STATUS_COLOURS[run.status])
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return run.id
        return None


def _lost_data(column: str, role: int, reason: str) -> Any:
    if role == Qt.ItemDataRole.DisplayRole:
        return "Lost" if column == "Status" else reason
    if role == Qt.ItemDataRole.ToolTipRole:
        return f"Still RUNNING in the database, but {reason}. Right-click: Mark as failed."
    if role == Qt.ItemDataRole.ForegroundRole:
        return QColor(_LOST_COLOUR)
    return None


def _cell(run: Run, column: str, results: RunResults | None) -> str:
    recipe = run.recipe
    simple = {
        "ID": lambda: str(run.id),
        "Name": lambda: run.name,
        "Status": lambda: run.status.value.capitalize(),
        "Owner": lambda: run.owner,
        "Host": lambda: run.host,
        "Model": lambda: str(recipe.get("model", "")),
        "Dataset": lambda: str(recipe.get("dataset", {}).get("path", "")).rsplit("/", 1)[-1],
        "Method": lambda: str(recipe.get("method", "")),
        "Started": lambda: _local(run.started_at or run.created_at).strftime("%Y-%m-%d %H:%M"),
        "Duration": lambda: _duration(run),
        "Tags": lambda: ", ".join(run.tags),
        "Note": lambda: run.error or run.note or "",
    }
    if column in simple:
        return simple[column]()
    if results is None:
        return ""
    if column == "Steps":
        done = results.steps or 0
        return f"{done}/{run.total_steps}" if run.total_steps else str(done or "")
    value = results.final_loss if column == "Final loss" else results.best_eval_loss
    return f"{value:.4f}" if value is not None else ""


def _local(stamp: datetime) -> datetime:
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone()


def _duration(run: Run) -> str:
    if run.started_at is None:
        return ""
    end = run.ended_at or datetime.now(UTC)
    start = run.started_at
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return format_duration((end - start).total_seconds())
