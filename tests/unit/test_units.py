"""One duration format for the runs view, the comparison, the monitor's ETA and the CLI."""

from __future__ import annotations

import pytest

from codetune_studio.cli.tables import fmt_duration
from codetune_studio.core.units import format_duration


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.2, "<1s"),
        (2.54, "2.5s"),
        (12.4, "12s"),
        (185, "3m05s"),
        (3725, "1h02m"),
        (-3, "<1s"),  # a clock step backwards never shows a negative duration
    ],
)
def test_a_duration_reads_the_same_wherever_it_is_shown(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_the_command_line_shows_durations_as_the_window_does() -> None:
    assert fmt_duration(3725) == format_duration(3725) == "1h02m"
    assert fmt_duration(None) == "-"
