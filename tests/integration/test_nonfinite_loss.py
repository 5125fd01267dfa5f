"""A NaN loss is a failed run: the engine counts non-finite steps, skips their updates and stops."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.cancel import CancelToken
from codetune_studio.core.events import Event, MetricsLogged, RunFinished
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.sinks import ListSink
from tests.trainer_helpers import losses, make_recipe, save_tiny_model, write_completion_dataset

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("nonfinite")
    return save_tiny_model(root / "model"), write_completion_dataset(root / "data.jsonl")


def _poison_steps(monkeypatch: pytest.MonkeyPatch, steps: set[int]) -> None:
    """Make the training loss NaN at the given optimizer steps (one forward pass per step)."""
    import codetune_studio.engine.run as engine_run
    from codetune_studio.engine.packing import token_losses as real

    calls = 0

    def poisoned(logits: Any, labels: Any) -> Any:
        nonlocal calls
        calls += 1
        token_losses, mask = real(logits, labels)
        if calls in steps:
            token_losses = token_losses * math.nan
        return token_losses, mask

    monkeypatch.setattr(engine_run, "token_losses", poisoned)


def _train(recipe: Any, tmp_path: Path) -> tuple[Any, list[Event]]:
    from codetune_studio.engine.run import run_training

    sink = ListSink()
    result = run_training(
        recipe, sink, CancelToken(), run_id="t", output_dir=tmp_path / "run", data_dir=tmp_path
    )
    return result, sink.events


@pytest.mark.expect_logs(r"step [34]: the training loss is nan", r"run t failed: Training diverged")
def test_consecutive_nan_losses_fail_the_run_naming_the_step_last_loss_and_fixes(
    assets: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, data = assets
    _poison_steps(monkeypatch, {3, 4, 5, 6})
    recipe = make_recipe(model, data, max_steps=6, max_nonfinite_steps=2, logging_steps=5)
    result, events = _train(recipe, tmp_path)

    assert result.status is RunStatus.FAILED
    assert result.final_step == 4
    error = result.error or ""
    assert "steps 3-4" in error
    assert re.search(r"last finite loss was \d+\.\d{4} at step 2\b", error), error
    assert "training.learning_rate" in error
    assert "bf16" in error
    assert "training.max_grad_norm" in error
    assert result.adapter_path is None
    assert not (tmp_path / "run" / "adapter").exists()
    # The NaN steps are reported (off the logging_steps grid) so the curves can show them.
    logged = {e.step: e.metrics["loss"] for e in events if isinstance(e, MetricsLogged)}
    assert sorted(logged) == [3, 4]
    assert all(math.isnan(logged[step]) for step in (3, 4))
    assert isinstance(events[-1], RunFinished)
    assert events[-1].status is RunStatus.FAILED
    assert events[-1].error == result.error


@pytest.mark.expect_logs(r"step 2: the training loss is nan")
def test_one_nan_step_below_the_limit_is_skipped_and_training_recovers(
    assets: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, data = assets
    _poison_steps(monkeypatch, {2})
    result, events = _train(make_recipe(model, data, max_steps=4), tmp_path)

    assert result.status is RunStatus.FINISHED, result.error
    curve = losses(events)
    assert math.isnan(curve[2])
    # The NaN step's update was skipped, so the weights stayed usable.
    assert all(math.isfinite(curve[step]) for step in (1, 3, 4))
    assert result.adapter_path is not None


def test_the_limit_is_a_recipe_field_with_a_small_default() -> None:
    from codetune_studio.core.errors import ConfigError
    from codetune_studio.core.recipe import TrainingSpec, apply_overrides, parse_recipe

    assert TrainingSpec().max_nonfinite_steps == 3
    recipe = parse_recipe({"dataset": {"path": "d.jsonl"}}, source="test")
    assert (
        apply_overrides(recipe, ["training.max_nonfinite_steps=1"]).training.max_nonfinite_steps
        == 1
    )
    with pytest.raises(ConfigError, match="max_nonfinite_steps"):
        apply_overrides(recipe, ["training.max_nonfinite_steps=0"])
