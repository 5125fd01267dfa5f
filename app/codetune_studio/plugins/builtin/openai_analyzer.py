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

from typing import TYPE_CHECKING, Any

from codetune_studio.plugins.api import PluginError, PluginSpec, ToolContext, ToolInputs
from codetune_studio.plugins.builtin._llm import (
    FINDINGS_SCHEMA,
    ChatReviewTool,
    Provider,
    review_prompt,
    user_message,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from types import ModuleType

    from openai.types.chat import ChatCompletion

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "OpenAIAnalyzer", "plugin_spec"]

DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIAnalyzer(ChatReviewTool["ChatCompletion"]):
    """Asks an OpenAI (or OpenAI-compatible) chat model to review the code."""

    name = "openai_code_analyzer"
    version = "1.0.0"
    description = (
        "Code review by an OpenAI model or any OpenAI-compatible server (llama.cpp, vLLM, Ollama)"
    )
    secrets = ("openai",)
    provider_label = "OpenAI"
    sdk_module = "openai"
    default_model = DEFAULT_MODEL
    default_base_url = DEFAULT_BASE_URL
    system_prompt = review_prompt(
        "You are a meticulous senior code reviewer. Review the code the user sends (its lines "
        "are numbered as 'N | code'; the numbers are not part of the code). Report real "
        "problems only: bugs, security issues, error handling, performance traps and unclear "
        "code.",
        info="style",
        suggestion="a suggestion with corrected code or null",
        empty_answer="An empty list is a fine answer for good code.",
    )

    def build_request(self, inputs: ToolInputs, model: str, context: ToolContext) -> dict[str, Any]:
        """Chat-completions arguments; ``response_format`` picks the structured-output mode."""
        response_format = context.settings.get("response_format") or "json_schema"
        request: dict[str, Any] = {
            "model": model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": user_message(inputs)},
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

    def open_client(
        self, sdk: ModuleType, secret: str, base_url: str
    ) -> AbstractContextManager[Any]:
        """An ``openai.OpenAI`` client without SDK retries."""
        client: AbstractContextManager[Any] = sdk.OpenAI(
            api_key=secret, base_url=base_url, max_retries=0
        )
        return client

    def send(self, client: Any, request: dict[str, Any], timeout: float) -> ChatCompletion:
        """One chat-completions call."""
        answer: ChatCompletion = client.chat.completions.create(**request, timeout=timeout)
        return answer

    def answer_text(self, reply: ChatCompletion, provider: Provider) -> str | None:
        """The first choice's content; a refusal or a cut-off answer is an error."""
        if not reply.choices:
            return None
        choice = reply.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise PluginError(f"{provider.label} declined to review this code: {refusal[:200]}")
        if choice.finish_reason == "length":
            raise PluginError(
                f"{provider.label}'s answer was cut off at its length limit; analyse a smaller piece of code"
            )
        return choice.message.content

    def usage_metrics(self, reply: ChatCompletion, model: str) -> dict[str, Any]:
        """The answering model and its prompt and completion tokens."""
        metrics: dict[str, Any] = {"model": reply.model or model}
        if reply.usage is not None:
            metrics.update(
                prompt_tokens=reply.usage.prompt_tokens,
                completion_tokens=reply.usage.completion_tokens,
            )
        return metrics


#: What the ``codetune_studio.plugins`` entry point ``openai_code_analyzer`` resolves to.
plugin_spec = PluginSpec.from_tool(OpenAIAnalyzer)
