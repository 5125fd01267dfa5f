"""The worker as a child process: events on stdout, commands on stdin, kill and resume, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from queue import Empty, Queue
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.events import (
    CheckpointSaved,
    Event,
    LogRecorded,
    MetricsLogged,
    RunFinished,
    RunStarted,
    decode_event,
)
from codetune_studio.core.status import RunStatus
from tests.trainer_helpers import (
    losses,
    recipe_data,
    save_tiny_model,
    write_completion_dataset,
    write_recipe,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.integration

TIMEOUT = 90


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("worker")
    return save_tiny_model(root / "model"), write_completion_dataset(root / "data.jsonl")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path.cwd()), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class Worker:
    """A running worker whose stdout events arrive on a queue."""

    def __init__(self, args: list[str], *, launcher: list[str] | None = None) -> None:
        command = [*(launcher or [sys.executable]), "-m", "codetune_studio.worker", *args]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self.events: list[Event] = []
        self._queue: Queue[Event | None] = Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(decode_event(line))  # every stdout line must be an event
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def iter_events(self) -> Iterator[Event]:
        while True:
            try:
                event = self._queue.get(timeout=TIMEOUT)
            except Empty:
                pytest.fail(f"no event for {TIMEOUT}s; stderr: {''.join(self.stderr)[-2000:]}")
            if event is None:
                return
            self.events.append(event)
            yield event

    def wait_for(self, predicate: Callable[[Event], bool]) -> Event:
        for event in self.iter_events():
            if predicate(event):
                return event
        pytest.fail(f"worker ended first; stderr: {''.join(self.stderr)[-2000:]}")

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": command}) + "\n")
        self.process.stdin.flush()

    def finish(self) -> int:
        for _ in self.iter_events():
            pass
        return self.process.wait(timeout=TIMEOUT)


def _args(recipe: Path, out: Path, data_dir: Path, *extra: str) -> list[str]:
    return [
        "--recipe",
        str(recipe),
        "--run-id",
        "12",
        "--output-dir",
        str(out),
        "--data-dir",
        str(data_dir),
        *extra,
    ]


def test_stdin_pause_resume_and_stop_checkpoint_and_exit_cancelled(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    model, data = assets
    recipe = write_recipe(tmp_path / "r.json", model, data, max_steps=500)
    worker = Worker(_args(recipe, tmp_path / "run", tmp_path))
    worker.wait_for(lambda e: isinstance(e, MetricsLogged))
    worker.send("pause")
    paused = worker.wait_for(lambda e: isinstance(e, LogRecorded) and "paused" in e.message)
    worker.send("resume")
    worker.wait_for(lambda e: isinstance(e, LogRecorded) and "resumed" in e.message)
    worker.send("stop")
    code = worker.finish()
    assert code == 130, "".join(worker.stderr)[-2000:]
    saved = [e for e in worker.events if isinstance(e, CheckpointSaved)]
    finished = worker.events[-1]
    assert isinstance(finished, RunFinished)
    assert finished.status is RunStatus.CANCELLED
    assert len(saved) == 1
    assert saved[0].step == finished.final_step
    assert saved[0].path.is_dir()
    assert isinstance(paused, LogRecorded)
    # stderr carries JSON log records only
    assert all(json.loads(line)["level"] for line in worker.stderr if line.startswith("{"))


# Not slow-only: SIGTERM is how the run host (and a scheduler) stops a worker, so CI runs it.
def test_sigterm_checkpoints_and_exits_cancelled(assets: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = assets
    recipe = write_recipe(tmp_path / "r.json", model, data, max_steps=500)
    worker = Worker(_args(recipe, tmp_path / "run", tmp_path))
    worker.wait_for(lambda e: isinstance(e, MetricsLogged))
    worker.process.send_signal(signal.SIGTERM)
    assert worker.finish() == 130
    assert any(isinstance(e, CheckpointSaved) for e in worker.events)
    assert worker.events[-1] == RunFinished(
        status=RunStatus.CANCELLED,
        final_step=worker.events[-1].final_step,  # type: ignore[union-attr]
    )


def test_worker_killed_with_sigkill_resumes_from_its_last_checkpoint(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    model, data = assets
    recipe = write_recipe(tmp_path / "r.json", model, data, max_steps=16, save_steps=3)
    out = tmp_path / "run"
    first = Worker(_args(recipe, out, tmp_path))
    first.wait_for(lambda e: isinstance(e, CheckpointSaved) and e.step >= 6)
    first.process.kill()  # SIGKILL: no handler, no final checkpoint
    first.process.wait(timeout=TIMEOUT)
    before = losses(first.events)

    second = Worker(_args(recipe, out, tmp_path, "--resume", str(out)))
    assert second.finish() == 0, "".join(second.stderr)[-2000:]
    started = next(e for e in second.events if isinstance(e, RunStarted))
    assert started.resumed_from_step >= 6
    assert started.resumed_from_step % 3 == 0
    finished = second.events[-1]
    assert isinstance(finished, RunFinished)
    assert (finished.status, finished.final_step) == (RunStatus.FINISHED, 16)
    after = losses(second.events)
    assert min(after) == started.resumed_from_step + 1
    # Steps both processes ran agree exactly: the resume replays the same data and RNG.
    for step in set(before) & set(after):
        assert after[step] == pytest.approx(before[step], abs=1e-6), step


def test_bad_recipe_reports_failed_and_exits_2(tmp_path: Path) -> None:
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"dataset": {"path": "x"}, "training": {"max_stepz": 1}}))
    worker = Worker(_args(recipe, tmp_path / "run", tmp_path))
    assert worker.finish() == 2
    finished = worker.events[-1]
    assert isinstance(finished, RunFinished)
    assert finished.status is RunStatus.FAILED
    assert "max_steps" in (finished.error or "")


def test_two_processes_through_torchrun_train_with_rank_zero_reporting(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    from codetune_studio.engine.checkpoint import latest_checkpoint, read_trainer_state

    model, data = assets
    recipe = write_recipe(tmp_path / "r.json", model, data, max_steps=4, save_steps=4, eval_steps=4)
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    worker = Worker(_args(recipe, tmp_path / "run", tmp_path), launcher=launcher)
    assert worker.finish() == 0, "".join(worker.stderr)[-3000:]
    assert sum(isinstance(e, RunStarted) for e in worker.events) == 1  # rank 0 only
    assert sorted(losses(worker.events)) == [1, 2, 3, 4]
    finished = worker.events[-1]
    assert isinstance(finished, RunFinished)
    assert finished.status is RunStatus.FINISHED
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint is not None
    assert read_trainer_state(checkpoint).world_size == 2
    assert (checkpoint / "rng_state_1.json").is_file()
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


def test_two_processes_evaluate_code_on_rank_zero_only_and_finish(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    from codetune_studio.core.events import CodeEvalCompleted

    model, data = assets
    tasks = tmp_path / "tasks.jsonl"
    # The answer lands in a string the tests close, so the (random) model passes it.
    task = {
        "task_id": "always",
        "prompt": 'def one():\n    return 1\n_answer = """',
        "tests": '"""\nassert one() == 1\n',
        "entry_point": "one",
    }
    tasks.write_text(json.dumps(task) + "\n", encoding="utf-8")
    recipe = tmp_path / "r.json"
    data_ = recipe_data(model, data, max_steps=4, eval_steps=2)
    data_["evaluation"] = {"tasks": str(tasks), "max_new_tokens": 4, "chat": False}
    recipe.write_text(json.dumps(data_), encoding="utf-8")
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    worker = Worker(_args(recipe, tmp_path / "run", tmp_path), launcher=launcher)
    # The other process waits at a barrier while rank 0 evaluates: no deadlock, no timeout.
    assert worker.finish() == 0, "".join(worker.stderr)[-3000:]
    scores = [e for e in worker.events if isinstance(e, CodeEvalCompleted)]
    assert [(e.step, e.metrics) for e in scores] == [
        (2, {"eval_pass@1": 1.0}),
        (4, {"eval_pass@1": 1.0}),
    ]
    assert isinstance(worker.events[-1], RunFinished)
    assert worker.events[-1].status is RunStatus.FINISHED


def test_adapter_loads_with_plain_peft_in_a_fresh_process(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    from codetune_studio.core.cancel import CancelToken
    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.engine.run import run_training
    from codetune_studio.engine.sinks import NullSink

    model, data = assets
    recipe = TrainingRecipe.model_validate(recipe_data(model, data, max_steps=3))
    trained = run_training(
        recipe, NullSink(), CancelToken(), run_id=1, output_dir=tmp_path / "run", data_dir=tmp_path
    )
    assert trained.status is RunStatus.FINISHED, trained.error
    adapter = tmp_path / "run" / "adapter"
    # Below, a fresh interpreter with only peft and transformers: no studio code.
    script = textwrap.dedent(f"""
        import sys, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from peft import PeftModel
        assert not any(name.startswith("codetune_studio") for name in sys.modules)
        base = AutoModelForCausalLM.from_pretrained({str(model)!r})
        tokenizer = AutoTokenizer.from_pretrained({str(adapter)!r})
        ids = tokenizer("say alpha:", return_tensors="pt").input_ids
        with torch.no_grad():
            before = base(ids).logits
            tuned = PeftModel.from_pretrained(base, {str(adapter)!r})
            after = tuned(ids).logits
        print(float((after - before).abs().max()))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) > 1e-4
