"""Picking the best run by a metric, pass@1 among them (pure rules, no database)."""

from __future__ import annotations

import pytest

from codetune_studio.core.comparison import (
    RunEvalResults,
    RunResults,
    best_run,
    check_metric,
)
from codetune_studio.core.errors import ConfigError


def test_pass_at_1_picks_the_highest_while_losses_pick_the_lowest() -> None:
    results = {
        1: RunResults(best_eval_loss=1.2, pass_at_1=0.40),
        2: RunResults(best_eval_loss=1.5, pass_at_1=0.75),
        3: RunResults(best_eval_loss=1.0),  # never evaluated
    }
    assert best_run(results, "pass@1") == 2
    assert best_run(results, "pass_at_1") == 2
    assert best_run(results, "eval_loss") == 3


def test_no_run_evaluated_means_no_best_by_pass_at_1() -> None:
    assert best_run({1: RunResults(final_loss=1.0)}, "pass@1") is None


def test_a_mistyped_metric_is_refused_naming_the_right_ones() -> None:
    assert check_metric("pass@1") == "pass@1"
    with pytest.raises(ConfigError, match=r"'pass1'.*eval_loss.*pass@1"):
        check_metric("pass1")


def test_an_evaluation_is_added_to_results_and_cleared_again() -> None:
    trained = RunResults(final_loss=0.5)
    evaluated = trained.with_eval(RunEvalResults(pass_at_1=0.5, eval_k=5, pass_at_k=0.8))
    assert (evaluated.final_loss, evaluated.pass_at_1, evaluated.eval_k) == (0.5, 0.5, 5)
    assert evaluated.metric("pass@k") == 0.8
    assert evaluated.with_eval(None).pass_at_1 is None
    assert trained.with_eval(None) is trained


def test_the_best_run_by_pass_at_1_during_training_is_the_highest_one() -> None:
    results = {
        1: RunResults(final_pass_at_1=0.2, best_eval_loss=1.0),
        2: RunResults(final_pass_at_1=0.6, best_eval_loss=2.0),
        3: RunResults(best_eval_loss=0.5),  # measured no pass@1: not a candidate
    }
    assert best_run(results, "eval_pass@1") == 2
    assert best_run(results, "eval_loss") == 3
    assert results[2].metric("eval_pass@1") == 0.6
