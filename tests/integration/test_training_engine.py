"""The engine in-process: a real (tiny) LoRA run, exact resume, checkpoints, the CLI."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.cancel import CancelToken
from codetune_studio.core.events import (
    CheckpointSaved,
    EvalCompleted,
    Event,
    MetricsLogged,
    RunFinished,
    RunStarted,
)
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.sinks import ListSink
from tests.trainer_helpers import losses, make_recipe, save_tiny_model, write_completion_dataset

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.engine.run import RunResult

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("engine")
    return save_tiny_model(root / "model"), write_completion_dataset(root / "data.jsonl")


def _train(
    recipe: TrainingRecipe,
    out: Path,
    data_dir: Path,
    *,
    resume: Path | None = None,
    cancel: CancelToken | None = None,
) -> tuple[RunResult, list[Event]]:
    from codetune_studio.engine.run import run_training

    sink = ListSink()
    result = run_training(
        recipe,
        sink,
        cancel or CancelToken(),
        run_id="t",
        output_dir=out,
        data_dir=data_dir,
        resume_from=resume,
    )
    return result, sink.events


def test_short_lora_run_lowers_the_loss_and_reports_every_metric(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    model, data = assets
    recipe = make_recipe(model, data, max_steps=24, learning_rate=3e-2, eval_steps=12)
    result, events = _train(recipe, tmp_path / "run", tmp_path)
    assert result.status is RunStatus.FINISHED, result.error
    started = [e for e in events if isinstance(e, RunStarted)]
    assert len(started) == 1
    assert started[0].total_steps == 24
    metrics = [e for e in events if isinstance(e, MetricsLogged)]
    assert [m.step for m in metrics] == list(range(1, 25))
    assert set(metrics[0].metrics) >= {
        "loss",
        "learning_rate",
        "grad_norm",
        "tokens_per_second",
        "padding_share",
        "memory_mb",
        "epoch",
    }
    curve = [m.metrics["loss"] for m in metrics]
    # A random 1-layer base moves slowly under LoRA (about 5.6 -> 5.35 here); seeded, so stable.
    assert sum(curve[-4:]) / 4 < sum(curve[:4]) / 4 - 0.15, curve
    evals = [e for e in events if isinstance(e, EvalCompleted)]
    assert [e.step for e in evals] == [12, 24]
    assert evals[-1].eval_loss < evals[0].eval_loss
    assert math.isclose(evals[-1].perplexity, math.exp(evals[-1].eval_loss))
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    assert finished.status is RunStatus.FINISHED
    assert finished.adapter_path == tmp_path / "run" / "adapter"
    assert finished.adapter_path is not None
    assert (finished.adapter_path / "adapter_config.json").is_file()
    assert (finished.adapter_path / "adapter_model.safetensors").is_file()
    assert (finished.adapter_path / "tokenizer_config.json").is_file()


def test_resume_replays_the_same_losses_as_an_uninterrupted_run(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    model, data = assets
    # Accumulation, dropout and an epoch boundary (5 batches per epoch) all in play.
    recipe = make_recipe(
        model, data, max_steps=6, gradient_accumulation_steps=2, save_steps=3, warmup_ratio=0.2
    )
    full, full_events = _train(recipe, tmp_path / "full", tmp_path)
    assert full.status is RunStatus.FINISHED, full.error
    checkpoint = tmp_path / "full" / "checkpoints" / "checkpoint-3"
    resumed, resumed_events = _train(recipe, tmp_path / "resumed", tmp_path, resume=checkpoint)
    assert resumed.status is RunStatus.FINISHED, resumed.error
    started = next(e for e in resumed_events if isinstance(e, RunStarted))
    assert started.resumed_from_step == 3
    want = {step: loss for step, loss in losses(full_events).items() if step > 3}
    got = losses(resumed_events)
    assert sorted(got) == [4, 5, 6]
    for step in got:
        assert got[step] == pytest.approx(want[step], abs=1e-6), step


def test_checkpoints_are_complete_and_pruned_to_the_limit(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    from codetune_studio.engine.checkpoint import find_checkpoints, read_trainer_state

    model, data = assets
    recipe = make_recipe(model, data, max_steps=4, save_steps=1, save_total_limit=2)
    (tmp_path / "run" / "checkpoints" / "checkpoint-9.tmp").mkdir(parents=True)  # a killed save
    result, events = _train(recipe, tmp_path / "run", tmp_path)
    assert result.status is RunStatus.FINISHED, result.error
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [1, 2, 3, 4]
    kept = find_checkpoints(tmp_path / "run")
    assert [p.name for p in kept] == ["checkpoint-3", "checkpoint-4"]
    assert not list((tmp_path / "run" / "checkpoints").glob("*.tmp"))
    state = read_trainer_state(kept[-1])
    assert (state.step, state.world_size, state.method) == (4, 1, "lora")
    names = {p.name for p in kept[-1].iterdir()}
    assert {
        "trainable.safetensors",
        "optimizer.pt",
        "scheduler.json",
        "rng_state_0.json",
        "rng_state_0.safetensors",
        "trainer_state.json",
        "manifest.json",
    } <= names
    assert not [n for n in names if n.endswith(".pkl")]  # nothing Accelerate would unpickle
    assert "model.safetensors" not in names  # the frozen base is never copied


@pytest.mark.expect_logs("run t failed: Cannot resume from")
@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("optimizer.pt", "optimizer.pt does not match its sha256"),
        ("trainable.safetensors", "trainable.safetensors does not match its sha256"),
        ("trainer_state.json", "trainer_state.json is missing"),
    ],
)
def test_a_damaged_checkpoint_fails_naming_the_file(
    assets: tuple[Path, Path], tmp_path: Path, damage: str, expected: str
) -> None:
    model, data = assets
    recipe = make_recipe(model, data, max_steps=1, save_steps=1)
    _train(recipe, tmp_path / "run", tmp_path)
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-1"
    if damage == "trainer_state.json":
        (checkpoint / damage).unlink()
    else:
        (checkpoint / damage).write_bytes(b"\x00garbage")
    result, events = _train(
        make_recipe(model, data, max_steps=2), tmp_path / "again", tmp_path, resume=checkpoint
    )
    assert result.status is RunStatus.FAILED
    assert expected in (result.error or "")
    assert str(checkpoint) in (result.error or "")
    assert isinstance(events[-1], RunFinished)
    assert events[-1].status is RunStatus.FAILED


@pytest.mark.expect_logs("run t failed: Cannot resume from .*it was trained with method lora")
def test_resuming_with_another_method_is_refused(assets: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = assets
    _train(make_recipe(model, data, max_steps=1, save_steps=1), tmp_path / "run", tmp_path)
    result, _ = _train(
        make_recipe(model, data, method="dora", max_steps=2),
        tmp_path / "b",
        tmp_path,
        resume=tmp_path / "run" / "checkpoints" / "checkpoint-1",
    )
    assert result.status is RunStatus.FAILED
    assert "trained with method lora, the recipe says dora" in (result.error or "")


def test_cancel_saves_checkpoint_and_reports_cancelled(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    from codetune_studio.engine.run import run_training

    model, data = assets
    cancel = CancelToken()

    class StopAfterTwo(ListSink):
        def emit(self, event: Event) -> None:
            super().emit(event)
            if isinstance(event, MetricsLogged) and event.step == 2:
                cancel.cancel()

    sink = StopAfterTwo()
    result = run_training(
        make_recipe(model, data, max_steps=50),
        sink,
        cancel,
        run_id=1,
        output_dir=tmp_path / "run",
        data_dir=tmp_path,
    )
    events = sink.events
    assert result.status is RunStatus.CANCELLED
    assert result.final_step == 2
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [2]
    assert isinstance(events[-1], RunFinished)
    assert events[-1].status is RunStatus.CANCELLED
    assert result.checkpoint_path == tmp_path / "run" / "checkpoints" / "checkpoint-2"


@pytest.mark.expect_logs("run t failed: model: folder .* not found")
def test_missing_model_fails_with_a_clear_message(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    _, data = assets
    result, events = _train(make_recipe(tmp_path / "nope", data), tmp_path / "run", tmp_path)
    assert result.status is RunStatus.FAILED
    assert "nope" in (result.error or "")
    assert isinstance(events[-1], RunFinished)


@pytest.mark.expect_logs("run t failed: method: qlora found no CUDA GPU")
def test_qlora_on_cpu_fails_suggesting_lora(assets: tuple[Path, Path], tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is here, so QLoRA trains: test_gpu.py covers it on this machine")
    model, data = assets
    result, _ = _train(make_recipe(model, data, method="qlora"), tmp_path / "run", tmp_path)
    assert result.status is RunStatus.FAILED
    assert "method: lora" in (result.error or "")


def test_report_to_tensorboard_writes_an_events_file(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    # tensorboard is a test dependency (the [test] extra): imported plainly, never skipped.
    from tensorboard.backend.event_processing import event_accumulator as reader

    model, data = assets
    recipe = make_recipe(model, data, max_steps=3, eval_steps=3, report_to=["tensorboard"])
    result, events = _train(recipe, tmp_path / "run", tmp_path)
    assert result.status is RunStatus.FINISHED, result.error
    files = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    logged = reader.EventAccumulator(str(files[0].parent))
    logged.Reload()
    tags = set(logged.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "eval/loss", "eval/perplexity"} <= tags
    steps = [scalar.step for scalar in logged.Scalars("train/loss")]
    assert steps == [1, 2, 3]
    assert logged.Scalars("train/loss")[0].value == pytest.approx(losses(events)[1], rel=1e-6)


@pytest.mark.expect_logs(
    "run t failed: training.report_to: tensorboard needs the tensorboard package"
)
def test_report_to_tensorboard_without_the_package_fails_before_training(
    assets: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    # A None entry in sys.modules makes the package unimportable and unfindable.
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    model, data = assets
    recipe = make_recipe(model, data, report_to=["tensorboard"])
    result, events = _train(recipe, tmp_path / "run", tmp_path)
    assert result.status is RunStatus.FAILED
    assert "pip install tensorboard" in (result.error or "")
    assert "training.report_to" in (result.error or "")
    assert not any(isinstance(e, RunStarted | MetricsLogged) for e in events)
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_out_of_memory_names_the_knobs_that_would_fit(assets: tuple[Path, Path]) -> None:
    from codetune_studio.engine.run import out_of_memory_advice

    model, data = assets
    recipe = make_recipe(model, data, per_device_train_batch_size=8, max_seq_length=512)
    advice = out_of_memory_advice(recipe, RuntimeError("CUDA out of memory. Tried to allocate"))
    assert "per_device_train_batch_size=4" in advice
    assert "gradient_accumulation_steps=2" in advice
    assert "max_seq_length=256" in advice
    assert "gradient_checkpointing=true" in advice
    assert "qlora" in advice


@pytest.mark.expect_logs("packing is off: prompt tuning cannot isolate packed samples")
@pytest.mark.parametrize("method", ["dora", "prompt_tuning", "full"])
def test_every_cpu_method_trains_and_writes_its_output(
    assets: tuple[Path, Path], tmp_path: Path, method: str
) -> None:
    model, data = assets
    result, _ = _train(
        make_recipe(model, data, method=method, max_steps=2), tmp_path / "r", tmp_path
    )
    assert result.status is RunStatus.FINISHED, result.error
    assert result.adapter_path is not None
    name = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    assert (result.adapter_path / name).is_file()


def test_cli_train_then_resume_latest(
    assets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codetune_studio.cli import main
    from tests.trainer_helpers import write_recipe

    model, data = assets
    recipe = write_recipe(tmp_path / "r.json", model, data, save_steps=2)
    home = tmp_path / "home"
    assert main(["--data-dir", str(home), "train", str(recipe), "--max-steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "Finished run" in out
    runs = list((home / "runs").iterdir())
    assert len(runs) == 1
    assert json.loads((runs[0] / "recipe.json").read_text())["training"]["max_steps"] == 2
    code = main(
        [
            "--data-dir",
            str(home),
            "train",
            str(recipe),
            "--resume",
            "latest",
            "--set",
            "training.max_steps=4",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert f"Run 2: writing to {runs[0]}" in out
    assert "checkpoint-2" in out
    assert "at step 4" in out
    _assert_recorded_with_lineage(home)


def _assert_recorded_with_lineage(home: Path) -> None:
    """Both runs are in the database; the resumed one's model version descends from the first."""
    from codetune_studio.core.paths import resolve_paths
    from codetune_studio.services.database import open_database
    from codetune_studio.services.experiments import ExperimentService

    opened = open_database(
        None, sqlite_path=resolve_paths(home).database_file, allow_fallback=False
    )
    try:
        experiments = ExperimentService(opened.database)
        second, first = experiments.list_runs()
        assert (first.status, second.status) == (RunStatus.FINISHED, RunStatus.FINISHED)
        assert second.resumed_from_id == first.id
        assert [p.step for p in experiments.metric_curve(second.id, "loss")] == [3, 4]
        newest = experiments.list_model_versions(run_id=second.id)[0]
        lineage = experiments.lineage(newest.id)
        assert [version.run_id for version in lineage] == [second.id, first.id]
        assert newest.dataset_fingerprint
        assert newest.recipe_hash
    finally:
        opened.close()


@pytest.mark.expect_logs("run t failed: model: .*only pickled weights")
def test_pickled_weights_load_only_when_the_recipe_allows(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file

    model, data = assets
    pickled = tmp_path / "pickled"
    shutil.copytree(model, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    refused, _ = _train(make_recipe(pickled, data, max_steps=1), tmp_path / "a", tmp_path)
    assert refused.status is RunStatus.FAILED
    assert "allow_pickle: true" in (refused.error or "")
    recipe = make_recipe(pickled, data, max_steps=1).model_copy(update={"allow_pickle": True})
    allowed, _ = _train(recipe, tmp_path / "b", tmp_path)
    assert allowed.status is RunStatus.FINISHED, allowed.error
