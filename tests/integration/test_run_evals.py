"""Code evaluations in a run's results, the comparison and ``runs`` CLI, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.cli import main
from codetune_studio.core.errors import ConfigError
from codetune_studio.core.models import MetricPoint
from codetune_studio.core.status import RunStatus
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.services.history import RunHistoryService
from codetune_studio.storage.db import Database
from tests.cli_tables import table_rows
from tests.eval_records import record_evaluation

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

RECIPE = {"model": "tiny-model", "dataset": {"path": "data.jsonl"}, "training": {"max_steps": 2}}


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database.connect(database_url, connect_timeout=5)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def experiments(database: Database) -> ExperimentService:
    return ExperimentService(database)


@pytest.fixture
def history(database: Database) -> RunHistoryService:
    return RunHistoryService(database)


def _trained(
    experiments: ExperimentService, folder: Path, *, eval_loss: float, lr: float = 1e-4
) -> tuple[int, int]:
    """A finished run with its model version: ``(run id, version id)``."""
    recipe = {**RECIPE, "training": {"max_steps": 2, "learning_rate": lr}}
    run = experiments.create_run("run", recipe, output_dir=str(folder))
    experiments.start_run(run.id, pid=1, total_steps=2)
    experiments.record_metrics(
        run.id,
        [
            MetricPoint(1, "loss", 2.0, 0.0),
            MetricPoint(2, "loss", 1.5, 0.0),
            MetricPoint(2, "eval_loss", eval_loss, 0.0),
        ],
    )
    experiments.finish_run(run.id, RunStatus.FINISHED)
    adapter = folder / "adapter"
    adapter.mkdir(parents=True)
    version = experiments.add_model_version(
        f"run {run.id}", path=str(adapter), base_model="tiny-model", run_id=run.id
    )
    return run.id, version.id


def test_a_runs_newest_evaluation_is_in_its_results_and_picks_the_best_by_pass_at_1(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    experiments: ExperimentService,
    history: RunHistoryService,
    tmp_path: Path,
) -> None:
    good, good_v = _trained(experiments, tmp_path / "good", eval_loss=1.4, lr=1e-4)
    poor, poor_v = _trained(experiments, tmp_path / "poor", eval_loss=1.2, lr=3e-4)
    never, _ = _trained(experiments, tmp_path / "never", eval_loss=1.3, lr=2e-4)
    record_evaluation(monkeypatch, database, version_id=good_v, tuned=[True, False])
    newest = record_evaluation(
        monkeypatch, database, version_id=good_v, tuned=[True, True, True, False],
        base=[True, False, False, False], samples=2, task_source="/tasks/held-out.jsonl",
    )  # fmt: skip
    record_evaluation(monkeypatch, database, version_id=poor_v, tuned=[False, True])

    summary = history.get_summary(good).results
    assert summary.pass_at_1 == 0.75
    assert (summary.eval_k, summary.pass_at_k) == (2, 0.75)
    assert summary.base_pass_at_1 == 0.25
    assert summary.eval_tasks == "/tasks/held-out.jsonl"
    assert summary.eval_id == newest[0].id

    by_eval_loss = history.compare([good, poor, never])
    assert by_eval_loss.best_run_id == poor
    by_pass = history.compare([good, poor, never], metric="pass@1")
    assert by_pass.best_run_id == good
    results = by_pass.as_json()["results"]
    assert results[str(good)]["pass_at_1"] == 0.75
    assert results[str(poor)]["pass_at_1"] == 0.5
    assert results[str(poor)]["base_pass_at_1"] is None
    assert results[str(never)]["pass_at_1"] is None


def test_a_new_evaluation_shows_even_where_an_ended_runs_results_were_cached(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    experiments: ExperimentService,
    history: RunHistoryService,
    tmp_path: Path,
) -> None:
    run_id, version_id = _trained(experiments, tmp_path / "run", eval_loss=1.0)
    known = {s.run.id: s.results for s in history.list_runs()}
    assert known[run_id].pass_at_1 is None

    record_evaluation(monkeypatch, database, version_id=version_id, tuned=[True, False])

    (summary,) = history.list_runs(known=known)
    assert summary.results.pass_at_1 == 0.5
    assert summary.results.final_loss == 1.5


def test_evaluating_a_runs_adapter_folder_by_path_counts_for_that_run(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    experiments: ExperimentService,
    history: RunHistoryService,
    tmp_path: Path,
) -> None:
    run_id, version_id = _trained(experiments, tmp_path / "run", eval_loss=1.0)
    (tuned, base) = record_evaluation(
        monkeypatch, database, adapter=tmp_path / "run" / "adapter", tuned=[True], base=[False]
    )

    assert tuned.model_version_id == version_id
    assert tuned.base_result_id == base.id
    stored = history.evaluations(run_id)
    assert [(e.id, e.variant) for e in stored] == [(base.id, "base"), (tuned.id, "tuned")]
    assert stored[1].base_result_id == base.id
    assert stored[1].tasks == ()  # the list never reads the per-task outcomes
    assert history.get_summary(run_id).results.pass_at_1 == 1.0


def test_an_unknown_metric_is_refused_with_the_names_it_takes(
    experiments: ExperimentService, history: RunHistoryService, tmp_path: Path
) -> None:
    run_id, _ = _trained(experiments, tmp_path / "run", eval_loss=1.0)
    with pytest.raises(ConfigError, match=r"'pass@2'.*pass@1"):
        history.compare([run_id], metric="pass@2")


def _cli(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    status = main(["--database", database_url, "--data-dir", str(tmp_path / "home"), *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_runs_compare_and_show_print_each_runs_pass_at_1(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    database: Database,
    experiments: ExperimentService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    evaluated, version_id = _trained(experiments, tmp_path / "a", eval_loss=1.4, lr=1e-4)
    other, _ = _trained(experiments, tmp_path / "b", eval_loss=1.2, lr=3e-4)
    (tuned, _) = record_evaluation(
        monkeypatch, database, version_id=version_id, tuned=[True, True, False, True],
        base=[False, True, False, False],
    )  # fmt: skip
    ids = [str(evaluated), str(other)]

    status, out, _ = _cli(
        database_url, tmp_path, capsys, "runs", "compare", *ids, "--metric", "pass@1",
        "--format", "json",
    )  # fmt: skip
    assert status == 0
    payload = json.loads(out)
    assert payload["results"][str(evaluated)]["pass_at_1"] == 0.75
    assert payload["results"][str(evaluated)]["eval_tasks"] == "/data/eval/python-tasks.jsonl"
    assert payload["results"][str(other)]["pass_at_1"] is None
    assert payload["best_run_id"] == evaluated

    status, out, _ = _cli(
        database_url, tmp_path, capsys, "runs", "compare", *ids, "--metric", "pass@1"
    )
    results = table_rows(out.split("\n\n")[-1])  # after the recipe differences
    assert [row["RUN"] for row in results] == ids  # one row per run
    assert [row["BEST"] for row in results] == ["*", ""]
    assert [row["pass@1"] for row in results] == ["75.0%", "-"]
    assert [row["pass@k"] for row in results][1] == "-"
    assert [row["base pass@1"] for row in results] == ["25.0%", "-"]
    assert [row["eval tasks"] for row in results] == ["python-tasks.jsonl", "-"]

    status, out, _ = _cli(
        database_url, tmp_path, capsys, "runs", "show", str(evaluated), "--format", "json"
    )
    shown = json.loads(out)
    assert shown["results"]["pass_at_1"] == 0.75
    assert shown["pass_at_1"] == 0.75
    assert [e["id"] for e in shown["evaluations"] if e["variant"] == "tuned"] == [tuned.id]
    status, out, _ = _cli(database_url, tmp_path, capsys, "runs", "show", str(evaluated))
    assert status == 0
    assert "pass_at_1          0.75" in out
    eval_line = next(line for line in out.splitlines() if line.startswith(str(tuned.id) + " "))
    assert "75.0%" in eval_line
    assert "25.0%" in eval_line


def test_a_sweep_with_a_mistyped_metric_queues_nothing(
    database_url: str,
    experiments: ExperimentService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(RECIPE), encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        _cli(
            database_url, tmp_path, capsys, "sweep", str(recipe),
            "--grid", "training.learning_rate=1e-4,3e-4", "--metric", "pass1",
        )  # fmt: skip
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Unknown metric 'pass1'" in err
    assert "pass@1" in err
    assert experiments.list_runs() == []
