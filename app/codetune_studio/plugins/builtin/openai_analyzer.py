"""Code review by an OpenAI model, or by any server that speaks OpenAI's chat-completions API.

Settings (Settings > Plugins, or ``--setting`` on the command line):

- ``model``: the model name (default ``gpt-4.1-mini``).
- ``base_url``: the API root (default OpenAI's). A local llama.cpp server, vLLM or Ollama works
  offline, for example ``http://127.0.0.1:11434/v1``; they accept any key.
- ``response_format``: ``json_schema`` (default, strict structured output), ``json_object``
  (for servers without schema support) or ``none``.
- ``max_retries`` (default 2) and ``timeout_s`` (per try when the run has no deadline, 60).

The key comes from the ``openai`` secret (``codetune-studio keys set openai``).
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
    from openai.types.chat import ChatCompletion

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "OpenAIAnalyzer", "plugin_spec"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_BASE_URL = "https://api.openai.com/v1"

_SYSTEM_PROMPT = (
    "You are a meticulous senior code reviewer. Review the code the user sends (its lines are "
    "numbered as 'N | code'; the numbers are not part of the code). Report real problems only: "
    "bugs, security issues, error handling, performance traps and unclear code. For each "
    "finding give severity (error for bugs, warning for likely problems, info for style), a "
    "one-sentence message, the 1-based line and column (null if about the whole file), a short "
    "kebab-case rule name, and a suggestion with corrected code or null. Answer with JSON only: "
    '{"findings": [...]}. An empty list is a fine answer for good code.'
)


class OpenAIAnalyzer(BaseTool):
    """Asks an OpenAI (or OpenAI-compatible) chat model to review the code."""

    name = "openai_code_analyzer"
    version = "1.0.0"
    description = (
        "Code review by an OpenAI model or any OpenAI-compatible server (llama.cpp, vLLM, Ollama)"
    )
    needs_network = True
    secrets = ("openai",)

    def run(self, inputs: ToolInputs, context: ToolContext) -> ToolResult:
        """Send the code to the model and return its validated findings.

        Raises:
            PluginError: No key, wrong key, rate limited, unreachable, too slow, or a
                malformed answer; the message never contains the key.
        """
        import openai  # only when a review runs: the SDK takes most of a second to import

        provider = Provider(
            "OpenAI",
            "openai",
            openai.APITimeoutError,
            openai.APIConnectionError,
            openai.APIStatusError,
        )
        key = context.secret("openai")
        if key is None or not key.get_secret_value().strip():
            raise provider.missing_key()
        secret = key.get_secret_value()
        model = context.settings.get("model") or DEFAULT_MODEL
        base_url = (context.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        request = self._request(
            inputs, model, context.settings.get("response_format") or "json_schema"
        )

        with openai.OpenAI(api_key=secret, base_url=base_url, max_retries=0) as client:

            def attempt(timeout: float) -> ChatCompletion:
                answer: ChatCompletion = client.chat.completions.create(**request, timeout=timeout)
                return answer

            completion = call_with_retries(
                attempt,
                provider=provider,
                context=context,
                base_url=base_url,
                max_retries=setting_int(context, "max_retries", 2),
                default_timeout_s=setting_float(context, "timeout_s", 60.0),
                secret=secret,
            )
        findings = parse_findings(self._answer_text(completion, provider), provider, "openai")
        usage = completion.usage
        metrics: dict[str, Any] = {"model": completion.model or model}
        if usage is not None:
            metrics.update(
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens
            )
        return self.result(findings, metrics, inputs=inputs)

    @staticmethod
    def _request(inputs: ToolInputs, model: str, response_format: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": _SYSTEM_PROMPT},
                {
                    "role": "user",
                    "content": f"File: {inputs.path}\nLanguage: {inputs.language}\n\n{numbered_code(inputs.code)}",
                },
            ],
        }
        if response_format == "json_schema":
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "code_findings", "strict": True, "schema": FINDINGS_SCHEMA},
            }
        elif response_format == "json_object":
            request["response_format"] = {"type": "json_object"}
        elif response_format != "none":
            raise PluginError(
                f"setting response_format must be json_schema, json_object or none, not {response_format!r}"
            )
        return request

    @staticmethod
    def _answer_text(completion: ChatCompletion, provider: Provider) -> str | None:
        if not completion.choices:
            return None
        choice = completion.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise PluginError(f"{provider.label} declined to review this code: {refusal[:200]}")
        if choice.finish_reason == "length":
            raise PluginError(
                f"{provider.label}'s answer was cut off at its length limit; analyse a smaller piece of code"
            )
        return choice.message.content


#: What the ``codetune_studio.plugins`` entry point ``openai_code_analyzer`` resolves to.
plugin_spec = PluginSpec.from_tool(OpenAIAnalyzer)
