"""Improvement suggestions from an Anthropic (Claude) model, through the Messages API.

Settings (Settings > Plugins, or ``--setting`` on the command line):

- ``model``: the model name (default ``claude-sonnet-4-5``).
- ``base_url``: the API root (default Anthropic's); any server that speaks the Messages API.
- ``structured_output``: ``true`` (default) asks for output matching the findings schema;
  ``false`` relies on the prompt alone, for servers without structured outputs.
- ``max_tokens`` (default 4096), ``max_retries`` (default 2), ``timeout_s`` (per try when the
  run has no deadline, 60).

The key comes from the ``anthropic`` secret (``codetune-studio keys set anthropic``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from codetune_studio.plugins.api import (
    BaseTool,
    PluginError,
    PluginSpec,
    ToolContext,
    ToolInputs,
    ToolResult,
)
from codetune_studio.plugins.builtin._llm import (
    FINDINGS_SCHEMA,
    Provider,
    call_with_retries,
    numbered_code,
    parse_findings,
    setting_float,
    setting_int,
)

if TYPE_CHECKING:
    from anthropic.types import Message

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "AnthropicSuggester", "plugin_spec"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_BASE_URL = "https://api.anthropic.com"

_SYSTEM_PROMPT = (
    "You are a senior engineer suggesting concrete improvements to code. The user's code has "
    "numbered lines ('N | code'; the numbers are not part of the code). Suggest changes that "
    "make it more correct, readable, idiomatic or efficient. For each suggestion give severity "
    "(error for bugs, warning for likely problems, info for improvements), a one-sentence "
    "message, the 1-based line and column (null if about the whole file), a short kebab-case "
    "rule name, and a suggestion holding the improved code. Answer with JSON only: "
    '{"findings": [...]}. An empty list is a fine answer.'
)


class AnthropicSuggester(BaseTool):
    """Asks a Claude model for concrete improvements, each with replacement code."""

    name = "anthropic_code_suggester"
    version = "1.0.0"
    description = "Improvement suggestions with replacement code from an Anthropic Claude model"
    needs_network = True
    secrets = ("anthropic",)

    def run(self, inputs: ToolInputs, context: ToolContext) -> ToolResult:
        """Send the code to the model and return its validated suggestions.

        Raises:
            PluginError: No key, wrong key, rate limited, unreachable, too slow, or a
                malformed answer; the message never contains the key.
        """
        import anthropic  # only when a review runs: the SDK takes about two seconds to import

        provider = Provider(
            "Anthropic",
            "anthropic",
            anthropic.APITimeoutError,
            anthropic.APIConnectionError,
            anthropic.APIStatusError,
        )
        key = context.secret("anthropic")
        if key is None or not key.get_secret_value().strip():
            raise provider.missing_key()
        secret = key.get_secret_value()
        model = context.settings.get("model") or DEFAULT_MODEL
        base_url = (context.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        request = self._request(inputs, model, context)

        with anthropic.Anthropic(api_key=secret, base_url=base_url, max_retries=0) as client:

            def attempt(timeout: float) -> Message:
                answer: Message = client.messages.create(**request, timeout=timeout)
                return answer

            message = call_with_retries(
                attempt,
                provider=provider,
                context=context,
                base_url=base_url,
                max_retries=setting_int(context, "max_retries", 2),
                default_timeout_s=setting_float(context, "timeout_s", 60.0),
                secret=secret,
            )
        if message.stop_reason == "max_tokens":
            raise PluginError(
                "Anthropic's answer was cut off at max_tokens; raise max_tokens in Settings "
                "or analyse a smaller piece of code"
            )
        text = "".join(block.text for block in message.content if block.type == "text")
        findings = parse_findings(text, provider, "anthropic")
        metrics: dict[str, Any] = {
            "model": message.model or model,
            "input_tokens": message.usage.input_tokens,
            "output_tokens": message.usage.output_tokens,
        }
        return self.result(findings, metrics, inputs=inputs)

    @staticmethod
    def _request(inputs: ToolInputs, model: str, context: ToolContext) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": setting_int(context, "max_tokens", 4096),
            "system": _SYSTEM_PROMPT,
            "messages": [
                {
                    "role": "user",
                    "content": f"File: {inputs.path}\nLanguage: {inputs.language}\n\n{numbered_code(inputs.code)}",
                }
            ],
        }
        structured = (context.settings.get("structured_output") or "true").lower()
        if structured in {"true", "1", "yes"}:
            request["output_config"] = {
                "format": {"type": "json_schema", "schema": FINDINGS_SCHEMA}
            }
        elif structured not in {"false", "0", "no"}:
            raise PluginError(
                f"setting structured_output must be true or false, not {structured!r}"
            )
        return request


#: What the ``codetune_studio.plugins`` entry point ``anthropic_code_suggester`` resolves to.
plugin_spec = PluginSpec.from_tool(AnthropicSuggester)
