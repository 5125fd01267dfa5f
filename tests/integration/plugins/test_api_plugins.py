"""The OpenAI analyzer and the Anthropic suggester, with the real SDKs, over real HTTP."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anthropic  # noqa: F401 - imported up front so SDK import time does not eat the deadline
import openai  # noqa: F401
import pytest
from pydantic import SecretStr

from codetune_studio.plugins.api import (
    BaseTool,
    PluginError,
    PluginSpec,
    ToolContext,
    ToolInputs,
    ToolResult,
)
from codetune_studio.plugins.builtin.anthropic_suggester import AnthropicSuggester
from codetune_studio.plugins.builtin.openai_analyzer import OpenAIAnalyzer
from codetune_studio.plugins.isolation import run_isolated
from tests.integration.protocol_server import (
    ANTHROPIC_PATH,
    OPENAI_PATH,
    ProtocolServer,
    Reply,
    findings_json,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

KEY = "sk-test-0123456789abcdef-SECRET"
CODE = "def read(path):\n    handle = open(path)\n    return handle.read()\n"


@dataclass(frozen=True)
class Flavour:
    tool: type[BaseTool]
    path: str
    secret: str
    label: str

    def base_url(self, server: ProtocolServer) -> str:
        return server.openai_base_url if self.path == OPENAI_PATH else server.anthropic_base_url


OPENAI = Flavour(OpenAIAnalyzer, OPENAI_PATH, "openai", "OpenAI")
ANTHROPIC = Flavour(AnthropicSuggester, ANTHROPIC_PATH, "anthropic", "Anthropic")


@pytest.fixture
def server() -> Iterator[ProtocolServer]:
    srv = ProtocolServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=[OPENAI, ANTHROPIC], ids=["openai", "anthropic"])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    flavour: Flavour = request.param
    return flavour


def _context(
    flavour: Flavour,
    server: ProtocolServer,
    *,
    key: str | None = KEY,
    timeout_s: float = 20.0,
    **settings: str,
) -> ToolContext:
    secrets = {flavour.secret: SecretStr(key)} if key is not None else {}
    merged = {"base_url": flavour.base_url(server), "model": "local-test-model", **settings}
    return ToolContext.with_timeout(timeout_s, secrets=secrets, settings=merged)


def _run(flavour: Flavour, context: ToolContext) -> ToolResult:
    return flavour.tool().run(ToolInputs(code=CODE, path="reader.py"), context)


def test_findings_come_back_validated_with_key_model_and_schema_sent(
    flavour: Flavour, server: ProtocolServer
) -> None:
    result = _run(flavour, _context(flavour, server))

    assert result.error is None
    assert len(result.findings) == 1
    finding = result.findings[0]
    assert (finding.severity, finding.line, finding.column) == ("warning", 2, 5)
    assert finding.message == "Use a context manager to close the file"
    assert finding.rule == f"{flavour.secret}:resource-leak"
    assert finding.suggestion == "with open(path) as handle:"
    assert finding.path == "reader.py"
    assert result.metrics["model"] == "local-test-model"

    (request,) = server.requests
    assert request.body["model"] == "local-test-model"
    if flavour is OPENAI:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.body["response_format"]["type"] == "json_schema"
        user_text = request.body["messages"][1]["content"]
    else:
        # anthropic 2.x sends the key as a bearer token; 0.x sent x-api-key.
        assert KEY in (request.headers.get("x-api-key") or request.headers["authorization"])
        assert request.body["output_config"]["format"]["type"] == "json_schema"
        user_text = request.body["messages"][0]["content"]
    assert "2 |     handle = open(path)" in user_text  # numbered, so line numbers match


def test_no_key_says_how_to_set_it_and_sends_nothing(
    flavour: Flavour, server: ProtocolServer
) -> None:
    with pytest.raises(PluginError) as caught:
        _run(flavour, _context(flavour, server, key=None))

    assert str(caught.value) == (
        f"No {flavour.label} API key: set it with `codetune-studio keys set {flavour.secret}` or in Settings"
    )
    assert server.requests == []


def test_wrong_key_is_reported_without_the_key(flavour: Flavour, server: ProtocolServer) -> None:
    server.script(
        flavour.path, Reply(status=401, error_message=f"Incorrect API key provided: {KEY}")
    )

    with pytest.raises(PluginError) as caught:
        _run(flavour, _context(flavour, server))

    message = str(caught.value)
    assert f"{flavour.label} rejected the API key (401 Unauthorized)" in message
    assert f"keys set {flavour.secret}" in message
    assert KEY not in message
    assert "SECRET" not in message
    assert len(server.requests) == 1  # a wrong key is not retried


def test_rate_limit_then_success_is_retried(flavour: Flavour, server: ProtocolServer) -> None:
    server.script(flavour.path, Reply(status=429, headers={"retry-after": "0"}))

    result = _run(flavour, _context(flavour, server))

    assert result.error is None
    assert len(result.findings) == 1
    assert len(server.requests) == 2


def test_server_error_is_retried_with_backoff(flavour: Flavour, server: ProtocolServer) -> None:
    server.script(flavour.path, Reply(status=503))

    started = time.monotonic()
    result = _run(flavour, _context(flavour, server))

    assert len(result.findings) == 1
    assert len(server.requests) == 2
    assert time.monotonic() - started >= 0.3  # backoff of 0.5 s minus at most 25 % jitter


def test_persistent_rate_limit_gives_up_with_a_clear_message(
    flavour: Flavour, server: ProtocolServer
) -> None:
    server.script(flavour.path, *[Reply(status=429, headers={"retry-after": "0"})] * 3)

    with pytest.raises(
        PluginError, match=rf"{flavour.label} rate limit reached \(429\) after 3 attempts"
    ):
        _run(flavour, _context(flavour, server, max_retries="2"))
    assert len(server.requests) == 3


def test_slow_server_ends_at_the_deadline(flavour: Flavour, server: ProtocolServer) -> None:
    server.script(flavour.path, Reply(delay_s=10))

    started = time.monotonic()
    with pytest.raises(
        PluginError, match=rf"{flavour.label} did not answer before the deadline \(waited [\d.]+ s"
    ):
        _run(flavour, _context(flavour, server, timeout_s=1.0))
    # It waited for the deadline, not for the server's 10 s (which a loaded machine could not
    # make flaky: the reply never comes before 10 s).
    assert 0.9 <= time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("Sure! Here are my findings: the code looks fine.", "it is not JSON"),
        (findings_json({"severity": "fatal", "message": "x"}), "findings.0.severity"),
        ('{"issues": []}', "findings: Field required"),
        ("", "the answer was empty"),
    ],
    ids=["prose", "bad-severity", "wrong-shape", "empty"],
)
def test_malformed_answer_is_reported(
    flavour: Flavour, server: ProtocolServer, content: str, detail: str
) -> None:
    server.script(flavour.path, Reply(content=content))

    with pytest.raises(PluginError) as caught:
        _run(flavour, _context(flavour, server))

    assert f"{flavour.label} returned a malformed answer" in str(caught.value)
    assert detail in str(caught.value)


def test_answer_in_a_code_fence_is_accepted(flavour: Flavour, server: ProtocolServer) -> None:
    server.script(flavour.path, Reply(content="```json\n" + server.default_findings + "\n```"))

    assert len(_run(flavour, _context(flavour, server)).findings) == 1


def test_unreachable_server_is_reported(flavour: Flavour, server: ProtocolServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{closed_port}" + ("/v1" if flavour is OPENAI else "")
    context = _context(flavour, server, base_url=url, max_retries="1")

    with pytest.raises(PluginError, match=rf"Cannot reach the {flavour.label} server at {url}"):
        _run(flavour, context)


def test_isolated_run_passes_the_declared_key_to_the_child(
    flavour: Flavour, server: ProtocolServer
) -> None:
    spec = PluginSpec.from_tool(flavour.tool)
    settings = {"base_url": flavour.base_url(server), "model": "local-test-model"}

    (result,) = run_isolated(
        spec,
        [ToolInputs(code=CODE, path="reader.py")],
        secrets={flavour.secret: SecretStr(KEY), "huggingface": SecretStr("hf-other")},
        settings=settings,
        timeout_s=30,
    )

    assert result.error is None, result.error
    assert [f.rule for f in result.findings] == [f"{flavour.secret}:resource-leak"]
    header = (
        server.requests[0].headers.get("authorization") or server.requests[0].headers["x-api-key"]
    )
    assert KEY in header
