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

from typing import TYPE_CHECKING, Any

from codetune_studio.plugins.api import PluginError, PluginSpec, ToolContext, ToolInputs
from codetune_studio.plugins.builtin._llm import (
    FINDINGS_SCHEMA,
    ChatReviewTool,
    review_prompt,
    setting_int,
    user_message,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from types import ModuleType

    from anthropic.types import Message

    from codetune_studio.plugins.builtin._llm import Provider

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "AnthropicSuggester", "plugin_spec"]

DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicSuggester(ChatReviewTool["Message"]):
    """Asks a Claude model for concrete improvements, each with replacement code."""

    name = "anthropic_code_suggester"
    version = "1.0.0"
    description = "Improvement suggestions with replacement code from an Anthropic Claude model"
    secrets = ("anthropic",)
    provider_label = "Anthropic"
    sdk_module = "anthropic"
    default_model = DEFAULT_MODEL
    default_base_url = DEFAULT_BASE_URL
    system_prompt = review_prompt(
        "You are a senior engineer suggesting concrete improvements to code. The user's code "
        "has numbered lines ('N | code'; the numbers are not part of the code). Suggest changes "
        "that make it more correct, readable, idiomatic or efficient.",
        info="improvements",
        suggestion="a suggestion holding the improved code",
        empty_answer="An empty list is a fine answer.",
    )

    def build_request(self, inputs: ToolInputs, model: str, context: ToolContext) -> dict[str, Any]:
        """Messages-API arguments; ``structured_output`` asks for schema-shaped output."""
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": setting_int(context, "max_tokens", 4096),
            "system": self.system_prompt,
            "messages": [{"role": "user", "content": user_message(inputs)}],
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

    def open_client(
        self, sdk: ModuleType, secret: str, base_url: str
    ) -> AbstractContextManager[Any]:
        """An ``anthropic.Anthropic`` client without SDK retries."""
        client: AbstractContextManager[Any] = sdk.Anthropic(
            api_key=secret, base_url=base_url, max_retries=0
        )
        return client

    def send(self, client: Any, request: dict[str, Any], timeout: float) -> Message:
        """One Messages-API call."""
        answer: Message = client.messages.create(**request, timeout=timeout)
        return answer

    def answer_text(self, reply: Message, provider: Provider) -> str | None:
        """The text blocks joined; an answer cut off at ``max_tokens`` is an error."""
        if reply.stop_reason == "max_tokens":
            raise PluginError(
                f"{provider.label}'s answer was cut off at max_tokens; raise max_tokens in "
                "Settings or analyse a smaller piece of code"
            )
        return "".join(block.text for block in reply.content if block.type == "text")

    def usage_metrics(self, reply: Message, model: str) -> dict[str, Any]:
        """The answering model and its input and output tokens."""
        return {
            "model": reply.model or model,
            "input_tokens": reply.usage.input_tokens,
            "output_tokens": reply.usage.output_tokens,
        }


#: What the ``codetune_studio.plugins`` entry point ``anthropic_code_suggester`` resolves to.
plugin_spec = PluginSpec.from_tool(AnthropicSuggester)
