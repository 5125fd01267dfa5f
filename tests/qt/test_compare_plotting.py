"""The comparison plot gets ready, thinned arrays built off the GUI thread, in a few items."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from codetune_studio.core.comparison import Curve
from codetune_studio.core.models import MetricPoint
from codetune_studio.core.status import RunStatus
from codetune_studio.services.history import RunHistoryService
from codetune_studio.ui import compare_plot

if TYPE_CHECKING:
    from collections.abc import Sequence

    from codetune_studio.ui.studio_services import StudioServices

STEPS = 5000
TOKENS_PER_STEP = 512.0
SPIKE_STEP = 2345
SPIKE = 9.0


def _runs(services: StudioServices, count: int) -> list[int]:
    """Ended runs whose best eval loss falls with their index (the last one is best)."""
    ids = []
    for index in range(count):
        recipe = {
            "model": "tiny-model",
            "dataset": {"path": "d.jsonl"},
            "training": {"seed": index},
        }
        run = services.experiments.create_run(f"run-{index}", recipe)
        services.experiments.start_run(run.id, pid=1, total_steps=STEPS)
        services.experiments.record_metrics(
            run.id, [MetricPoint(STEPS, "eval_loss", 3.0 - index / count, 0.0)]
        )
        services.experiments.finish_run(run.id, RunStatus.FINISHED)
        ids.append(run.id)
    return ids


def _long_curves(run_ids: Sequence[int], names: Sequence[str], **_kwargs: Any) -> list[Curve]:
    """Every curve at every one of 5,000 steps, unthinned: the dialog must thin them itself."""
    steps = list(range(1, STEPS + 1))
    curves = []
    for offset, run_id in enumerate(run_ids):
        values = [0.5 + 2.0 / (1 + step * (1 + offset % 5) / 500) for step in steps]
        values[SPIKE_STEP - 1] = SPIKE
        curves += [
            Curve(
                run_id=run_id,
                name=name,
                steps=steps,
                values=values,
                tokens=[TOKENS_PER_STEP * step for step in steps],
                epochs=[step / 1000 for step in steps],
            )
            for name in names
        ]
    return curves


@pytest.fixture
def built_on(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each time the plot arrays are built: whether it was on the GUI thread."""
    calls: list[bool] = []
    build = compare_plot.build_plot_data

    def recording(*args: Any, **kwargs: Any) -> compare_plot.ComparePlotData:
        calls.append(threading.current_thread() is threading.main_thread())
        return build(*args, **kwargs)

    monkeypatch.setattr(compare_plot, "build_plot_data", recording)
    monkeypatch.setattr(RunHistoryService, "curves", lambda _self, *a, **k: _long_curves(*a, **k))
    return calls


def _open(qtbot: Any, services: StudioServices, run_ids: list[int]) -> Any:
    from codetune_studio.ui.compare_dialog import CompareDialog

    dialog = CompareDialog(services, run_ids)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.comparison is not None, timeout=10_000)
    qtbot.waitUntil(lambda: sorted(dialog.plotted_runs()) == sorted(run_ids), timeout=10_000)
    return dialog


def _points(item: Any) -> int:
    return 0 if item.xData is None else len(item.xData)


def test_thirty_long_runs_arrive_thinned_in_one_item_per_colour(
    qtbot: Any, services: StudioServices, built_on: list[bool]
) -> None:
    run_ids = _runs(services, 30)
    dialog = _open(qtbot, services, run_ids)
    assert built_on == [False], "the plot arrays were built on the GUI thread"
    items = dialog.plot_items()
    # One item per palette colour plus the best run's: not thirty items to paint and bound.
    assert len(items) <= 9
    assert len(dialog._plot.getPlotItem().listDataItems()) == len(items)
    per_run_limit = 2 * compare_plot.decimation_buckets(dialog.width(), len(run_ids)) + 4
    assert per_run_limit < STEPS
    for key, item in items.items():
        assert isinstance(item.xData, np.ndarray), key
        runs_in_item = 1 if key == "best" else len(run_ids[int(key.split(":")[1]) :: 8])
        assert 0 < _points(item) <= runs_in_item * per_run_limit, key
    # The best run is drawn on top, whole, with its loss spike kept by the thinning.
    best = items["best"]
    assert dialog.comparison.best_run_id == run_ids[-1]
    assert best.opts["pen"].widthF() == 3
    assert best.xData[0] == 1
    assert best.xData[-1] == STEPS
    assert best.yData.max() == SPIKE
    assert dialog.best_label.text() == f"Best by eval_loss: ★ run {run_ids[-1]}"
    dialog.close()


def test_switching_the_axis_hands_over_the_arrays_built_for_it(
    qtbot: Any, services: StudioServices, built_on: list[bool]
) -> None:
    run_ids = _runs(services, 20)
    dialog = _open(qtbot, services, run_ids)
    dialog.axis_combo.setCurrentText("tokens")
    best = dialog.plot_items()["best"]
    qtbot.waitUntil(lambda: best.xData[-1] == STEPS * TOKENS_PER_STEP, timeout=10_000)
    assert dialog._plot.getPlotItem().getAxis("bottom").labelText == "tokens seen"
    x_range, _ = dialog._plot.getPlotItem().getViewBox().viewRange()
    assert x_range[0] <= TOKENS_PER_STEP
    assert x_range[1] >= STEPS * TOKENS_PER_STEP
    # The axis switch reused what the worker built: nothing was built again.
    assert built_on == [False]
    dialog.close()


def test_a_few_runs_keep_one_item_each_with_the_best_starred_in_the_legend(
    qtbot: Any, services: StudioServices, built_on: list[bool]
) -> None:
    run_ids = _runs(services, 3)
    dialog = _open(qtbot, services, run_ids)
    assert built_on == [False]
    items = dialog.plot_items()
    assert sorted(items) == sorted(f"run:{run_id}" for run_id in run_ids)
    legend = dialog._plot.getPlotItem().legend
    qtbot.waitUntil(
        lambda: legend.getLabel(items[f"run:{run_ids[-1]}"]).text == f"run {run_ids[-1]} ★",
        timeout=10_000,
    )
    assert items[f"run:{run_ids[-1]}"].opts["pen"].widthF() == 3
    assert items[f"run:{run_ids[0]}"].opts["pen"].widthF() == 1.5
    assert all(_points(item) < STEPS for item in items.values())
    dialog.close()
