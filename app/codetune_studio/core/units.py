"""Quantities as a person reads them, the same in the window and on the command line."""

from __future__ import annotations

__all__ = ["format_duration"]


def format_duration(seconds: float) -> str:
    """A duration as ``1h02m``, ``3m05s``, ``12s``, ``2.5s`` or ``<1s``.

    One format everywhere (the runs view, the comparison, the monitor's ETA, ``runs list``), so
    the same run does not read as ``1:02:03`` in one place and ``1h02m`` in another.
    """
    seconds = max(0.0, seconds)
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    if seconds < 1:
        return "<1s"
    return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
