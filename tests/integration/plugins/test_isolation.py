"""A tool that raises, hangs or crashes ends as an error result; the caller carries on."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from codetune_studio.plugins.api import BaseTool, PluginSpec, ToolContext, ToolInputs, ToolResult
from codetune_studio.plugins.builtin.code_analyzer import CodeAnalyzer
from codetune_studio.plugins.isolation import run_in_process, run_isolated

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

CODE = "import os\nx = 1\n"


def _spec(name: str) -> PluginSpec:
    factories = {
        "fake_echo": "EchoTool",
        "fake_raise": "RaisingTool",
        "fake_plugin_error": "PluginErrorTool",
        "fake_hang": "HangingTool",
        "fake_stubborn": "StubbornTool",
        "fake_exit": "ExitTool",
        "fake_segfault": "SegfaultTool",
    }
    secrets = ("anthropic",) if name == "fake_echo" else ()
    return PluginSpec(
        name=name,
        version="1.0",
        api_version="1.0",
        secrets=secrets,
        factory=f"codetune_fake_plugins.tools:{factories[name]}",
    )


def _inputs(*paths: str) -> list[ToolInputs]:
    return [ToolInputs(code=CODE, path=path, row=index) for index, path in enumerate(paths)]


def test_tool_runs_in_a_child_and_gets_only_its_declared_key(
    fake_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-environment")
    seen: list[ToolResult] = []

    (result,) = run_isolated(
        _spec("fake_echo"),
        _inputs("a.py"),
        secrets={"anthropic": SecretStr("ant-key"), "openai": SecretStr("sk-not-declared")},
        settings={"greeting": "hello"},
        timeout_s=30,
        on_result=seen.append,
    )

    assert result.error is None, result.error
    assert [f.message for f in result.findings] == ["2 lines"]
    assert result.metrics["secrets"] == ["anthropic"]
    assert result.metrics["anthropic"] == "ant-key"
    assert result.metrics["env_keys"] == []  # OPENAI_API_KEY was not passed down
    assert result.metrics["setting"] == "hello"
    assert result.metrics["pid"] != __import__("os").getpid()
    assert (result.path, result.row) == ("a.py", 0)
    assert seen == [result]


def test_raising_tool_becomes_an_error_result(fake_plugins: Path) -> None:
    results = run_isolated(_spec("fake_raise"), _inputs("a.py", "b.py"), timeout_s=30)

    assert [r.error for r in results] == ["fake_raise failed: RuntimeError: boom in the tool"] * 2
    assert [r.path for r in results] == ["a.py", "b.py"]


def test_plugin_error_message_reaches_the_user_unchanged(fake_plugins: Path) -> None:
    (result,) = run_isolated(_spec("fake_plugin_error"), _inputs("a.py"), timeout_s=30)

    assert result.error == "cannot analyse a.py: unsupported dialect"


def test_hanging_tool_is_stopped_at_the_deadline_keeping_finished_results(
    fake_plugins: Path,
) -> None:
    results = run_isolated(
        _spec("fake_hang"), _inputs("quick.py", "slow.py", "never.py"), timeout_s=3
    )

    assert results[0].error is None
    assert results[1].error == "fake_hang did not finish within 3 s and was stopped"
    assert results[2].error == results[1].error


def test_tool_ignoring_sigterm_is_killed(fake_plugins: Path) -> None:
    (result,) = run_isolated(_spec("fake_stubborn"), _inputs("a.py"), timeout_s=2, grace_s=0.5)

    assert result.error == "fake_stubborn did not finish within 2 s and was stopped"


def test_tool_that_exits_its_process_is_reported_as_crashed(fake_plugins: Path) -> None:
    (result,) = run_isolated(_spec("fake_exit"), _inputs("a.py"), timeout_s=30)

    assert result.error == "fake_exit crashed (exited with status 3)"


def test_segfaulting_tool_is_reported_as_crashed(fake_plugins: Path) -> None:
    (result,) = run_isolated(_spec("fake_segfault"), _inputs("a.py"), timeout_s=30)

    assert result.error is not None
    assert result.error.startswith("fake_segfault crashed (killed by SIGSEGV)")
    assert "Segmentation fault" in result.error


def test_cancel_stops_the_child(fake_plugins: Path) -> None:
    deadline = time.monotonic() + 1.0

    (result,) = run_isolated(
        _spec("fake_hang"),
        _inputs("slow.py"),
        timeout_s=30,
        cancelled=lambda: time.monotonic() > deadline,
    )

    assert result.error == "fake_hang was cancelled"


def test_tool_that_cannot_be_imported_fails_every_input_with_the_reason() -> None:
    spec = PluginSpec(
        name="ghost", version="1", api_version="1.0", factory="no_such_module_xyz:Tool"
    )

    results = run_isolated(spec, _inputs("a.py", "b.py"), timeout_s=30)

    assert [r.error for r in results] == [
        "cannot load no_such_module_xyz:Tool: ModuleNotFoundError: No module named 'no_such_module_xyz'"
    ] * 2


def test_builtin_analyzer_runs_isolated_over_a_batch() -> None:
    spec = PluginSpec.from_tool(CodeAnalyzer)
    inputs = [
        ToolInputs(code="def f(:\n", path="bad.py"),
        ToolInputs(code='"""Doc."""\n', path="good.py"),
    ]

    bad, good = run_isolated(spec, inputs, timeout_s=30)

    assert [f.rule for f in bad.findings] == ["syntax-error"]
    assert good.findings == ()
    assert good.metrics["parsed"] is True


def test_run_in_process_turns_a_wrong_return_type_into_an_error() -> None:
    class Sloppy(BaseTool):
        name = "sloppy"

        def run(self, inputs: ToolInputs, context: ToolContext) -> ToolResult:
            return "not a result"  # type: ignore[return-value]

    result = run_in_process(Sloppy(), ToolInputs(code="x"), ToolContext())

    assert result.error == "sloppy returned str, not a ToolResult"
