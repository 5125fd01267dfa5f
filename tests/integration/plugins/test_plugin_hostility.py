"""Plugins cannot see the studio's credentials, leak them in errors, or take the machine down."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from codetune_studio.plugins.api import PluginSpec, ToolInputs
from codetune_studio.plugins.isolation import run_isolated

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CANARIES = {
    "PGPASSWORD": "canary-pgpassword-5150",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-8675309",
    "DATABASE_URL": "postgresql://team:canary-dburl-2718@db.example/studio",
    "CODETUNE_DATABASE_URL": "postgresql://team:canary-dburl-3141@db.example/studio",
    "ACME_DEPLOY_PAT": "canary-pat-1618",
    "OPENAI_API_KEY": "sk-canaryopenai0123456789abcdef",
    "SOME_SERVICE_TOKEN": "canary-token-4242",
}


def _spec(name: str, factory: str, secrets: tuple[str, ...] = ()) -> PluginSpec:
    return PluginSpec(
        name=name,
        version="1.0",
        api_version="1.0",
        secrets=secrets,
        factory=f"codetune_fake_plugins.tools:{factory}",
    )


def test_the_plugin_child_gets_an_allow_listed_environment(
    fake_plugins: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    dump = tmp_path / "env.json"
    (result,) = run_isolated(
        _spec("fake_env_dump", "EnvDumpTool"),
        [ToolInputs(code="x = 1\n", path=str(dump))],
        timeout_s=60,
    )
    assert result.error is None, result.error
    env = json.loads(dump.read_text())
    assert set(CANARIES).isdisjoint(env)
    text = json.dumps(env)
    assert not [value for value in CANARIES.values() if value in text]
    assert env["PYTHONIOENCODING"] == "utf-8"


def test_a_plugin_error_is_scrubbed_before_anyone_sees_it(
    fake_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "ant-canary-key-0123456789"
    (result,) = run_isolated(
        _spec("fake_leaky", "LeakyErrorTool", ("anthropic",)),
        [ToolInputs(code="x = 1\n", path="a.py")],
        secrets={"anthropic": SecretStr(key)},
        timeout_s=60,
    )
    error = result.error or ""
    assert error.startswith("auth failed for key ***")
    for leaked in (key, "abcdef0123456789", "sk-proj-AAAABBBB", "hunter2hunter2"):
        assert leaked not in error


def test_a_flooding_plugin_finishes_with_bounded_output(fake_plugins: Path) -> None:
    (result,) = run_isolated(
        _spec("fake_flood", "FloodTool"), [ToolInputs(code="x = 1\n", path="a.py")], timeout_s=120
    )
    assert result.error is None, result.error
    assert [f.message for f in result.findings] == ["survived"]


def test_a_plugin_that_allocates_without_bound_hits_the_memory_limit(fake_plugins: Path) -> None:
    (result,) = run_isolated(
        _spec("fake_hog", "HogTool"),
        [ToolInputs(code="x = 1\n", path="a.py")],
        timeout_s=120,
        memory_limit_bytes=768 * 1024**2,
    )
    assert "MemoryError" in (result.error or ""), result.error


def test_a_hanging_plugin_is_stopped_at_its_deadline(fake_plugins: Path) -> None:
    (result,) = run_isolated(
        _spec("fake_hang", "HangingTool"),
        [ToolInputs(code="x = 1\n", path="slow.py")],
        timeout_s=2,
        grace_s=0.5,
    )
    assert result.error == "fake_hang did not finish within 2 s and was stopped"
