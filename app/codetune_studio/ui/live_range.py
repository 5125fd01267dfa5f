"""A live plot's view range that changes now and then, not at every new point.

A pyqtgraph plot that auto-ranges to its data moves its range at every redraw of a growing curve:
each move lays out and repaints both axes' ticks and labels and repaints every item, which was most
of the GUI thread's time while a run trained (``benchmarks/compare_runs.py``). Here the curves
are left out of the auto range and one invisible :class:`RangeAnchor` per plot stands for them: it
spans the data plus some headroom (:func:`stable_bounds`), so the plot keeps the same range, and
its axes their cached drawing, until the data leaves it. Auto range itself stays on, so zooming
with the mouse and the "A" button behave as in any pyqtgraph plot.

Imports pyqtgraph: import this module only where plots are created.
"""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QGraphicsItem

__all__ = ["Bounds", "RangeAnchor", "stable_bounds"]

#: ``(x min, x max, y min, y max)``.
Bounds = tuple[float, float, float, float]

#: Room left right of the newest point, as a share of the x span: the range moves again once the
#: curve has grown by this much (a handful of times per tenfold growth).
X_HEADROOM = 0.25
#: Room above and below the values, as a share of their span.
Y_HEADROOM = 0.1


def stable_bounds(
    current: Bounds | None, data: Bounds | None, *, x_headroom: float = X_HEADROOM
) -> Bounds | None:
    """The bounds a live plot shows: ``current`` while it still fits ``data``, else new ones.

    Each axis is kept while it holds every point; the y axis also only while the values fill
    at least half of its height (so a curve never ends up a flat line in a tall plot). A new x
    range starts at the first x and leaves :data:`X_HEADROOM` right of the last; a new y range
    leaves :data:`Y_HEADROOM` above and below the values.

    Args:
        current: The bounds shown now, if any.
        data: The data's own bounds (finite points only), or ``None`` with no points.
        x_headroom: Room right of the last point, as a share of the x span (0 for a run that
            has ended: its curves will not grow).

    Returns:
        The bounds to show (``current`` itself when it still fits), or ``None`` with no data.
    """
    if data is None:
        return None
    x_min, x_max, y_min, y_max = data
    x_span, y_span = x_max - x_min, y_max - y_min
    x_range = (x_min, x_max + (x_headroom * x_span if x_span > 0 else 1.0))
    y_room = Y_HEADROOM * y_span if y_span > 0 else max(abs(y_max) * Y_HEADROOM, 1e-12)
    y_range = (y_min - y_room, y_max + y_room)
    if current is None:
        return (*x_range, *y_range)
    cx_min, cx_max, cy_min, cy_max = current
    keep_x = cx_min == x_min and x_max <= cx_max
    fills = y_span >= 0.5 * (cy_max - cy_min) / (1 + 2 * Y_HEADROOM)
    keep_y = cy_min <= y_min and y_max <= cy_max and fills
    if keep_x and keep_y:
        return current
    return (
        *((cx_min, cx_max) if keep_x else x_range),
        *((cy_min, cy_max) if keep_y else y_range),
    )


def finite_bounds(xs: Any, ys: Any) -> Bounds | None:
    """The bounds of the points whose x and y are both finite, or ``None`` if there are none.

    Args:
        xs: x coordinates (a NumPy array).
        ys: y coordinates, as many.
    """
    import numpy as np

    if not len(xs):
        return None
    keep = np.isfinite(xs) & np.isfinite(ys)
    if not keep.all():
        xs, ys = xs[keep], ys[keep]
        if not len(xs):
            return None
    return (float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max()))


def union(bounds: list[Bounds | None]) -> Bounds | None:
    """The smallest bounds holding all of ``bounds`` (``None`` entries are skipped)."""
    present = [b for b in bounds if b is not None]
    if not present:
        return None
    return (
        min(b[0] for b in present),
        max(b[1] for b in present),
        min(b[2] for b in present),
        max(b[3] for b in present),
    )


class RangeAnchor(pg.GraphicsObject):  # type: ignore[misc]
    """An item that draws nothing and gives its plot's auto range the bounds it is set to.

    Add it to a plot whose data items were added with ``ignoreBounds=True``: the auto range then
    follows :meth:`set_bounds` alone, and moves only when those change.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents)
        self._bounds: Bounds | None = None

    @property
    def bounds(self) -> Bounds | None:
        """The bounds the plot's auto range covers, if any."""
        return self._bounds

    def set_bounds(self, bounds: Bounds | None) -> bool:
        """Cover these bounds; returns whether they changed (then the plot re-ranges)."""
        if bounds == self._bounds:
            return False
        if bounds is not None and not all(math.isfinite(v) for v in bounds):
            return False
        self._bounds = bounds
        self.informViewBoundsChanged()
        return True

    def dataBounds(
        self,
        axis: int,
        frac: float = 1.0,
        orthoRange: Any = None,  # noqa: N803 - pyqtgraph's keyword
    ) -> tuple[float, float] | None:
        """The extent on one axis (0: x, 1: y) the plot's auto range asks every item for."""
        del frac, orthoRange  # the anchor's bounds are already what the plot should show
        if self._bounds is None:
            return None
        return (
            (self._bounds[0], self._bounds[1]) if axis == 0 else (self._bounds[2], self._bounds[3])
        )

    def boundingRect(self) -> QRectF:
        return QRectF()

    def paint(self, *_args: Any) -> None:
        """Nothing to draw (Qt never calls it: the item has no contents)."""
