from __future__ import annotations

import math

import numpy as np

from codetune_studio.ui.live_range import finite_bounds, stable_bounds, union


def test_new_bounds_leave_room_to_grow_right_and_above_and_below() -> None:
    assert stable_bounds(None, (0.0, 100.0, 1.0, 3.0)) == (0.0, 125.0, 0.8, 3.2)


def test_bounds_stay_while_the_data_fits_and_move_when_it_leaves() -> None:
    shown = stable_bounds(None, (1.0, 100.0, 1.0, 3.0))
    assert shown is not None
    assert stable_bounds(shown, (1.0, 120.0, 1.05, 3.0)) is shown
    x_grown = stable_bounds(shown, (1.0, 130.0, 1.05, 3.0))
    assert x_grown is not None
    assert x_grown[1] > 130.0
    assert x_grown[2:] == shown[2:]  # the y range had room: it stays
    y_grown = stable_bounds(shown, (1.0, 100.0, 0.5, 3.0))
    assert y_grown is not None
    assert y_grown[2] < 0.5
    assert y_grown[:2] == shown[:2]


def test_bounds_shrink_when_the_values_fill_too_little_of_the_height() -> None:
    shown = stable_bounds(None, (0.0, 10.0, 0.0, 100.0))
    assert shown is not None
    # A new run's points: a tiny value range would be a flat line in the old height.
    tight = stable_bounds(shown, (0.0, 10.0, 1.0, 2.0))
    assert tight is not None
    assert tight[2:] == (0.9, 2.1)


def test_a_single_point_gets_a_range_of_its_own() -> None:
    bounds = stable_bounds(None, (5.0, 5.0, 2.0, 2.0))
    assert bounds is not None
    x_low, x_high, y_low, y_high = bounds
    assert x_low == 5.0 < x_high
    assert y_low < 2.0 < y_high
    assert stable_bounds(bounds, None) is None


def test_bounds_skip_non_finite_points_and_join() -> None:
    xs = np.array([1.0, 2.0, 3.0, 4.0])
    ys = np.array([2.0, math.nan, math.inf, 1.0])
    assert finite_bounds(xs, ys) == (1.0, 4.0, 1.0, 2.0)
    assert finite_bounds(xs[1:3], ys[1:3]) is None
    assert finite_bounds(np.zeros(0), np.zeros(0)) is None
    assert union([None, (0.0, 1.0, 5.0, 6.0), (2.0, 3.0, -1.0, 0.0)]) == (0.0, 3.0, -1.0, 6.0)
    assert union([None]) is None


def test_an_ended_run_gets_no_room_to_grow() -> None:
    assert stable_bounds(None, (0.0, 100.0, 1.0, 3.0), x_headroom=0.0) == (0.0, 100.0, 0.8, 3.2)
