"""``TrainingRunService.train``: the one call the CLI and the worker train a recorded run with."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.cancel import CancelToken
from codetune_studio.core.errors import StorageError
from codetune_studio.core.events import MetricsLogged, RunFinished, RunStarted
from codetune_studio.core.recipe import TrainingRecipe
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.sinks import ListSink
from codetune_studio.services.training import open_training_runs

if TYPE_CHECKING:
    from collections.abc import Iterator

    from codetune_studio.services.training import TrainingRunService

pytestmark = pytest.mark.integration


@pytest.fixture
def runs(database_url: str, tmp_path: Path) -> Iterator[TrainingRunService]:
    with open_training_runs(database_url, data_dir=tmp_path / "studio", upgrade=True) as service:
        yield service


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An engine that reports three steps and finishes with an adapter, without torch work."""
    import codetune_studio.engine.run as engine_run

    def run_training(recipe: Any, sink: Any, cancel: Any, **kwargs: Any) -> Any:
        adapter = kwargs["output_dir"] / "adapter"
        adapter.mkdir(parents=True)
        sink.emit(RunStarted(run_id=kwargs["run_id"], total_steps=3, output_dir=adapter.parent))
        for step in (1, 2, 3):
            sink.emit(MetricsLogged(step=step, metrics={"loss": 3.0 - step}))
        sink.emit(RunFinished(status=RunStatus.FINISHED, final_step=3, adapter_path=adapter))
        return engine_run.RunResult(
            status=RunStatus.FINISHED,
            final_step=3,
            output_dir=kwargs["output_dir"],
            adapter_path=adapter,
            train_loss=0.0,
            dataset_fingerprint="abc",
        )

    monkeypatch.setattr(engine_run, "run_training", run_training)


RECIPE = TrainingRecipe.model_validate({"dataset": {"path": "d.jsonl"}})


@pytest.mark.usefixtures("fake_engine")
def test_train_records_status_and_metrics_and_registers_the_model_version(
    runs: TrainingRunService, tmp_path: Path
) -> None:
    planned = runs.plan(RECIPE, name="shared", output_dir=tmp_path / "run")
    own = ListSink()
    recorded = runs.train(
        planned.run, RECIPE, own, CancelToken(), output_dir=planned.output_dir, data_dir=tmp_path
    )
    assert recorded.result.status is RunStatus.FINISHED
    assert recorded.registration_error is None
    assert recorded.version is not None
    assert recorded.version.run_id == planned.run.id
    assert Path(recorded.version.path) == planned.output_dir / "adapter"
    run = runs.get_run(planned.run.id)
    assert run.status is RunStatus.FINISHED
    # The caller's own sink saw every event the recorder stored.
    assert [type(e).__name__ for e in own.events] == [
        "RunStarted",
        "MetricsLogged",
        "MetricsLogged",
        "MetricsLogged",
        "RunFinished",
    ]


@pytest.mark.usefixtures("fake_engine")
@pytest.mark.expect_logs(r"could not register the model version of run \d+")
def test_a_registration_failure_is_reported_and_does_not_undo_the_run(
    runs: TrainingRunService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = runs.plan(RECIPE, output_dir=tmp_path / "run")

    def refuse(*_: Any) -> None:
        raise StorageError("the database went read-only")

    monkeypatch.setattr(runs, "register_result", refuse)
    recorded = runs.train(
        planned.run,
        RECIPE,
        ListSink(),
        CancelToken(),
        output_dir=planned.output_dir,
        data_dir=tmp_path,
    )
    assert recorded.result.status is RunStatus.FINISHED
    assert recorded.version is None
    assert recorded.registration_error == "the database went read-only"
    assert runs.get_run(planned.run.id).status is RunStatus.FINISHED
