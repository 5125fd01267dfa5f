"""A Hub dataset id loads from the local Hugging Face cache when offline, in the engine and panel."""

from __future__ import annotations

import json
import logging
import shutil
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.errors import DatasetError
from codetune_studio.engine.sources import read_source
from codetune_studio.ui.panels.datasets import DatasetsPanel

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.services.experiments import ExperimentService

ROWS = [{"prompt": f"What is {i} + {i}?", "completion": f" {2 * i}"} for i in range(6)]


def _save_into_hub_cache(tmp_path: Path, repo_id: str) -> Path:
    """Lay a dataset out in a datasets cache as a download of ``repo_id`` leaves it."""
    import datasets

    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    build = tmp_path / "build"
    datasets.load_dataset("json", data_files=str(source), cache_dir=str(build), split="train")
    built = next(p for p in build.glob("json/*/0.0.0/*") if p.is_dir())
    cache = tmp_path / "hf-datasets"
    namespace, name = repo_id.split("/")
    target = cache / f"{namespace}___{name}" / "default" / "0.0.0" / "0123abcd"
    shutil.copytree(built, target)
    (target / "json-train.arrow").rename(target / f"{name}-train.arrow")
    info = json.loads((target / "dataset_info.json").read_text(encoding="utf-8"))
    info.update(config_name="default", dataset_name=name, builder_name=name)
    for split in info["splits"].values():
        split["dataset_name"] = name
    (target / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return cache


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any) -> Path:
    import datasets
    import tqdm  # type: ignore[import-untyped]

    # tqdm's monitor thread would outlive the test (the suite fails on leaked threads).
    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)
    cache = _save_into_hub_cache(tmp_path, "someone/tiny-qa")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # datasets says, at WARNING, that it used the cached copy: expected here.
    caplog.set_level(logging.ERROR, logger="datasets")
    return cache


def test_offline_hub_id_reads_from_the_local_cache(hub_cache: Path) -> None:
    source = read_source("someone/tiny-qa")

    assert [r.data for r in source.records] == ROWS
    assert source.records[0].source == "someone/tiny-qa:row 1"
    with pytest.raises(
        DatasetError, match="nor in the local Hugging Face cache, and the studio is offline"
    ):
        read_source("someone/not-cached")


def test_hub_id_typed_in_the_panel_previews_and_inspects_like_a_file(
    qtbot: Any, experiments: ExperimentService, tmp_path: Path, hub_cache: Path
) -> None:
    panel = DatasetsPanel(experiments, tmp_path / "no-samples")
    qtbot.addWidget(panel)
    panel.hub_edit.setText("someone/tiny-qa")

    with qtbot.waitSignal(panel.analysis_finished, timeout=20_000):
        panel.hub_button.click()

    assert panel.analysis is not None
    assert panel.analysis.report.format == "completion"
    assert panel.analysis.report.examples == len(ROWS)
    assert panel.preview_model.rowCount() == len(ROWS)
    assert "someone/tiny-qa" in panel.listed_paths()

    panel.hub_edit.setText("someone/not-cached")
    with qtbot.waitSignal(panel.analysis_failed, timeout=20_000) as failed:
        panel.hub_button.click()
    assert "nor in the local Hugging Face cache, and the studio is offline" in failed.args[1]
    panel.shutdown()
