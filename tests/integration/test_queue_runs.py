"""The run queue end to end: real worker processes training tiny models, through the CLI.

Each run is a tiny one-layer model for a few steps, so a whole queue takes seconds per run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.cli import main
from codetune_studio.core.status import RunStatus
from tests.trainer_helpers import recipe_data, save_tiny_model, write_completion_dataset

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

TIMEOUT_S = 240


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("queue-assets")
    return save_tiny_model(root / "model"), write_completion_dataset(root / "data.jsonl")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers inherit these; two processes on a shared CPU must not each take every core.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])
    )


def _recipe_file(path: Path, assets: tuple[Path, Path], **training: Any) -> Path:
    model, data = assets
    settings: dict[str, Any] = {"max_steps": 3, "per_device_train_batch_size": 2, **training}
    recipe = recipe_data(model, data, **settings)
    recipe["name"] = path.stem
    extra = training.pop("launch", None)
    if extra is not None:
        recipe["launch"] = extra
        recipe["training"].pop("launch", None)
    path.write_text(json.dumps(recipe), encoding="utf-8")
    return path


def _cli(
    url: str, data_dir: Path, *args: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["--database", url, "--data-dir", str(data_dir), *args])
    return status, capsys.readouterr().out


def _json(url: str, data_dir: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    status, out = _cli(url, data_dir, *args, "--format", "json", capsys=capsys)
    assert status == 0, out
    return json.loads(out)


def test_a_queue_of_three_continues_past_the_failed_second_and_compares_by_learning_rate(
    database_url: str, assets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "studio"
    first = _recipe_file(tmp_path / "first.json", assets, learning_rate=1e-2)
    broken = _recipe_file(tmp_path / "broken.json", assets)
    third = _recipe_file(tmp_path / "third.json", assets, learning_rate=3e-2)
    data = json.loads(broken.read_text())
    data["dataset"]["path"] = str(tmp_path / "missing.jsonl")  # valid recipe, fails to train
    broken.write_text(json.dumps(data))
    # Same name for both good runs, so the recipes differ in the learning rate alone.
    for path in (first, third):
        recipe = json.loads(path.read_text())
        recipe["name"] = "lr-test"
        path.write_text(json.dumps(recipe))

    status, out = _cli(
        database_url, home, "queue", "add", str(first), str(broken), str(third), capsys=capsys
    )
    assert status == 0, out
    queued = _json(database_url, home, capsys, "queue", "list")
    assert [row["position"] for row in queued] == [1, 2, 3]
    ids = [row["id"] for row in queued]
    listed = _json(database_url, home, capsys, "runs", "list", "--status", "QUEUED")
    assert {row["status"] for row in listed} == {"QUEUED"}

    status, out = _cli(database_url, home, "queue", "run", capsys=capsys)

    assert status == 1, out  # one run failed
    runs = {row["id"]: row for row in _json(database_url, home, capsys, "runs", "list")}
    assert [runs[run_id]["status"] for run_id in ids] == ["FINISHED", "FAILED", "FINISHED"]
    assert "missing.jsonl" in (runs[ids[1]]["error"] or "")
    assert runs[ids[2]]["steps"] == 3
    assert runs[ids[2]]["final_loss"] is not None
    assert _json(database_url, home, capsys, "queue", "list") == []

    comparison = _json(database_url, home, capsys, "runs", "compare", str(ids[0]), str(ids[2]))
    assert list(comparison["differences"]) == ["training.learning_rate"]
    assert comparison["differences"]["training.learning_rate"] == {
        str(ids[0]): 1e-2,
        str(ids[2]): 3e-2,
    }
    assert set(comparison["results"]) == {str(ids[0]), str(ids[2])}

    # The run's log is readable headless, and its files are where the database says.
    status, out = _cli(database_url, home, "runs", "log", str(ids[2]), capsys=capsys)
    assert status == 0
    assert "INFO" in out
    shown = _json(database_url, home, capsys, "runs", "show", str(ids[2]))
    assert Path(shown["output_dir"], "adapter").is_dir()
    (version,) = shown["model_versions"]
    assert version["base_revision"].startswith("sha256:")  # the local base folder's hash

    # Rerun with a change: the clone records its parent, and the lineage shows it.
    status, out = _cli(
        database_url,
        home,
        "queue",
        "add",
        "--clone",
        str(ids[2]),
        "--set",
        "training.learning_rate=5e-2",
        capsys=capsys,
    )
    assert status == 0, out
    (clone,) = _json(database_url, home, capsys, "queue", "list")
    lineage = _json(database_url, home, capsys, "runs", "show", str(clone["id"]))["lineage"]
    assert [(step["run_id"], step["relation"]) for step in lineage] == [
        (clone["id"], ""),
        (ids[2], "cloned from"),
    ]
    status, _ = _cli(database_url, home, "queue", "remove", str(clone["id"]), capsys=capsys)
    assert status == 0


def test_a_2x2_sweep_runs_compares_and_lines_up_batch_sizes_by_tokens(
    database_url: str, assets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "studio"
    recipe = _recipe_file(tmp_path / "base.json", assets, eval_steps=3)
    status, out = _cli(
        database_url,
        home,
        "sweep",
        str(recipe),
        "--grid",
        "training.learning_rate=1e-2,3e-2",
        "--grid",
        "training.per_device_train_batch_size=2,4",
        "--run",
        "--format",
        "json",
        capsys=capsys,
    )
    assert status == 0, out
    result = json.loads(out)
    assert len(result["results"]) == 4
    assert sorted(result["differences"]) == [
        "training.learning_rate",
        "training.per_device_train_batch_size",
    ]
    evals = {run: r["best_eval_loss"] for run, r in result["results"].items()}
    assert result["best_run_id"] == int(min(evals, key=lambda run: evals[run]))

    from codetune_studio.services.database import open_database
    from codetune_studio.services.history import RunHistoryService

    opened = open_database(database_url, sqlite_path=tmp_path / "x.db", allow_fallback=False)
    try:
        curves = RunHistoryService(opened.database).curves(
            [int(run) for run in result["results"]], ["loss"]
        )
    finally:
        opened.close()
    batch = {
        int(run): value
        for run, value in result["differences"]["training.per_device_train_batch_size"].items()
    }
    final_tokens = {curve.run_id: curve.tokens[-1] for curve in curves}
    small = [final_tokens[run] for run, size in batch.items() if size == 2]
    large = [final_tokens[run] for run, size in batch.items() if size == 4]
    # Same number of steps, twice the rows per step: about twice the tokens by the end.
    assert min(large) > 1.5 * max(small)
    assert all(curve.steps == [1, 2, 3] for curve in curves)


def test_a_two_process_cpu_launch_from_the_recipes_launch_section(
    sqlite_url: str, assets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codetune_studio.engine.checkpoint import latest_checkpoint, read_trainer_state

    home = tmp_path / "studio"
    recipe = _recipe_file(
        tmp_path / "ddp.json",
        assets,
        max_steps=2,
        save_steps=2,
        launch={"num_processes": 2, "use_cpu": True, "main_process_port": _free_port()},
    )
    status, out = _cli(sqlite_url, home, "queue", "add", str(recipe), capsys=capsys)
    assert status == 0, out
    status, out = _cli(sqlite_url, home, "queue", "run", capsys=capsys)
    runs = _json(sqlite_url, home, capsys, "runs", "list")
    assert status == 0, (out, runs)
    assert runs[0]["status"] == "FINISHED"
    checkpoint = latest_checkpoint(Path(runs[0]["output_dir"]))
    assert checkpoint is not None
    assert read_trainer_state(checkpoint).world_size == 2


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def two_workers(postgres_url: str, tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    workers: list[subprocess.Popen[str]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for number in range(2):
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "codetune_studio",
                    "--database",
                    postgres_url,
                    "--data-dir",
                    str(tmp_path / f"worker{number}"),
                    "queue",
                    "run",
                    "--worker",
                    "--poll",
                    "0.5",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                start_new_session=True,
            )
        )
    try:
        yield workers
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=30)


@pytest.mark.postgres
def test_two_queue_workers_on_one_postgresql_take_each_of_six_runs_exactly_once(
    postgres_url: str,
    assets: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    two_workers: list[subprocess.Popen[str]],
) -> None:
    laptop = tmp_path / "laptop"
    recipes = [
        str(_recipe_file(tmp_path / f"r{index}.json", assets, max_steps=2, seed=index))
        for index in range(6)
    ]
    status, out = _cli(postgres_url, laptop, "queue", "add", *recipes, capsys=capsys)
    assert status == 0, out

    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        runs = _json(postgres_url, laptop, capsys, "runs", "list")
        if len(runs) == 6 and all(RunStatus(row["status"]).is_terminal for row in runs):
            break
        assert all(worker.poll() is None for worker in two_workers), "a worker died"
        time.sleep(1)
    else:
        pytest.fail(f"the queue was not drained in {TIMEOUT_S}s: {runs}")

    outputs = []
    for worker in two_workers:
        worker.send_signal(signal.SIGINT)
        outputs.append(worker.communicate(timeout=60)[0])
    assert [row["status"] for row in runs] == ["FINISHED"] * 6
    started = [
        int(line.split()[1])
        for output in outputs
        for line in output.splitlines()
        if line.startswith("Run ") and ": starting in " in line
    ]
    assert sorted(started) == sorted(row["id"] for row in runs), outputs
    # Each run's folder is on the worker that took it.
    assert all(Path(row["output_dir"]).is_dir() for row in runs)
