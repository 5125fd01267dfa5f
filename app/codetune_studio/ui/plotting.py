"""pyqtgraph, loaded on first use and tinted with the application palette.

pyqtgraph and NumPy take about a third of a second to import, so nothing on the way to the first
frame imports them: the panels create their plot widgets through :func:`new_plot_widget` once the
window is on screen (or data arrives), and :func:`tint_plot` re-colours a plot when the system
switches between light and dark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

__all__ = ["foreground_colour", "new_plot_widget", "set_default_colours", "tint_plot"]

_AXES = ("left", "bottom")


def foreground_colour(palette: QPalette | None = None) -> QColor:
    """The colour plots draw axes, ticks and titles in: the palette's window text.

    Args:
        palette: The palette to read; the application's by default.

    Returns:
        The colour.
    """
    palette = palette if palette is not None else QApplication.palette()
    return palette.color(QPalette.ColorRole.WindowText)


def set_default_colours(palette: QPalette | None = None) -> None:
    """Make plots created from now on draw in the palette's colours on a transparent background.

    Args:
        palette: The palette to follow; the application's by default.
    """
    import pyqtgraph as pg

    pg.setConfigOptions(foreground=foreground_colour(palette), background=None, antialias=True)


def new_plot_widget(parent: QWidget | None = None) -> Any:
    """A ``pyqtgraph.PlotWidget`` in the current palette's colours (imports pyqtgraph once).

    Args:
        parent: The Qt parent.

    Returns:
        The plot widget.
    """
    import pyqtgraph as pg

    set_default_colours()
    plot = pg.PlotWidget(parent=parent)
    plot.setBackground(None)
    return plot


def tint_plot(plot: Any, palette: QPalette | None = None) -> None:
    """Re-colour a plot's axes, tick labels, title and legend after a palette change.

    Args:
        plot: A ``pyqtgraph.PlotWidget``.
        palette: The palette to follow; the application's by default.
    """
    colour = foreground_colour(palette)
    item = plot.getPlotItem()
    for name in _AXES:
        axis = item.getAxis(name)
        axis.setPen(colour)
        axis.setTextPen(colour)
        if axis.label.toPlainText():
            axis.label.setDefaultTextColor(colour)
    title = item.titleLabel
    if title.text:
        title.setText(title.text, color=colour)
    legend = item.legend
    if legend is not None:
        legend.setLabelTextColor(colour)
