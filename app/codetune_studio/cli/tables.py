"""Plain-text tables and number formatting for the history commands."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from codetune_studio.cli.context import echo
from codetune_studio.core.units import format_duration

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

__all__ = ["fmt_duration", "fmt_number", "fmt_percent", "fmt_time", "print_table"]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows under headers, columns padded to their widest cell."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    echo("  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True)))
    for row in rows:
        echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def fmt_number(value: float | None, digits: int = 4) -> str:
    """A number in a few significant digits, ``-`` for none."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def fmt_percent(value: float | None) -> str:
    """A share as ``42.5%``, ``-`` for none."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 100:.1f}%"


def fmt_time(value: datetime | None) -> str:
    """A UTC time as ``2026-12-01 11:05``, ``-`` for none."""
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def fmt_duration(seconds: float | None) -> str:
    """A duration as the window shows it (``1h02m``, ``3m05s``, ``12s``), ``-`` for none."""
    return "-" if seconds is None else format_duration(seconds)
