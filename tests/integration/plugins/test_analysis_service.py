"""AnalysisService: runs a plugin in its child process and records the run in the database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from codetune_studio.cli import main
from codetune_studio.core.errors import ConfigError, PluginError
from codetune_studio.plugins.builtin.code_analyzer import plugin_spec
from codetune_studio.plugins.builtin.openai_analyzer import plugin_spec as openai_spec
from codetune_studio.secrets import MemorySecretStore
from codetune_studio.services.analysis import AnalysisService, AnalysisTarget
from codetune_studio.services.database import open_database
from codetune_studio.services.experiments import ExperimentService

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

ONE_BROKEN = Path(__file__).resolve().parents[2] / "fixtures" / "datasets" / "code-one-broken.jsonl"


@pytest.fixture
def experiments(tmp_path: Path) -> Iterator[ExperimentService]:
    opened = open_database(None, sqlite_path=tmp_path / "studio.db", allow_fallback=False)
    yield ExperimentService(opened.database)
    opened.close()


def test_dataset_run_lands_in_the_database_linked_to_the_dataset(
    experiments: ExperimentService,
) -> None:
    dataset = experiments.register_dataset(
        "one-broken", source=str(ONE_BROKEN), format="alpaca", fingerprint="f", num_rows=6
    )
    service = AnalysisService(MemorySecretStore(), experiments, offline=True)
    inputs = service.inputs_for(AnalysisTarget("dataset", str(ONE_BROKEN)))

    outcome = service.run_all(
        plugin_spec, inputs, target=str(ONE_BROKEN), dataset_path=str(ONE_BROKEN)
    )

    assert outcome.status == "ok"
    assert outcome.parse is not None
    assert (outcome.parse.analysed, outcome.parse.parsed) == (6, 5)
    assert [(f.row, f.line) for f in outcome.parse.failing] == [(4, 1)]
    [stored] = experiments.list_plugin_results(target=str(ONE_BROKEN))
    assert stored.id == outcome.record_id
    assert stored.dataset_id == dataset.id
    assert stored.plugin_version == plugin_spec.version
    syntax = next(f for f in stored.findings if f["rule"] == "syntax-error")
    assert (syntax["severity"], syntax["row"], syntax["line"]) == ("error", 4, 1)


def test_network_plugin_is_refused_offline_unless_pointed_at_a_local_server() -> None:
    service = AnalysisService(MemorySecretStore(), offline=True)
    with pytest.raises(PluginError, match="offline"):
        service.check_can_run(openai_spec, {})
    service.check_can_run(openai_spec, {"base_url": "http://127.0.0.1:9/v1"})


def test_nothing_to_analyse_is_a_clear_error() -> None:
    service = AnalysisService(MemorySecretStore())
    with pytest.raises(ConfigError, match="Paste some code"):
        service.inputs_for(AnalysisTarget("code", "   "))
    with pytest.raises(ConfigError, match="Choose a dataset"):
        service.inputs_for(AnalysisTarget("dataset", ""))


def test_cli_analyze_dataset_prints_the_parse_rate_and_failing_rows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["analyze", str(ONE_BROKEN)])

    captured = capsys.readouterr()
    assert status == 1  # a syntax error is an error finding
    assert "parse rate 83.3% (5 of 6); failing rows: 4" in captured.err
