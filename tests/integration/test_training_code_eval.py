"""Code evaluation during training: pass@1 of the model being trained at every eval step."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.cancel import CancelToken
from codetune_studio.core.events import CodeEvalCompleted, LogRecorded, RunFinished
from codetune_studio.core.recipe import TrainingRecipe
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.sinks import ListSink
from codetune_studio.services.training import open_training_runs
from tests.trainer_helpers import recipe_data, save_tiny_model, write_completion_dataset

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.core.evaluation import EvalTask

pytestmark = pytest.mark.integration

#: A task whose program parses whatever the (random) model writes: the prompt opens a string
#: that the tests close, so the answer lands inside it. One that always fails, and one a
#: random model cannot solve. pass@1 is then exactly one in three at every step.
TASKS = [
    {
        "task_id": "always",
        "prompt": 'def one():\n    return 1\n_answer = """',
        "tests": '"""\nassert one() == 1\n',
        "entry_point": "one",
    },
    {
        "task_id": "never",
        "prompt": "def two():\n    return 2\n",
        "tests": "assert False, 'no answer passes'\n",
        "entry_point": "two",
    },
    {
        "task_id": "real",
        "prompt": "Write a function triple(x) that returns 3 * x.",
        "tests": "assert triple(4) == 12\n",
        "entry_point": "triple",
    },
]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("code-eval")
    tasks = root / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(t) + "\n" for t in TASKS), encoding="utf-8")
    return save_tiny_model(root / "model"), write_completion_dataset(root / "data.jsonl"), tasks


def _recipe(assets: tuple[Path, Path, Path], **evaluation: Any) -> TrainingRecipe:
    model, data, tasks = assets
    spec = {"tasks": str(tasks), "max_new_tokens": 6, "chat": False, **evaluation}
    return TrainingRecipe.model_validate(
        {**recipe_data(model, data, max_steps=5, eval_steps=2), "evaluation": spec}
    )


def test_pass_at_1_is_stored_at_every_eval_step_and_compared(
    assets: tuple[Path, Path, Path], sqlite_url: str, tmp_path: Path
) -> None:
    from codetune_studio.services.history import RunHistoryService

    recipe = _recipe(assets)
    own = ListSink()
    with open_training_runs(sqlite_url, data_dir=tmp_path / "studio", upgrade=True) as runs:
        planned = runs.plan(recipe, name="with-eval", output_dir=tmp_path / "run")
        recorded = runs.train(
            planned.run,
            recipe,
            own,
            CancelToken(),
            output_dir=planned.output_dir,
            data_dir=tmp_path,
        )
        run_id = planned.run.id
    assert recorded.result.status is RunStatus.FINISHED, recorded.result.error
    # Steps 2 and 4 on the eval_steps grid, and 5: the saved adapter's score.
    scores = [e for e in own.events if isinstance(e, CodeEvalCompleted)]
    assert [e.step for e in scores] == [2, 4, 5]
    for score in scores:
        assert score.tasks == 3
        assert score.seconds > 0
        assert set(score.metrics) == {"eval_pass@1"}
        assert score.metrics["eval_pass@1"] == pytest.approx(1 / 3)
    assert recorded.result.pass_at_1 == pytest.approx(1 / 3)
    logged = [e.message for e in own.events if isinstance(e, LogRecorded)]
    assert any("pass@1 0.333 on 3 tasks" in m and " s" in m for m in logged), logged

    from codetune_studio.services.database import open_database

    opened = open_database(sqlite_url, sqlite_path=tmp_path / "unused.db", allow_fallback=False)
    try:
        history = RunHistoryService(opened.database)
        (curve,) = history.curves([run_id], ["eval_pass@1"])
        comparison = history.compare([run_id], metric="eval_pass@1")
    finally:
        opened.close()
    assert curve.steps == [2, 4, 5]
    assert all(0.0 <= value <= 1.0 for value in curve.values)
    assert comparison.results[run_id].final_pass_at_1 == pytest.approx(1 / 3)
    assert comparison.best_run_id == run_id


@pytest.mark.expect_logs(r"evaluation is off for this run: nothing here can run")
def test_several_samples_record_pass_at_k_and_leave_the_training_unchanged(
    assets: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from codetune_studio.engine.run import run_training

    def judge(task: EvalTask, completion: str) -> bool:
        return task.task_id == "always"

    with_eval, without = ListSink(), ListSink()
    sampled = _recipe(assets, samples=2, temperature=1.0)
    result = run_training(
        sampled, with_eval, CancelToken(), run_id="a", output_dir=tmp_path / "a", data_dir=tmp_path
    )
    assert result.status is RunStatus.FINISHED, result.error
    plain = sampled.model_copy(update={"evaluation": None})
    run_training(
        plain, without, CancelToken(), run_id="b", output_dir=tmp_path / "b", data_dir=tmp_path
    )
    scores = [e for e in with_eval.events if isinstance(e, CodeEvalCompleted)]
    assert scores == []  # no judge given: the section is skipped, with a warning
    warnings = [e for e in with_eval.events if isinstance(e, LogRecorded) and e.level == "WARNING"]
    assert len(warnings) == 1
    assert "evaluation is off" in warnings[0].message

    judged = ListSink()
    run_training(
        sampled,
        judged,
        CancelToken(),
        run_id="c",
        output_dir=tmp_path / "c",
        data_dir=tmp_path,
        code_judge=judge,
    )
    scores = [e for e in judged.events if isinstance(e, CodeEvalCompleted)]
    assert [e.step for e in scores] == [2, 4, 5]
    assert scores[0].metrics == {"eval_pass@1": pytest.approx(1 / 3), "eval_pass@2": 1 / 3}
    # Sampling ran in a forked RNG and the model went back to train mode (LoRA dropout is on
    # in this recipe): the training losses are those of a run without evaluation.
    assert _losses(judged.events) == _losses(without.events)


@pytest.mark.expect_logs(r"evaluation failed at step 2")
def test_a_failing_evaluator_warns_once_and_the_run_finishes(
    assets: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from codetune_studio.engine.run import run_training

    calls = []

    def broken(task: EvalTask, completion: str) -> bool:
        calls.append(task.task_id)
        raise FileNotFoundError("sandbox interpreter is gone")

    sink = ListSink()
    result = run_training(
        _recipe(assets),
        sink,
        CancelToken(),
        run_id="x",
        output_dir=tmp_path / "x",
        data_dir=tmp_path,
        code_judge=broken,
    )
    assert result.status is RunStatus.FINISHED, result.error
    assert isinstance(sink.events[-1], RunFinished)
    assert (tmp_path / "x" / "adapter" / "adapter_config.json").is_file()
    warnings = [e for e in sink.events if isinstance(e, LogRecorded) and e.level == "WARNING"]
    assert len(warnings) == 1
    assert "sandbox interpreter is gone" in warnings[0].message
    assert "training continues" in warnings[0].message
    assert calls == ["always"]  # off after the first failure, not retried at every step
    assert not [e for e in sink.events if isinstance(e, CodeEvalCompleted)]


def _losses(events: list[Any]) -> list[float]:
    from tests.trainer_helpers import losses

    return list(losses(events).values())
