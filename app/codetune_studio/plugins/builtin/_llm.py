"""What the OpenAI analyzer and the Anthropic suggester share.

The whole review flow lives here once, in :class:`ChatReviewTool` (key, model, request, client,
deadline-aware retries, answer validation, usage metrics); each plugin fills in only what its API
spells differently. Also here: the answer schema and its validation, the prompt, and the
translation of SDK errors into one clear :class:`PluginError` per failure.

Retries: both SDKs retry 408, 409, 429 and 5xx themselves (``max_retries``, exponential backoff
from 0.5 s up to 8 s, honouring ``Retry-After`` up to two minutes), but they know nothing of our
overall deadline: a ``Retry-After: 60`` would sleep straight through it. So the clients are
created with ``max_retries=0`` and :func:`call_with_retries` does the same backoff, capped by the
time left, giving up early with the real reason when the next try cannot finish in time.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codetune_studio.plugins.api import (
    BaseTool,
    Finding,
    PluginCancelledError,
    PluginError,
    ToolContext,
    ToolInputs,
    ToolResult,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from types import ModuleType

__all__ = [
    "FINDINGS_SCHEMA",
    "ChatReviewTool",
    "Provider",
    "call_with_retries",
    "numbered_code",
    "parse_findings",
    "review_prompt",
    "setting_float",
    "setting_int",
    "user_message",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_CODE_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class _AnswerFinding(BaseModel):
    model_config = ConfigDict(extra="ignore")

    severity: Literal["error", "warning", "info"]
    message: str = Field(min_length=1)
    line: int | None = Field(default=None, ge=1)
    column: int | None = Field(default=None, ge=1)
    rule: str | None = None
    suggestion: str | None = None


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    findings: list[_AnswerFinding]


#: The JSON schema the models are asked to follow. Every property is required and nullable
#: instead of optional, as OpenAI's strict structured outputs demand.
FINDINGS_SCHEMA: dict[str, object] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["findings"],
    "properties": {
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["severity", "message", "line", "column", "rule", "suggestion"],
                "properties": {
                    "severity": {"type": "string", "enum": ["error", "warning", "info"]},
                    "message": {"type": "string"},
                    "line": {"type": ["integer", "null"]},
                    "column": {"type": ["integer", "null"]},
                    "rule": {"type": ["string", "null"]},
                    "suggestion": {"type": ["string", "null"]},
                },
            },
        }
    },
}


@dataclass(frozen=True, slots=True)
class Provider:
    """How one service's SDK reports failures, and how to name it to the user.

    Attributes:
        label: The service's name in messages (``"OpenAI"``).
        secret: The key's name (``"openai"``).
        timeout_error: The SDK's timeout exception.
        connection_error: The SDK's connection exception (a base of ``timeout_error``).
        status_error: The SDK's exception for 4xx/5xx answers (has ``status_code``).
    """

    label: str
    secret: str
    timeout_error: type[Exception]
    connection_error: type[Exception]
    status_error: type[Exception]

    def missing_key(self) -> PluginError:
        """The error for a run without a key."""
        return PluginError(
            f"No {self.label} API key: set it with `codetune-studio keys set {self.secret}` "
            "or in Settings"
        )


def review_prompt(role: str, *, info: str, suggestion: str, empty_answer: str) -> str:
    """The system prompt: the reviewer's role, then the answer format both plugins ask for.

    Args:
        role: Who the model is and what to look for (one or two sentences).
        info: What the ``info`` severity is for.
        suggestion: What the ``suggestion`` field holds.
        empty_answer: The sentence saying an empty list is acceptable.
    """
    return (
        f"{role} For each finding give severity (error for bugs, warning for likely problems, "
        f"info for {info}), a one-sentence message, the 1-based line and column "
        "(null if about the whole file), a short kebab-case rule name, and "
        f"{suggestion}. Answer with JSON only: "
        '{"findings": [...]}. ' + empty_answer
    )


def user_message(inputs: ToolInputs) -> str:
    """The user turn: the file's name and language, then its numbered lines."""
    return f"File: {inputs.path}\nLanguage: {inputs.language}\n\n{numbered_code(inputs.code)}"


def numbered_code(code: str) -> str:
    """The code with line numbers, so the model's line numbers match the file's."""
    lines = code.splitlines() or [""]
    width = len(str(len(lines)))
    return "\n".join(f"{number:>{width}} | {text}" for number, text in enumerate(lines, 1))


def parse_findings(text: str | None, provider: Provider, rule_prefix: str) -> list[Finding]:
    """Validate a model's answer and turn it into findings.

    Args:
        text: The answer's text.
        provider: Who answered, for the message.
        rule_prefix: Prefix for the findings' rules (``"openai"`` gives ``"openai:naming"``).

    Raises:
        PluginError: The answer is empty, not JSON, or not shaped like the schema.
    """
    if not text or not text.strip():
        raise _malformed(provider, "the answer was empty")
    fenced = _CODE_FENCE.match(text)
    payload = fenced.group(1) if fenced else text
    try:
        answer = _Answer.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "answer"
        detail = "it is not JSON" if first["type"] == "json_invalid" else f"{where}: {first['msg']}"
        raise _malformed(provider, detail) from None
    return [
        Finding(
            severity=item.severity,
            message=item.message.strip(),
            line=item.line,
            column=item.column,
            rule=f"{rule_prefix}:{item.rule.strip() or 'general'}" if item.rule else rule_prefix,
            suggestion=item.suggestion,
        )
        for item in answer.findings
    ]


def _malformed(provider: Provider, detail: str) -> PluginError:
    return PluginError(
        f"{provider.label} returned a malformed answer ({detail}); "
        "try again, or choose a model that supports structured JSON output"
    )


def setting_int(context: ToolContext, name: str, default: int) -> int:
    """An integer option from the tool's settings.

    Raises:
        PluginError: The option is not a whole number.
    """
    raw = context.settings.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise PluginError(f"setting {name} must be a whole number, not {raw!r}") from None


def setting_float(context: ToolContext, name: str, default: float) -> float:
    """A number option from the tool's settings.

    Raises:
        PluginError: The option is not a number.
    """
    raw = context.settings.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise PluginError(f"setting {name} must be a number, not {raw!r}") from None


def call_with_retries(
    attempt: Callable[[float], T],
    *,
    provider: Provider,
    context: ToolContext,
    base_url: str,
    max_retries: int,
    default_timeout_s: float,
    secret: str,
) -> T:
    """Call ``attempt(timeout_s)`` until it succeeds, retrying 429, 5xx and dropped connections.

    Args:
        attempt: Makes one request with the given timeout.
        provider: The service, for error messages.
        context: Gives the deadline and cancellation.
        base_url: The server, for error messages.
        max_retries: Retries after the first attempt.
        default_timeout_s: Per-attempt timeout when the context has no deadline.
        secret: The key, scrubbed from any server text that reaches a message.

    Raises:
        PluginError: One clear message per failure: wrong key, rate limited, server error,
            unreachable, timed out.
    """
    started = time.monotonic()
    tries = 0
    while True:
        if context.is_cancelled():
            if context.remaining() == 0:
                raise _timed_out(provider, base_url, time.monotonic() - started)
            raise PluginCancelledError("cancelled")
        remaining = context.remaining()
        timeout = default_timeout_s if remaining is None else remaining
        if timeout <= 0:
            raise _timed_out(provider, base_url, time.monotonic() - started)
        tries += 1
        try:
            return attempt(timeout)
        except provider.connection_error as exc:
            failure = exc
        except provider.status_error as exc:
            failure = exc
        delay = _retry_delay(failure, provider, tries)
        left = context.remaining()
        if delay is None or tries > max_retries or (left is not None and delay >= left):
            raise _translate(
                failure, provider, base_url, tries, time.monotonic() - started, secret
            ) from None
        logger.info(
            "%s: try %s failed (%s); retrying in %.2f s",
            provider.label,
            tries,
            _status_text(failure),
            delay,
        )
        _sleep(delay, context)


def _retry_delay(exc: Exception, provider: Provider, tries: int) -> float | None:
    """Seconds to wait before the next try, or ``None`` when retrying cannot help."""
    if isinstance(exc, provider.timeout_error):
        return None  # the attempt already used the time that was left
    status: int | None = getattr(exc, "status_code", None)
    if status is not None and status not in _RETRYABLE_STATUS and status < 500:
        return None
    hinted = _retry_after(exc)
    if hinted is not None:
        return hinted
    backoff = min(INITIAL_RETRY_DELAY_S * 2.0 ** (tries - 1), MAX_RETRY_DELAY_S)
    return backoff * (1 - 0.25 * random.random())  # noqa: S311 - jitter, not cryptography


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue  # an HTTP date: fall back to exponential backoff
        if seconds >= 0:
            return seconds
    return None


def _sleep(delay: float, context: ToolContext) -> None:
    end = time.monotonic() + delay
    while (left := end - time.monotonic()) > 0:
        if context.is_cancelled():
            raise PluginCancelledError("cancelled")
        time.sleep(min(left, 0.1))


def _translate(
    exc: Exception, provider: Provider, base_url: str, tries: int, waited_s: float, secret: str
) -> PluginError:
    label = provider.label
    attempts = f"after {tries} attempt{'s' if tries != 1 else ''}"
    if isinstance(exc, provider.timeout_error):
        return _timed_out(provider, base_url, waited_s)
    if isinstance(exc, provider.connection_error):
        return PluginError(
            f"Cannot reach the {label} server at {base_url} ({attempts}): check the network "
            "connection, or the base URL in Settings"
        )
    status: int = getattr(exc, "status_code", 0)
    if status == 401:
        return PluginError(
            f"{label} rejected the API key (401 Unauthorized): set a valid one with "
            f"`codetune-studio keys set {provider.secret}` or in Settings"
        )
    if status == 403:
        return PluginError(
            f"{label} refused access (403 Forbidden): the key may not use this model"
        )
    if status == 404:
        return PluginError(
            f"{label} found no such model or endpoint at {base_url} (404): check the model name and base URL in Settings"
        )
    if status == 429:
        return PluginError(
            f"{label} rate limit reached (429) {attempts}: wait a minute and try again, "
            "or check your plan's usage limits"
        )
    if status >= 500:
        return PluginError(
            f"{label} server error ({status}) {attempts}: the service is having trouble; try again later"
        )
    detail = _scrub(str(getattr(exc, "message", "") or exc), secret)[:200]
    return PluginError(f"{label} rejected the request ({status}): {detail}")


def _timed_out(provider: Provider, base_url: str, waited_s: float) -> PluginError:
    waited = math.ceil(waited_s * 10) / 10
    return PluginError(
        f"{provider.label} did not answer before the deadline (waited {waited:g} s for "
        f"{base_url}): try again, or allow more time"
    )


def _status_text(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status is not None else type(exc).__name__


def _scrub(text: str, secret: str) -> str:
    if secret:
        text = text.replace(secret, "***")
    # Servers echo keys back half-masked ("sk-abc***xyz"); drop anything key-shaped.
    return re.sub(r"\b(sk-|sk-ant-)[\w*-]{6,}", "***", text)


ReplyT = TypeVar("ReplyT")


class ChatReviewTool(BaseTool, Generic[ReplyT]):
    """The review flow both API plugins run; a subclass names its SDK and fills in the hooks.

    Class attributes a subclass sets: ``name``, ``version``, ``description``, ``secrets`` (as
    for any tool), ``provider_label`` (``"OpenAI"``), ``sdk_module`` (imported only when a
    review runs: the SDKs take a second or two to import), ``default_model``,
    ``default_base_url`` and ``system_prompt``.
    """

    needs_network = True
    provider_label: ClassVar[str]
    sdk_module: ClassVar[str]
    default_model: ClassVar[str]
    default_base_url: ClassVar[str]
    system_prompt: ClassVar[str]

    def run(self, inputs: ToolInputs, context: ToolContext) -> ToolResult:
        """Send the code to the model and return its validated findings.

        Raises:
            PluginError: No key, wrong key, rate limited, unreachable, too slow, or a
                malformed answer; the message never contains the key.
        """
        import importlib

        sdk = importlib.import_module(self.sdk_module)
        secret_name = self.secrets[0]
        provider = Provider(
            self.provider_label,
            secret_name,
            sdk.APITimeoutError,
            sdk.APIConnectionError,
            sdk.APIStatusError,
        )
        key = context.secret(secret_name)
        if key is None or not key.get_secret_value().strip():
            raise provider.missing_key()
        secret = key.get_secret_value()
        model = context.settings.get("model") or self.default_model
        base_url = (context.settings.get("base_url") or self.default_base_url).rstrip("/")
        request = self.build_request(inputs, model, context)
        with self.open_client(sdk, secret, base_url) as client:
            reply = call_with_retries(
                lambda timeout: self.send(client, request, timeout),
                provider=provider,
                context=context,
                base_url=base_url,
                max_retries=setting_int(context, "max_retries", 2),
                default_timeout_s=setting_float(context, "timeout_s", 60.0),
                secret=secret,
            )
        findings = parse_findings(self.answer_text(reply, provider), provider, secret_name)
        return self.result(findings, self.usage_metrics(reply, model), inputs=inputs)

    @abstractmethod
    def build_request(self, inputs: ToolInputs, model: str, context: ToolContext) -> dict[str, Any]:
        """The API call's keyword arguments (model, prompt, output format).

        Raises:
            PluginError: A setting has a value the API cannot take.
        """

    @abstractmethod
    def open_client(
        self, sdk: ModuleType, secret: str, base_url: str
    ) -> AbstractContextManager[Any]:
        """The SDK's client, without its own retries (ours honour the deadline)."""

    @abstractmethod
    def send(self, client: Any, request: dict[str, Any], timeout: float) -> ReplyT:
        """One try of the API call."""

    @abstractmethod
    def answer_text(self, reply: ReplyT, provider: Provider) -> str | None:
        """The answer's text, or an error for a refused or truncated answer.

        Raises:
            PluginError: The model refused or its answer was cut off.
        """

    @abstractmethod
    def usage_metrics(self, reply: ReplyT, model: str) -> dict[str, Any]:
        """The model that answered and the tokens it used, for the result's metrics."""
