"""``codetune-studio export`` / ``verify`` and the export service's MODEL resolution and card."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from codetune_studio.cli import main
from codetune_studio.core.errors import ConfigError
from codetune_studio.core.models import MetricPoint
from codetune_studio.services.database import open_database
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.services.export import ExportService
from tests import export_fixtures

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

tiny_model_dir = export_fixtures.tiny_model_dir
lora_adapter_dir = export_fixtures.lora_adapter_dir
in_process_probe = export_fixtures.in_process_probe


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def experiments(data_dir: Path) -> Iterator[ExperimentService]:
    data_dir.mkdir(parents=True, exist_ok=True)
    opened = open_database(None, sqlite_path=data_dir / "studio.db", allow_fallback=False)
    try:
        yield ExperimentService(opened.database)
    finally:
        opened.close()


def _recorded_version(experiments: ExperimentService, adapter: Path) -> tuple[int, int]:
    run = experiments.create_run("quick", {"model": "starter", "method": "lora"})
    experiments.record_metrics(
        run.id,
        [
            MetricPoint(10, "train/loss", 2.5, time.time()),
            MetricPoint(20, "train/loss", 1.25, time.time()),
            MetricPoint(20, "eval_loss", 1.5, time.time()),
        ],
    )
    version = experiments.add_model_version(
        "quick (run 1)",
        path=str(adapter),
        base_model="starter",
        run_id=run.id,
        dataset_fingerprint="fp-1234",
    )
    return run.id, version.id


def test_model_card_names_base_dataset_recipe_and_last_metrics(
    experiments: ExperimentService, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    run_id, version_id = _recorded_version(experiments, lora_adapter_dir)
    service = ExportService(experiments)
    by_run = service.resolve(str(run_id))
    by_version = service.resolve(f"v:{version_id}")
    assert by_run == by_version
    assert by_version.source == lora_adapter_dir
    assert by_version.card.metrics == {"train/loss": 1.25, "eval_loss": 1.5}
    from codetune_studio.engine.export import ExportRequest, export_model

    export_model(ExportRequest(source=by_version.source, out=tmp_path / "x", card=by_version.card))
    card = (tmp_path / "x" / "README.md").read_text()
    assert "| Base model | `starter` |" in card
    assert "base_model:" not in card  # not a hub id: the Hub would reject the card
    assert "`fp-1234`" in card
    assert "| train/loss | 1.25 |" in card
    assert "| eval_loss | 1.5 |" in card
    assert '"method": "lora"' in card
    with pytest.raises(ConfigError, match="no model version 99"):
        service.resolve("v:99")


def test_cli_export_prints_pass_and_verify_exit_codes(
    lora_adapter_dir: Path,
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    out = tmp_path / "exported"
    status = main(["--data-dir", str(data_dir), "export", str(lora_adapter_dir), "--out", str(out)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "Verification: PASS" in printed.out
    assert "[ 50%]" in printed.err or "%]" in printed.err  # progress on stderr
    assert main(["--data-dir", str(data_dir), "verify", str(tmp_path)]) == 2
    assert "not an export" in capsys.readouterr().err
    request.getfixturevalue("in_process_probe")  # the failing verify: verdict logic only
    manifest = json.loads((out / "export.json").read_text())
    manifest["files"]["adapter_config.json"]["size"] += 1  # as if the file had been cut short
    (out / "export.json").write_text(json.dumps(manifest))
    assert main(["--data-dir", str(data_dir), "verify", str(out)]) == 1
    assert "adapter_config.json is truncated or changed" in capsys.readouterr().out


def test_cli_export_refuses_ollama_without_gguf(
    lora_adapter_dir: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--data-dir",
        str(data_dir),
        "export",
        str(lora_adapter_dir),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*argv, "--ollama"]) == 2
    assert "--ollama needs --format gguf" in capsys.readouterr().err


def test_cli_export_pushes_with_the_stored_token(
    lora_adapter_dir: Path,
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from huggingface_hub import constants

    from tests.hub_server import WRITE_TOKEN, FakeHub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)  # the keyring store's documented fallback
    out = tmp_path / "pushed"
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        argv = ["--data-dir", str(data_dir), "export", str(lora_adapter_dir), "--out", str(out)]
        status = main([*argv, "--no-verify", "--push", "me/tiny", "--private"])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert f"Pushed to {hub.url}/me/tiny" in printed.out
    assert hub.repos == {"me/tiny": {"private": True}}
    assert {"README.md", "adapter_model.safetensors", "export.json"} <= set(hub.files["me/tiny"])
