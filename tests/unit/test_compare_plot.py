"""The comparison plot's arrays: thinned to the plot's width, spikes kept, runs joined by colour."""

from __future__ import annotations

import math

import numpy as np

from codetune_studio.core.comparison import Curve
from codetune_studio.ui.compare_plot import build_plot_data, decimation_buckets, peak_decimate


def _curve(run_id: int, steps: int, *, spike_at: int | None = None) -> Curve:
    values = [2.0 / (1 + step / 100) for step in range(1, steps + 1)]
    if spike_at is not None:
        values[spike_at - 1] = 50.0
    return Curve(
        run_id=run_id,
        name="loss",
        steps=list(range(1, steps + 1)),
        values=values,
        tokens=[100.0 * step for step in range(1, steps + 1)],
        epochs=[step / 10 for step in range(1, steps + 1)],
    )


def test_thinning_bounds_the_points_and_keeps_the_ends_and_a_spike() -> None:
    xs = np.arange(1, 5001, dtype=float)
    ys = np.cos(xs / 300)
    ys[3210] = 40.0
    ys[3211] = -40.0
    thin_x, thin_y = peak_decimate(xs, ys, 500)
    assert len(thin_x) <= 2 * 500 + 4
    assert (thin_x[0], thin_x[-1]) == (1, 5000)
    assert thin_y.max() == 40.0
    assert thin_y.min() == -40.0
    assert np.all(np.diff(thin_x) > 0), "points stay in order"
    # Every kept point is a real point of the curve.
    assert np.array_equal(thin_y, ys[(thin_x - 1).astype(int)])


def test_a_short_curve_is_left_whole() -> None:
    xs = np.arange(10, dtype=float)
    assert peak_decimate(xs, xs * 2, 500)[0] is xs


def test_the_bucket_count_follows_the_plot_width_within_limits() -> None:
    assert decimation_buckets(1000, runs=3) == 500
    assert decimation_buckets(1000, runs=100) == 250
    assert decimation_buckets(10, runs=3) == 200
    assert decimation_buckets(100_000, runs=3) == 2000


def test_many_runs_share_one_array_per_colour_with_a_break_between_runs() -> None:
    curves = [_curve(run_id, 5000) for run_id in range(1, 21)]
    data = build_plot_data("loss", curves, list(range(1, 21)), colours=8, buckets=500)
    assert not data.per_run
    step = data.axes["step"]
    assert [layer.key for layer in step.layers] == [f"colour:{c}" for c in range(8)]
    first = step.layers[0]
    assert first.run_ids == (1, 9, 17)
    assert isinstance(first.connect, np.ndarray)
    # The line breaks exactly at each run's last point, so runs are not joined end to start.
    breaks = np.flatnonzero(~first.connect)
    assert [int(b) + 1 for b in breaks] == [stop for _, stop in first.spans.values()]
    xs, _ = first.run_data(9)
    assert (xs[0], xs[-1]) == (1, 5000)
    assert data.largest_layer <= 3 * (2 * 500 + 4)
    assert step.bounds == (1.0, 5000.0, first.ys.min(), 2.0 / (1 + 1 / 100))


def test_few_runs_get_a_layer_each_and_every_axis_its_own_arrays() -> None:
    curves = [_curve(1, 300), _curve(2, 300, spike_at=150)]
    curves[0].epochs[:10] = [math.nan] * 10  # epoch not logged at first
    data = build_plot_data("loss", curves, [2, 1], colours=8, buckets=500)
    assert data.per_run
    tokens = data.axes["tokens"]
    assert [layer.key for layer in tokens.layers] == ["run:2", "run:1"]
    assert [layer.colour for layer in tokens.layers] == [0, 1]
    assert tokens.bounds is not None
    assert tokens.bounds[1] == 30_000.0
    assert tokens.layer_of(2) is tokens.layers[0]
    assert tokens.layers[0].ys.max() == 50.0
    epoch_run_1 = data.axes["epoch"].layer_of(1)
    assert epoch_run_1 is not None
    assert len(epoch_run_1.xs) == 290
    assert data.axes["epoch"].drawn_runs == [2, 1]
