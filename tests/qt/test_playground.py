"""The Playground and Eval panels: side-by-side streaming, Stop, and the per-task drill-down."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.evaluation import (
    ModelEvaluation,
    SampleFinding,
    SampleOutcome,
    TaskOutcome,
)
from codetune_studio.services.evaluation import EvalService
from codetune_studio.services.generation import ResolvedModel
from codetune_studio.ui.panels.evaluation import EvalPanel
from codetune_studio.ui.panels.playground import PlaygroundPanel
from tests import engine_fixtures

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from codetune_studio.services.database import OpenedDatabase
    from codetune_studio.services.experiments import ExperimentService

tiny_model_dir = engine_fixtures.tiny_model_dir

GENERATION_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.integration.test_generation import save_lora_adapter

    return save_lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "adapter")


@pytest.fixture
def playground(
    qtbot: Any, experiments: ExperimentService, tiny_model_dir: Path, adapter_dir: Path
) -> Iterator[PlaygroundPanel]:
    def resolve(value: str) -> ResolvedModel:
        return ResolvedModel(str(tiny_model_dir), adapter_dir, value)

    panel = PlaygroundPanel(experiments, resolve, device="cpu")
    qtbot.addWidget(panel)
    panel.picker.set_folder(str(adapter_dir))
    yield panel
    panel.shutdown()


def pane_answer(panel: PlaygroundPanel, variant: str) -> str:
    pane = panel.tuned_pane if variant == "tuned" else panel.base_pane
    return pane.text.toPlainText().split("\n\n", 1)[1]


def test_tuned_and_base_answers_stream_side_by_side(
    playground: PlaygroundPanel, qtbot: Any
) -> None:
    playground.max_tokens.setValue(12)
    with qtbot.waitSignal(playground.generation_finished, timeout=GENERATION_TIMEOUT_MS) as done:
        playground.send("Write a Python function `triple`.")
    assert done.args == [None]
    tuned, base = pane_answer(playground, "tuned"), pane_answer(playground, "base")
    assert tuned
    assert base
    assert tuned != base  # the adapter is on for one side only
    assert "tokens/s" in playground.tuned_pane.stats.text()
    assert "tokens/s" in playground.base_pane.stats.text()
    assert playground.history.count() == 1
    assert playground.send_button.isEnabled()


def test_stop_ends_a_long_answer_and_keeps_what_arrived(
    playground: PlaygroundPanel, qtbot: Any
) -> None:
    playground.compare_check.setChecked(False)
    playground.max_tokens.setValue(20_000)
    with qtbot.waitSignal(playground.generation_finished, timeout=GENERATION_TIMEOUT_MS):
        playground.send("Keep talking.")
        qtbot.waitUntil(lambda: len(pane_answer(playground, "tuned")) > 5, timeout=120_000)
        assert playground.stop_button.isEnabled()
        playground.stop_button.click()
    assert "stopped" in playground.tuned_pane.stats.text()
    assert len(pane_answer(playground, "tuned")) > 5


def stored_evaluation() -> ModelEvaluation:
    good = SampleOutcome(
        sample=0, completion="def f():\n    return 1", code="def f():\n    return 1\n",
        parsed=True, passed=True, reason="passed", stop_reason="eos", tokens=9,
    )  # fmt: skip
    bad = SampleOutcome(
        sample=1, completion="def f(:", code="def f(:\n", parsed=False, passed=False,
        reason="failed", output="SyntaxError: invalid syntax", stop_reason="length", tokens=30,
        findings=(SampleFinding(severity="error", rule="syntax-error", message="cannot parse"),),
    )  # fmt: skip
    return ModelEvaluation(
        label="v:1 demo", variant="tuned", task_source="tasks.jsonl", num_tasks=1,
        samples_per_task=2, temperature=0.8, pass_at_1=0.5, pass_at_k={1: 0.5, 2: 1.0},
        parse_rate=0.5, eos_rate=0.5, mean_tokens=19.5, findings_per_sample=0.5,
        isolation="namespaces",
        tasks=(TaskOutcome(task_id="one", prompt="Write f.", tests="assert f() == 1",
                           samples=(good, bad)),),
    )  # fmt: skip


def test_eval_panel_lists_results_and_drills_into_each_sample(
    qtbot: Any, experiments: ExperimentService, opened_db: OpenedDatabase, tmp_path: Path
) -> None:
    service = EvalService(opened_db.database)
    service._record(stored_evaluation())  # seeding the store
    panel = EvalPanel(service, experiments, lambda v: ResolvedModel(v, None, v), tmp_path / "t")
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.results_loaded, timeout=10_000):
        panel.refresh()
    assert panel.results.rowCount() == 1
    cell = panel.results.item(0, 5)
    assert cell is not None
    assert cell.text() == "50.0%"
    with qtbot.waitSignal(panel.result_shown, timeout=10_000):
        panel.results.selectRow(0)
    task_item = panel.tree.topLevelItem(0)
    assert task_item is not None
    assert task_item.text(0) == "one"
    assert task_item.text(1) == "1/2 passed"
    sample_item = task_item.child(1)
    assert sample_item is not None
    panel.tree.setCurrentItem(sample_item)
    detail = panel.detail.toPlainText()
    assert "Write f." in detail
    assert "def f(:" in detail
    assert "SyntaxError: invalid syntax" in detail
    assert "[syntax-error] cannot parse" in detail
    panel.shutdown()


def test_both_panels_fit_the_centre_of_a_1600_pixel_window(
    qtbot: Any, experiments: ExperimentService, opened_db: OpenedDatabase, tmp_path: Path
) -> None:
    # Beside the default docks the centre is about 630 pixels wide at 1600x1000. Wider panels
    # got a scroll bar there, with Send, Run eval and the sample's code off screen.
    playground = PlaygroundPanel(experiments, lambda v: ResolvedModel(v, None, v), device="cpu")
    evaluation = EvalPanel(
        EvalService(opened_db.database), experiments, lambda v: ResolvedModel(v, None, v), tmp_path
    )
    # Status lines as long as they get: an answer's figures, an error that says what to do.
    long_line = "256 tokens · 287.1 tokens/s · hit the length limit " * 3
    for label in (playground.tuned_pane.stats, playground.base_pane.stats, playground.status,
                  evaluation.status):  # fmt: skip
        label.setText(long_line)
    for panel in (playground, evaluation):
        qtbot.addWidget(panel)
        assert panel.minimumSizeHint().width() <= 600, type(panel).__name__
    playground.shutdown()
