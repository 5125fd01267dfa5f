"""``runs``, ``models`` and ``queue`` commands on recorded runs (no training), SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.cli import main
from codetune_studio.core.models import MetricPoint
from codetune_studio.core.status import RunStatus
from codetune_studio.services.database import open_database
from codetune_studio.services.experiments import ExperimentService

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

RECIPE = {"model": "tiny-model", "dataset": {"path": "data.jsonl"}, "training": {"max_steps": 2}}


@pytest.fixture
def experiments(database_url: str, tmp_path: Path) -> Iterator[ExperimentService]:
    opened = open_database(database_url, sqlite_path=tmp_path / "x.db", allow_fallback=False)
    yield ExperimentService(opened.database)
    opened.close()


def _run(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["--database", database_url, "--data-dir", str(tmp_path / "home"), *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _finished(experiments: ExperimentService, folder: Path) -> int:
    folder.mkdir(parents=True)
    run = experiments.create_run("cli-run", RECIPE, output_dir=str(folder))
    experiments.start_run(run.id, pid=1, total_steps=2)
    experiments.record_metrics(
        run.id, [MetricPoint(1, "loss", 2.0, 0.0), MetricPoint(2, "loss", 1.5, 0.0)]
    )
    experiments.finish_run(run.id, RunStatus.FINISHED)
    return run.id


def test_runs_list_json_has_the_documented_fields_newest_first(
    database_url: str,
    experiments: ExperimentService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _finished(experiments, tmp_path / "a")
    second = _finished(experiments, tmp_path / "b")
    status, out, _ = _run(database_url, tmp_path, capsys, "runs", "tag", str(first), "keep", "v1")
    assert status == 0
    assert "keep, v1" in out

    status, out, _ = _run(database_url, tmp_path, capsys, "runs", "list", "--format", "json")

    assert status == 0
    rows: list[dict[str, Any]] = json.loads(out)
    assert [row["id"] for row in rows] == [second, first]
    required = {"id", "name", "status", "owner", "model", "dataset", "started_at", "steps"}
    assert required | {"final_loss", "best_eval_loss", "final_pass_at_1", "tags"} <= set(rows[0])
    assert rows[0]["final_pass_at_1"] is None  # measured only with an evaluation section
    assert rows[1]["tags"] == ["keep", "v1"]
    assert rows[1]["steps"] == 2
    assert rows[1]["final_loss"] == 1.5
    assert rows[1]["model"] == "tiny-model"
    status, out, _ = _run(
        database_url, tmp_path, capsys, "runs", "list", "--tag", "keep", "--format", "json"
    )
    assert [row["id"] for row in json.loads(out)] == [first]
    status, out, _ = _run(database_url, tmp_path, capsys, "runs", "list")
    assert "cli-run" in out
    assert "2/2" in out


def test_runs_delete_asks_or_takes_yes_and_removes_files_only_with_files(
    database_url: str,
    experiments: ExperimentService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kept = _finished(experiments, tmp_path / "kept")
    gone = _finished(experiments, tmp_path / "gone")

    status, _, err = _run(database_url, tmp_path, capsys, "runs", "delete", str(kept))
    assert status == 2  # no terminal to ask on, and no --yes
    assert "--yes" in err
    assert experiments.get_run(kept).id == kept

    status, _, _ = _run(database_url, tmp_path, capsys, "runs", "delete", str(kept), "--yes")
    assert status == 0
    assert (tmp_path / "kept").is_dir()
    status, out, _ = _run(
        database_url, tmp_path, capsys, "runs", "delete", str(gone), "--files", "--yes"
    )
    assert status == 0
    assert str(tmp_path / "gone") in out
    assert not (tmp_path / "gone").exists()
    assert experiments.list_runs() == []
    status, out, _ = _run(
        database_url, tmp_path, capsys, "audit", "--action", "run.deleted", "--format", "json"
    )
    assert status == 0
    assert {entry["target"] for entry in json.loads(out)} == {f"run {gone}", f"run {kept}"}


def test_models_list_show_and_lineage(
    database_url: str,
    experiments: ExperimentService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _finished(experiments, tmp_path / "first")
    v1 = experiments.add_model_version("v1", path="/a", base_model="tiny-model", run_id=first)
    resumed = experiments.create_run("again", RECIPE, resumed_from_id=first)
    v2 = experiments.add_model_version(
        "v2", path="/b", base_model="tiny-model", run_id=resumed.id, parent_id=v1.id
    )

    status, out, _ = _run(database_url, tmp_path, capsys, "models", "list", "--format", "json")
    assert status == 0
    assert [row["id"] for row in json.loads(out)] == [v2.id, v1.id]
    status, out, _ = _run(database_url, tmp_path, capsys, "models", "show", str(v2.id))
    assert status == 0
    assert "parent version  1" in out
    status, out, _ = _run(
        database_url, tmp_path, capsys, "models", "lineage", str(v2.id), "--format", "json"
    )
    chain = json.loads(out)
    assert [link["id"] for link in chain] == [v2.id, v1.id]
    assert [(s["run_id"], s["relation"]) for s in chain[0]["runs"]] == [
        (resumed.id, ""),
        (first, "resumed from"),
    ]
    status, out, _ = _run(database_url, tmp_path, capsys, "models", "lineage", str(v2.id))
    assert "resumed from run" in out
    assert "base model: tiny-model" in out


def test_runs_log_follow_prints_a_line_written_in_pieces_only_once_it_is_whole(
    database_url: str,
    experiments: ExperimentService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import types

    import codetune_studio.cli.runs as runs_cli
    from codetune_studio.services.history import LOG_FILE_NAME

    folder = tmp_path / "running"
    folder.mkdir()
    log = folder / LOG_FILE_NAME
    log.write_bytes(b"loading the model\nstep 1 of")
    run = experiments.create_run("followed", RECIPE, output_dir=str(folder))
    experiments.start_run(run.id, pid=os.getpid(), total_steps=2)
    # What the worker writes between two polls of --follow; the run ends after the last piece,
    # whose line never gets its newline.
    pieces = iter([b" 2, loss 2.0\nstep 2 of 2", b", loss 1.5\nsaved the adap", b"ter"])

    def worker_writes(_seconds: float) -> None:
        piece = next(pieces, None)
        if piece is None:
            experiments.finish_run(run.id, RunStatus.FINISHED)
            return
        with log.open("ab") as handle:
            handle.write(piece)

    monkeypatch.setattr(runs_cli, "time", types.SimpleNamespace(sleep=worker_writes))

    status, out, _ = _run(database_url, tmp_path, capsys, "runs", "log", str(run.id), "--follow")

    assert status == 0
    assert out.splitlines() == [
        "loading the model",
        "step 1 of 2, loss 2.0",
        "step 2 of 2, loss 1.5",
        "saved the adapter",
    ]


def test_a_named_sweep_names_its_queued_runs_in_queue_list_and_runs_list(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "base.json"
    recipe.write_text(json.dumps({**RECIPE, "name": "base-recipe"}), encoding="utf-8")

    status, out, err = _run(
        database_url,
        tmp_path,
        capsys,
        "sweep",
        str(recipe),
        "--grid",
        "training.learning_rate=1e-4,3e-4",
        "--name",
        "lr-scan",
    )
    assert status == 0, err
    expected = ["lr-scan [learning_rate=1e-4]", "lr-scan [learning_rate=3e-4]"]
    status, out, _ = _run(database_url, tmp_path, capsys, "queue", "list", "--format", "json")
    assert [row["name"] for row in json.loads(out)] == expected
    status, out, _ = _run(database_url, tmp_path, capsys, "runs", "list", "--format", "json")
    runs = json.loads(out)
    assert sorted(row["name"] for row in runs) == expected
    status, out, _ = _run(
        database_url, tmp_path, capsys, "runs", "show", str(runs[0]["id"]), "--format", "json"
    )
    assert json.loads(out)["recipe"]["name"] == "lr-scan"
    status, out, _ = _run(database_url, tmp_path, capsys, "queue", "list")
    assert "lr-scan [learning_rate=1e-4]" in out
    assert "base-recipe" not in out

    # Without --name, the recipe's own name names them.
    status, _, _ = _run(database_url, tmp_path, capsys, "sweep", str(recipe), "--grid", "lora.r=8")
    status, out, _ = _run(database_url, tmp_path, capsys, "queue", "list", "--format", "json")
    assert json.loads(out)[-1]["name"] == "base-recipe [r=8]"


def test_runs_log_prints_a_finished_runs_last_line_without_its_newline(
    database_url: str,
    experiments: ExperimentService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from codetune_studio.services.history import LOG_FILE_NAME

    run_id = _finished(experiments, tmp_path / "ended")
    (tmp_path / "ended" / LOG_FILE_NAME).write_bytes(b"step 2 of 2, loss 1.5\nsaved the adapter")

    status, out, _ = _run(database_url, tmp_path, capsys, "runs", "log", str(run_id))

    assert status == 0
    assert out.splitlines() == ["step 2 of 2, loss 1.5", "saved the adapter"]


def test_runs_compare_prints_one_line_per_run_however_many_runs(
    database_url: str,
    experiments: ExperimentService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.cli_tables import table_rows

    ids = []
    for index in range(30):
        recipe = {**RECIPE, "training": {"max_steps": 2, "learning_rate": (index + 1) * 1e-5}}
        run = experiments.create_run(f"run-{index}", recipe)
        experiments.start_run(run.id, pid=1, total_steps=2)
        experiments.record_metrics(run.id, [MetricPoint(2, "loss", 2.0 - index / 100, 0.0)])
        experiments.finish_run(run.id, RunStatus.FINISHED)
        ids.append(run.id)

    status, out, _ = _run(
        database_url, tmp_path, capsys, "runs", "compare", *map(str, ids), "--metric", "loss"
    )

    assert status == 0
    differences, results = out.split("\n\n")
    diff_rows = table_rows(differences)
    assert [row["RUN"] for row in diff_rows] == [str(run_id) for run_id in ids]
    assert diff_rows[0]["training.learning_rate"] == "1e-05"
    result_rows = table_rows(results)
    assert [row["RUN"] for row in result_rows] == [str(run_id) for run_id in ids]
    assert [row["BEST"] for row in result_rows] == [""] * 29 + ["*"]
    assert result_rows[-1]["final loss"] == "1.71"
    # As wide for thirty runs as for two: the runs are lines, not columns.
    assert max(len(line) for line in out.splitlines()) < 160
    assert out.splitlines()[-1] == f"Best by loss: run {ids[-1]}"
