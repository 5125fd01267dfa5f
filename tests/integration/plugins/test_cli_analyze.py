"""``codetune-studio analyze`` and ``codetune-studio plugins list``, end to end."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from codetune_studio.cli import main
from tests.integration.protocol_server import OPENAI_PATH, ProtocolServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

GOOD = '"""Module."""\n\n\ndef add(a, b):\n    """Add."""\n    return a + b\n'
UNUSED = '"""Module."""\nimport os\n'
BROKEN = "def f(:\n    pass\n"


@pytest.fixture
def server() -> Iterator[ProtocolServer]:
    srv = ProtocolServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def test_analyze_file_as_json_lists_findings_with_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "unused.py"
    target.write_text(UNUSED)

    status = main(["analyze", str(target), "--format", "json"])

    rows = json.loads(capsys.readouterr().out)
    assert status == 0
    assert rows == [
        {
            "path": str(target),
            "row": None,
            "line": 2,
            "column": 1,
            "severity": "warning",
            "rule": "unused-import",
            "message": "'os' is imported but never used",
            "plugin": "code_analyzer",
        }
    ]


def test_analyze_folder_reports_each_file_and_fails_on_syntax_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "good.py").write_text(GOOD)
    (tmp_path / "pkg" / "broken.py").write_text(BROKEN)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "ignored.py").write_text(BROKEN)

    status = main(["analyze", str(tmp_path)])

    out = capsys.readouterr().out
    assert status == 1
    assert f"{tmp_path / 'pkg' / 'broken.py'}:1:7  error" in out
    assert "ignored.py" not in out
    assert (
        out.strip().splitlines()[-1] == "1 findings in 2 of 2 inputs (1 errors, 0 warnings, 0 info)"
    )


def test_analyze_dataset_checks_each_rows_completion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "code.jsonl"
    rows = [
        {"prompt": "add", "completion": GOOD},
        {"instruction": "x", "output": "Here you go:\n```python\ndef f(:\n    pass\n```\n"},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": UNUSED}]},
        {"text": "no code field"},
    ]
    dataset.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    status = main(["analyze", str(dataset), "--format", "json"])

    captured = capsys.readouterr()
    found = [(r["row"], r["line"], r["rule"]) for r in json.loads(captured.out)]
    assert status == 1
    assert found == [(2, 1, "syntax-error"), (3, 2, "unused-import")]  # rows are file lines
    assert "1 rows of" in captured.err


def test_bad_dataset_line_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "bad.jsonl"
    dataset.write_text('{"output": "x = 1"}\n{not json\n')

    status = main(["analyze", str(dataset)])

    assert status == 2
    assert f"{dataset} line 2 is not valid JSON" in capsys.readouterr().err


def test_unknown_plugin_lists_the_available_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.py").write_text(GOOD)

    status = main(["analyze", str(tmp_path / "a.py"), "--plugin", "nope"])

    assert status == 1
    assert (
        "no plugin called 'nope' (available: anthropic_code_suggester, code_analyzer, openai_code_analyzer)"
        in (capsys.readouterr().err)
    )


def test_openai_plugin_against_a_local_server(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    server: ProtocolServer,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-test-key")
    (tmp_path / "a.py").write_text(GOOD)

    status = main(
        ["analyze", str(tmp_path / "a.py"), "--plugin", "openai_code_analyzer", "--base-url",
         server.openai_base_url, "--model", "local", "--format", "json", "--offline"]
    )  # fmt: skip

    rows = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [(r["rule"], r["line"], r["plugin"]) for r in rows] == [
        ("openai:resource-leak", 2, "openai_code_analyzer")
    ]
    assert server.requests[0].path == OPENAI_PATH
    assert server.requests[0].headers["authorization"] == "Bearer sk-cli-test-key"


def test_openai_plugin_without_a_key_says_how_to_set_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: ProtocolServer
) -> None:
    (tmp_path / "a.py").write_text(GOOD)

    status = main(
        [
            "analyze",
            str(tmp_path / "a.py"),
            "--plugin",
            "openai_code_analyzer",
            "--base-url",
            server.openai_base_url,
        ]
    )

    assert status == 1
    assert (
        "No OpenAI API key: set it with `codetune-studio keys set openai` or in Settings"
        in capsys.readouterr().err
    )
    assert server.requests == []


def test_offline_refuses_a_remote_api_plugin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.py").write_text(GOOD)

    status = main(
        ["analyze", str(tmp_path / "a.py"), "--plugin", "anthropic_code_suggester", "--offline"]
    )

    assert status == 1
    assert (
        "anthropic_code_suggester needs the network, and the studio is offline"
        in capsys.readouterr().err
    )


def test_plugins_list_shows_builtins_and_what_they_need(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "list", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}

    assert rows["code_analyzer"]["state"] == "enabled"
    assert rows["code_analyzer"]["needs_network"] is False
    assert rows["openai_code_analyzer"]["secrets"] == ["openai"]
    assert rows["anthropic_code_suggester"]["needs_network"] is True

    assert main(["plugins", "list"]) == 0
    table = capsys.readouterr().out
    assert "openai_code_analyzer" in table
    assert "network, openai key" in table


def test_analyze_records_its_findings_in_the_plugin_results_table(
    tmp_path: Path, isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codetune_studio.core.paths import resolve_paths
    from codetune_studio.services.database import open_database
    from codetune_studio.services.experiments import ExperimentService

    target = tmp_path / "unused.py"
    target.write_text(UNUSED)
    assert main(["analyze", str(target), "--format", "json"]) == 0
    capsys.readouterr()
    opened = open_database(None, sqlite_path=resolve_paths().database_file, allow_fallback=False)
    try:
        (stored,) = ExperimentService(opened.database).list_plugin_results(target=str(target))
    finally:
        opened.close()
    assert stored.plugin == "code_analyzer"
    assert stored.status == "ok"
    assert [finding["rule"] for finding in stored.findings] == ["unused-import"]
