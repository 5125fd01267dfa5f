"""The runs table: lost runs, and the context menu (follow, open, copy, mark failed, delete)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from codetune_studio.core.status import RunStatus
from codetune_studio.services.experiments import current_host
from codetune_studio.storage.orm import RunRow
from codetune_studio.ui import notify

if TYPE_CHECKING:
    from codetune_studio.services.database import OpenedDatabase
    from codetune_studio.ui.studio_services import StudioServices


def _silence(opened_db: OpenedDatabase, run_id: int, minutes: int) -> None:
    with opened_db.database.unit_of_work() as session:
        row = session.get(RunRow, run_id)
        assert row is not None
        row.heartbeat_at = datetime.now(UTC) - timedelta(minutes=minutes)


def _action(menu: Any, name: str) -> Any:
    (action,) = [a for a in menu.actions() if a.objectName() == name]
    return action


def test_a_run_whose_worker_died_shows_as_lost_and_can_be_marked_failed(
    make_window: Any, qtbot: Any, services: StudioServices, opened_db: OpenedDatabase
) -> None:
    experiments = services.experiments
    dead = experiments.create_run("crashed-here", {})
    experiments.start_run(dead.id, pid=2**22 + 12345, host=current_host())  # no such process
    _silence(opened_db, dead.id, minutes=5)
    alive = experiments.create_run("elsewhere", {})
    experiments.start_run(alive.id, pid=1, host="gpu-box")  # beats: fresh heartbeat
    window = make_window()
    model = window.runs_model
    qtbot.waitUntil(lambda: model.lost_reason(dead.id) is not None, timeout=5000)
    row = model.row_of(dead.id)
    assert row is not None
    assert model.data(model.index(row, 2)) == "Lost"
    assert model.lost_reason(alive.id) is None
    assert window.monitor_panel.run_id == alive.id  # the lost one is not followed
    assert any("stopped reporting" in n.text for n in notify.history())
    menu = window.build_run_menu(experiments.get_run(dead.id))
    _action(menu, "markFailedAction").trigger()  # recorded off the GUI thread
    qtbot.waitUntil(lambda: experiments.get_run(dead.id).status is RunStatus.FAILED, timeout=5000)
    failed = experiments.get_run(dead.id)
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    # Its worker was on this machine and is gone: the reason names the process.
    assert failed.error.startswith(f"worker process {2**22 + 12345} ended without finishing")
    qtbot.waitUntil(lambda: model.lost_reason(dead.id) is None, timeout=5000)
    assert "markFailedAction" not in [
        a.objectName() for a in window.build_run_menu(failed).actions()
    ]


def test_context_menu_copies_the_id_and_deletes_only_after_confirmation(
    make_window: Any, qtbot: Any, services: StudioServices, tmp_path: Any
) -> None:
    experiments = services.experiments
    folder = tmp_path / "run-folder"
    folder.mkdir()
    run = experiments.create_run("old", {}, output_dir=str(folder))
    experiments.start_run(run.id, pid=1)
    run = experiments.finish_run(run.id, RunStatus.CANCELLED)
    window = make_window()
    qtbot.waitUntil(lambda: window.runs_model.row_of(run.id) is not None, timeout=5000)
    menu = window.build_run_menu(run)
    names = [a.objectName() for a in menu.actions() if a.objectName()]
    assert names == [
        "followRunAction",
        "resumeRunAction",
        "cloneRunAction",
        "compareRunsAction",
        "openRunFolderAction",
        "copyRunIdAction",
        "exportRunAction",
        "deleteRunAction",
    ]
    _action(menu, "copyRunIdAction").trigger()
    assert QGuiApplication.clipboard().text() == str(run.id)
    asked: list[int] = []

    def refuse(run: Any) -> bool:
        asked.append(run.id)
        return False

    window.confirm_delete = refuse
    _action(menu, "deleteRunAction").trigger()
    assert experiments.get_run(run.id).status is RunStatus.CANCELLED  # still there
    window.confirm_delete = lambda r: True
    _action(menu, "deleteRunAction").trigger()  # deleted off the GUI thread
    assert asked == [run.id]
    qtbot.waitUntil(lambda: experiments.list_runs() == [], timeout=5000)
    assert folder.is_dir()  # files are never deleted
    qtbot.waitUntil(lambda: window.runs_model.rowCount() == 0, timeout=5000)


def test_a_refresh_of_the_same_runs_repaints_only_the_changed_rows_and_keeps_the_selection(
    qtbot: Any, experiments: Any
) -> None:
    """A training run's steps and loss change at every refresh; the other rows do not.

    Resetting the model repainted every row and dropped the selection (re-selecting it reloaded
    the selected run's detail every few seconds).
    """
    from PySide6.QtWidgets import QAbstractItemView, QTableView

    from codetune_studio.core.comparison import RunResults
    from codetune_studio.ui.runs_model import RunsTableModel

    runs = [experiments.create_run(f"run-{i}", {"model": "m"}) for i in range(3)]
    model = RunsTableModel()
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    model.set_runs(runs, results={run.id: RunResults(steps=10) for run in runs})
    view.selectRow(2)
    resets: list[bool] = []
    changed_rows: list[tuple[int, int]] = []
    model.modelReset.connect(lambda: resets.append(True))
    model.dataChanged.connect(
        lambda top, bottom, *_: changed_rows.append((top.row(), bottom.row()))
    )

    results = {run.id: RunResults(steps=10) for run in runs}
    results[runs[1].id] = RunResults(steps=20, final_loss=1.5)
    model.set_runs(runs, results=results)

    assert resets == []
    assert changed_rows == [(1, 1)]
    steps_column = next(
        c
        for c in range(model.columnCount())
        if model.headerData(c, Qt.Orientation.Horizontal) == "Steps"
    )
    assert model.index(1, steps_column).data() == "20"
    assert [index.row() for index in view.selectionModel().selectedRows()] == [2]

    model.set_runs(runs[:2], results=results)  # a run deleted: the rows themselves change

    assert resets == [True]
    assert model.rowCount() == 2
