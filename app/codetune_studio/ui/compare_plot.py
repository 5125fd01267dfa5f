"""What the comparison plot draws, built off the GUI thread as ready NumPy arrays.

Painting a hundred curves item by item costs the GUI thread more than a frame (each
``PlotDataItem`` paints, bounds and clips on its own), so past a dozen runs the curves of
one colour are joined into one array with breaks between runs: the plot then holds one item per
colour whatever the number of runs. Every curve is thinned to about the plot's pixel width with a
min/max decimation that keeps spikes, and the data bounds of every axis are computed here too, so
the GUI thread only hands arrays to items and sets the range once. Only NumPy, no Qt: this runs on
a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from codetune_studio.core.comparison import AXES, x_values

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from codetune_studio.core.comparison import Axis, Curve

__all__ = [
    "AxisPlot",
    "ComparePlotData",
    "PlotLayer",
    "build_plot_data",
    "decimation_buckets",
    "peak_decimate",
]

#: Above this many runs, curves of one colour share one plot item (and no legend is shown).
PER_RUN_ITEMS_MAX = 12
#: Fewest and most min/max buckets per curve, whatever the plot's width.
_MIN_BUCKETS = 200
_MAX_BUCKETS = 2000


@dataclass(frozen=True, slots=True)
class PlotLayer:
    """One plot item's data: one run's curve, or every curve of one colour.

    Attributes:
        key: Stable across axes and metrics (``run:ID`` or ``colour:N``), so items are reused.
        colour: Index into the dialog's palette.
        run_ids: The runs this layer draws, with at least one point.
        xs: x coordinates, finite.
        ys: y coordinates, finite.
        connect: ``"all"`` for one run; else a mask that is ``False`` at each run's last point,
            so the line breaks between runs.
        spans: Each run's ``(start, stop)`` in ``xs`` / ``ys``.
    """

    key: str
    colour: int
    run_ids: tuple[int, ...]
    xs: NDArray[np.float64]
    ys: NDArray[np.float64]
    connect: str | NDArray[np.bool_] = "all"
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)

    def run_data(self, run_id: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """One run's points in this layer (views, no copy)."""
        start, stop = self.spans.get(run_id, (0, 0))
        return self.xs[start:stop], self.ys[start:stop]


@dataclass(frozen=True, slots=True)
class AxisPlot:
    """Everything drawn against one x axis.

    Attributes:
        layers: One per plot item, in drawing order.
        bounds: ``(x min, x max, y min, y max)`` over every point, or ``None`` with no points.
    """

    layers: tuple[PlotLayer, ...]
    bounds: tuple[float, float, float, float] | None

    @property
    def drawn_runs(self) -> list[int]:
        """The runs with at least one point on this axis."""
        return [run_id for layer in self.layers for run_id in layer.run_ids]

    def layer_of(self, run_id: int) -> PlotLayer | None:
        """The layer that draws ``run_id``."""
        return next((layer for layer in self.layers if run_id in layer.spans), None)


@dataclass(frozen=True, slots=True)
class ComparePlotData:
    """One metric of the compared runs, ready to plot on every axis.

    Attributes:
        metric: The metric.
        curves: The curves as read (the dialog keeps them).
        per_run: Whether each run has its own item (few runs; a legend names them).
        axes: What to draw per x axis.
    """

    metric: str
    curves: list[Curve]
    per_run: bool
    axes: dict[Axis, AxisPlot]

    @property
    def largest_layer(self) -> int:
        """The most points any one plot item gets."""
        return max(
            (len(layer.xs) for plot in self.axes.values() for layer in plot.layers), default=0
        )


def decimation_buckets(plot_width_px: int, runs: int) -> int:
    """Min/max buckets per curve for a plot this wide showing this many runs.

    One bucket per two pixels gives at most about one point per pixel, since a bucket keeps its
    lowest and its highest point. Past a dozen runs the curves overlap into a band where half
    that shows the same, and the GUI thread paints half the points.

    Args:
        plot_width_px: The plot's width in pixels.
        runs: How many runs the plot overlays.
    """
    pixels_per_bucket = 2 if runs <= PER_RUN_ITEMS_MAX else 4
    return max(_MIN_BUCKETS, min(_MAX_BUCKETS, plot_width_px // pixels_per_bucket))


def peak_decimate(
    xs: NDArray[np.float64], ys: NDArray[np.float64], buckets: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Thin a curve to at most ``2 * buckets + 4`` points, keeping each bucket's extremes.

    Points are split into ``buckets`` runs of consecutive points; each keeps its lowest and its
    highest point, in their order, so a loss spike survives the thinning (a plain stride would
    drop it). The first and last points are always kept.

    Args:
        xs: x coordinates, ascending.
        ys: y coordinates.
        buckets: How many buckets.

    Returns:
        The kept points' x and y (the inputs themselves when there is nothing to thin).
    """
    count = len(xs)
    if count <= 2 * buckets + 2:
        return xs, ys
    size = -(-count // buckets)  # ceil: at most `buckets` buckets
    full = count // size
    blocks = ys[: full * size].reshape(full, size)
    base = np.arange(full) * size
    lows = base + np.argmin(blocks, axis=1)
    highs = base + np.argmax(blocks, axis=1)
    keep = [np.minimum(lows, highs), np.maximum(lows, highs)]
    tail = ys[full * size :]
    if len(tail):
        start = full * size
        keep += [np.array([start + int(np.argmin(tail)), start + int(np.argmax(tail))])]
    keep.append(np.array([0, count - 1]))
    indices = np.unique(np.concatenate(keep))
    return xs[indices], ys[indices]


def build_plot_data(
    metric: str,
    curves: Sequence[Curve],
    run_ids: Sequence[int],
    *,
    colours: int,
    buckets: int,
) -> ComparePlotData:
    """Arrays for every axis of one metric's curves (run this off the GUI thread).

    Args:
        metric: The metric the curves are of.
        curves: One curve per run.
        run_ids: The compared runs, in the order that picks their colours.
        colours: How many palette colours there are (run ``i`` gets colour ``i % colours``).
        buckets: Min/max buckets per curve (see :func:`decimation_buckets`).

    Returns:
        The plot data.
    """
    order = {run_id: index for index, run_id in enumerate(run_ids)}
    ordered = sorted(
        (curve for curve in curves if curve.run_id in order), key=lambda c: order[c.run_id]
    )
    per_run = len(run_ids) <= PER_RUN_ITEMS_MAX
    axes: dict[Axis, AxisPlot] = {}
    for axis in AXES:
        points = {curve.run_id: _finite_points(curve, axis, buckets) for curve in ordered}
        if per_run:
            layers = [
                _layer(f"run:{run_id}", order[run_id] % colours, {run_id: xy})
                for run_id, xy in points.items()
            ]
        else:
            layers = [
                _layer(
                    f"colour:{colour}",
                    colour,
                    {
                        run_id: xy
                        for run_id, xy in points.items()
                        if order[run_id] % colours == colour
                    },
                )
                for colour in range(colours)
            ]
        axes[axis] = AxisPlot(tuple(layers), _bounds(layers))
    return ComparePlotData(metric=metric, curves=list(curves), per_run=per_run, axes=axes)


def _finite_points(
    curve: Curve, axis: Axis, buckets: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    ys = np.asarray(curve.values, dtype=float)
    xs = np.asarray(x_values(curve, axis), dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    return peak_decimate(xs[keep], ys[keep], buckets)


def _layer(
    key: str,
    colour: int,
    points: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]],
) -> PlotLayer:
    drawn = {run_id: xy for run_id, xy in points.items() if len(xy[0])}
    lengths = [len(xs) for xs, _ in drawn.values()]
    stops = np.cumsum(lengths, dtype=int) if lengths else np.zeros(0, dtype=int)
    spans = {
        run_id: (int(stop) - length, int(stop))
        for run_id, length, stop in zip(drawn, lengths, stops, strict=True)
    }
    empty = np.zeros(0, dtype=float)
    xs = np.concatenate([xy[0] for xy in drawn.values()]) if drawn else empty
    ys = np.concatenate([xy[1] for xy in drawn.values()]) if drawn else empty
    connect: str | NDArray[np.bool_] = "all"
    if len(drawn) > 1:
        mask = np.ones(len(xs), dtype=bool)
        mask[stops - 1] = False
        connect = mask
    return PlotLayer(key, colour, tuple(drawn), xs, ys, connect, spans)


def _bounds(layers: Sequence[PlotLayer]) -> tuple[float, float, float, float] | None:
    filled = [layer for layer in layers if len(layer.xs)]
    if not filled:
        return None
    return (
        float(min(layer.xs.min() for layer in filled)),
        float(max(layer.xs.max() for layer in filled)),
        float(min(layer.ys.min() for layer in filled)),
        float(max(layer.ys.max() for layer in filled)),
    )
