"""Which run is best: lower is better for losses, higher for pass@1 measured during training."""

from __future__ import annotations

from codetune_studio.core.comparison import RunResults, best_run


def test_the_best_run_by_pass_at_1_is_the_highest_one() -> None:
    results = {
        1: RunResults(final_pass_at_1=0.2, best_eval_loss=1.0),
        2: RunResults(final_pass_at_1=0.6, best_eval_loss=2.0),
        3: RunResults(best_eval_loss=0.5),  # measured no pass@1: not a candidate
    }
    assert best_run(results, "eval_pass@1") == 2
    assert best_run(results, "eval_loss") == 3
    assert results[2].metric("eval_pass@1") == 0.6
