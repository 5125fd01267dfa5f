"""Checkpoints are data: nothing in a checkpoint folder can run code when a run resumes."""

from __future__ import annotations

import json
import os
import pickle
import re
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.cancel import CancelToken
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.sinks import ListSink
from tests.trainer_helpers import make_recipe, save_tiny_model, write_completion_dataset

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.engine.run import RunResult

pytestmark = pytest.mark.integration


class _Planted:
    """An object whose unpickling creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        # Unpickling calls os.system(...): the classic payload of a hostile pickle.
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    model = save_tiny_model(root / "model")
    data = write_completion_dataset(root / "data.jsonl")
    result = _train(make_recipe(model, data, max_steps=1, save_steps=1), root / "run", root)
    assert result.status is RunStatus.FINISHED, result.error
    return model, data, root / "run" / "checkpoints" / "checkpoint-1"


def _train(recipe: object, out: Path, data_dir: Path, resume: Path | None = None) -> RunResult:
    from codetune_studio.engine.run import run_training

    return run_training(
        recipe,  # type: ignore[arg-type]
        ListSink(),
        CancelToken(),
        run_id=7,
        output_dir=out,
        data_dir=data_dir,
        resume_from=resume,
    )


def _copy(checkpoint: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(checkpoint, target)
    return target


def test_checkpoint_manifest_records_the_run_and_every_file(
    checkpoint_run: tuple[Path, Path, Path],
) -> None:
    _, _, checkpoint = checkpoint_run
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    assert manifest["run_id"] == 7
    listed = set(manifest["files"])
    on_disk = {p.name for p in checkpoint.iterdir()} - {"manifest.json"}
    assert listed == on_disk
    assert all(len(digest) == 64 for digest in manifest["files"].values())


@pytest.mark.expect_logs(r"Cannot resume from .*pickle")
def test_a_planted_pickle_is_refused_and_never_executed(
    checkpoint_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, data, checkpoint = checkpoint_run
    planted = _copy(checkpoint, tmp_path / "checkpoints" / "checkpoint-1")
    marker = tmp_path / "pwned"
    # What an older Accelerate-based resume would have unpickled.
    (planted / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(_Planted(marker)))
    result = _train(make_recipe(model, data, max_steps=2), tmp_path / "out", tmp_path, planted)
    assert result.status is RunStatus.FAILED
    assert "custom_checkpoint_0.pkl is a pickle the studio did not write" in (result.error or "")
    assert not marker.exists()


@pytest.mark.expect_logs(r"Cannot resume from .*optimizer\.pt")
def test_a_replaced_optimizer_file_with_a_forged_manifest_is_not_executed(
    checkpoint_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Even an attacker who rewrites the manifest cannot make a weights-only load run code."""
    import torch

    from codetune_studio.engine.checkpoint import write_manifest

    model, data, checkpoint = checkpoint_run
    planted = _copy(checkpoint, tmp_path / "checkpoints" / "checkpoint-1")
    marker = tmp_path / "pwned"
    torch.save({"state": _Planted(marker)}, planted / "optimizer.pt")
    write_manifest(planted, run_id=7)
    result = _train(make_recipe(model, data, max_steps=2), tmp_path / "out", tmp_path, planted)
    assert result.status is RunStatus.FAILED
    assert "optimizer.pt holds objects other than tensors" in (result.error or "")
    assert not marker.exists()


def test_an_altered_file_or_missing_manifest_is_refused(
    checkpoint_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from codetune_studio.core.errors import TrainingError
    from codetune_studio.engine.checkpoint import verify_manifest

    _, _, checkpoint = checkpoint_run
    altered = _copy(checkpoint, tmp_path / "a")
    state = json.loads((altered / "trainer_state.json").read_text())
    state["step"] = 99
    (altered / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(
        TrainingError, match=re.escape("trainer_state.json does not match its sha256")
    ):
        verify_manifest(altered)
    extra = _copy(checkpoint, tmp_path / "b")
    (extra / "notes.txt").write_text("hi")
    with pytest.raises(TrainingError, match=re.escape("notes.txt is not in its manifest.json")):
        verify_manifest(extra)
    bare = _copy(checkpoint, tmp_path / "c")
    (bare / "manifest.json").unlink()
    with pytest.raises(TrainingError, match=re.escape("manifest.json is missing")):
        verify_manifest(bare)


def test_resume_latest_considers_only_my_runs_unless_told(sqlite_url: str, tmp_path: Path) -> None:
    from codetune_studio.core.errors import ConfigError
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.services.training import TrainingRunService
    from codetune_studio.storage.db import Database

    database = Database.connect(sqlite_url)
    database.upgrade()
    try:
        experiments = ExperimentService(database)
        folder = tmp_path / "theirs"
        (folder / "checkpoints" / "checkpoint-1").mkdir(parents=True)
        (folder / "checkpoints" / "checkpoint-1" / "trainer_state.json").write_text("{}")
        theirs = experiments.create_run(
            "theirs", {}, output_dir=str(folder), owner="someone-else-entirely"
        )
        runs = TrainingRunService(experiments, tmp_path / "runs")
        with pytest.raises(ConfigError, match=re.escape("add --any-owner")):
            runs.find_resumable("latest")
        run, found_folder, _ = runs.find_resumable("latest", any_owner=True)
        assert run is not None
        assert (run.id, found_folder) == (theirs.id, folder)
    finally:
        database.dispose()
