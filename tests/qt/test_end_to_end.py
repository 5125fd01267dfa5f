"""The window driving the real worker: sample dataset, starter model, Train, curves, Stop."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from codetune_studio.core.status import RunStatus
from codetune_studio.ui.studio_services import StudioServices, resources_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def tiny_starter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A very small model standing in for the starter model, built once per session."""
    from codetune_studio.engine.starter import STARTER_NAME, build_tiny_model_and_tokenizer

    folder = tmp_path_factory.mktemp("codetune-tiny-starter") / "models" / STARTER_NAME
    build_tiny_model_and_tokenizer(folder)
    return folder


def _prepare(
    make_window: Any, qtbot: Any, services: StudioServices, starter: Path, steps: int
) -> Any:
    models = services.paths.data_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / starter.name).symlink_to(starter, target_is_directory=True)
    window = make_window(stop_grace_s=60.0)
    sample = str(resources_dir() / "datasets" / "python-instructions.jsonl")
    assert window.datasets_panel.select_path(sample)
    with qtbot.waitSignal(window.datasets_panel.dataset_chosen):
        window.datasets_panel.use_button.click()
    params = window.parameters_panel
    assert params.apply_preset("quickstart")
    assert params.recipe is not None
    assert params.recipe.dataset.path == sample
    params.set_model("starter")
    for key, value in {
        "training.max_steps": str(steps),
        "training.per_device_train_batch_size": "2",
        "training.max_seq_length": "64",
        "training.eval_steps": "",
        "training.save_steps": "",
    }.items():
        field = params.field(key)
        field.editor.clear()
        qtbot.keyClicks(field.editor, value)
    assert params.is_valid, params.errors
    return window


def test_train_see_the_loss_curve_stop_and_find_the_run_cancelled(
    make_window: Any, qtbot: Any, services: StudioServices, tiny_starter: Path
) -> None:
    window = _prepare(make_window, qtbot, services, tiny_starter, steps=5000)
    with qtbot.waitSignal(window.run_started, timeout=5000) as started:
        window.train_button.click()
    run_id = started.args[0]
    monitor = window.monitor_panel
    qtbot.waitUntil(lambda: monitor.point_count("loss") >= 3, timeout=90_000)
    loss_plot = monitor.plots["loss"]
    assert loss_plot.objectName() == "lossPlot"
    curve = loss_plot.getPlotItem().listDataItems()[0]

    def curve_has_points() -> bool:
        xs = curve.getOriginalDataset()[0]  # None until the first throttled redraw
        return xs is not None and len(xs) >= 3

    qtbot.waitUntil(curve_has_points, timeout=2000)
    with qtbot.waitSignal(window.run_ended, timeout=60_000) as ended:
        monitor.stop_button.click()
    assert ended.args[0].status is RunStatus.CANCELLED
    window.refresh_runs()
    model = window.runs_model
    qtbot.waitUntil(
        lambda: (
            model.row_of(run_id) is not None
            and model.run_at(model.row_of(run_id)).status is RunStatus.CANCELLED
        ),
        timeout=5000,
    )
    assert model.data(model.index(model.row_of(run_id), 2)) == "Cancelled"


def test_a_short_run_finishes(
    make_window: Any, qtbot: Any, services: StudioServices, tiny_starter: Path
) -> None:
    window = _prepare(make_window, qtbot, services, tiny_starter, steps=6)
    with qtbot.waitSignal(window.run_ended, timeout=90_000) as ended:
        window.train_button.click()
    outcome = ended.args[0]
    assert outcome.status is RunStatus.FINISHED, outcome.reason
    assert window.monitor_panel.point_count("loss") == 6
    run = services.experiments.get_run(outcome.run_id)
    assert run.status is RunStatus.FINISHED
    # The worker recorded its own metrics and registered its adapter as a model version.
    assert len(services.experiments.metric_curve(outcome.run_id, "loss")) == 6
    (version,) = services.experiments.list_model_versions(run_id=outcome.run_id)
    assert Path(version.path).is_dir()


def test_resume_a_cancelled_run_from_the_runs_table(
    make_window: Any, qtbot: Any, services: StudioServices, tiny_starter: Path
) -> None:
    from codetune_studio.core.recipe import load_recipe

    models = services.paths.data_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / tiny_starter.name).symlink_to(tiny_starter, target_is_directory=True)
    preset = load_recipe(resources_dir() / "recipes" / "quickstart.yaml")
    recipe = preset.model_copy(
        update={
            "name": "resumable",
            "training": preset.training.model_copy(
                update={
                    # Enough steps that Stop lands mid-run even on a fast machine.
                    "max_steps": 200,
                    "per_device_train_batch_size": 2,
                    "max_seq_length": 64,
                    "eval_steps": None,
                    "save_steps": None,
                }
            ),
        }
    )
    window = make_window(stop_grace_s=60.0)
    monitor = window.monitor_panel
    with qtbot.waitSignal(window.run_started, timeout=5000) as started:
        window.start_training(recipe)
    first_id = started.args[0]
    qtbot.waitUntil(lambda: monitor.point_count("loss") >= 2, timeout=90_000)
    with qtbot.waitSignal(window.run_ended, timeout=60_000) as ended:
        monitor.stop_button.click()
    assert ended.args[0].status is RunStatus.CANCELLED
    cancelled = services.experiments.get_run(first_id)
    stopped_at = monitor.point_count("loss")

    # Right-click the cancelled run: Resume from last checkpoint.
    seen: list[Any] = []
    window.run_started.connect(seen.append)

    menu = window.build_run_menu(cancelled)
    (resume,) = [a for a in menu.actions() if a.objectName() == "resumeRunAction"]
    assert resume.isEnabled()
    with qtbot.waitSignal(window.run_ended, timeout=90_000) as ended:
        resume.trigger()
    outcome = ended.args[0]
    assert outcome.status is RunStatus.FINISHED, outcome.reason
    (second_id,) = seen
    resumed = services.experiments.get_run(second_id)
    assert resumed.resumed_from_id == first_id
    assert resumed.output_dir == cancelled.output_dir
    # It went on from the checkpoint, not from step 1: fewer than 200 new loss points.
    assert 0 < monitor.point_count("loss") < 200
    assert stopped_at >= 2


def test_leave_it_running_on_close_then_a_new_window_finds_and_follows_the_run(
    make_window: Any, qtbot: Any, services: StudioServices, tiny_starter: Path
) -> None:
    from codetune_studio.ui.main_window import CloseChoice

    window = _prepare(make_window, qtbot, services, tiny_starter, steps=5000)
    with qtbot.waitSignal(window.run_started, timeout=5000) as started:
        window.train_button.click()
    run_id = started.args[0]
    qtbot.waitUntil(lambda: window.monitor_panel.point_count("loss") >= 2, timeout=90_000)

    # Close the window choosing "Leave running": the worker goes on without it.
    window.ask_close_choice = lambda: CloseChoice.LEAVE
    assert window.close()
    assert not window.active_controllers
    experiments = services.experiments

    def recorded() -> int:
        return len(experiments.metric_curve(run_id, "loss"))

    at_close = recorded()
    qtbot.waitUntil(lambda: recorded() > at_close + 2, timeout=60_000)
    run = experiments.get_run(run_id)
    assert run.status is RunStatus.RUNNING
    assert run.pid is not None

    # A new window finds the running run at start-up and follows it from the database.
    again = make_window()
    monitor = again.monitor_panel
    qtbot.waitUntil(lambda: monitor.run_id == run_id, timeout=20_000)
    qtbot.waitUntil(lambda: monitor.point_count("loss") > at_close, timeout=30_000)
    followed = monitor.point_count("loss")
    qtbot.waitUntil(lambda: monitor.point_count("loss") > followed, timeout=30_000)

    # Stop it as a scheduler would (SIGTERM): it checkpoints and is recorded as cancelled,
    # and the following window sees it end.
    seen: list[tuple[int, str]] = []
    monitor.run_status_changed.connect(lambda rid, status: seen.append((rid, status)))
    os.kill(run.pid, signal.SIGTERM)
    qtbot.waitUntil(
        lambda: experiments.get_run(run_id).status is RunStatus.CANCELLED, timeout=60_000
    )
    qtbot.waitUntil(lambda: (run_id, RunStatus.CANCELLED.value) in seen, timeout=20_000)
    _reap(run.pid)


def _reap(pid: int) -> None:
    """Collect the detached worker's exit status (the first window no longer watches it)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
