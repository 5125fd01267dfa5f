"""What a generation request asks for and what the generation child reports back.

The generation child (``python -m codetune_studio.worker.generate``) reads a list of
:class:`GenerationRequest` from a JSON file and prints one JSON event per line on stdout:
:class:`ModelLoaded` once, then for each request and variant :class:`GenerationStarted`, any
number of :class:`TokensGenerated` chunks and one :class:`GenerationFinished`; a failure that
ends the child is reported as :class:`GenerationFailed`. This module holds the shapes and the
JSON-lines codec, with no torch, so the window and the CLI can read the stream cheaply.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatMessage",
    "GenerationEvent",
    "GenerationFailed",
    "GenerationFinished",
    "GenerationParams",
    "GenerationRequest",
    "GenerationStarted",
    "ModelLoaded",
    "StopReason",
    "TokensGenerated",
    "Variant",
    "decode_generation_event",
    "encode_generation_event",
]

#: ``tuned`` is the model with its adapter; ``base`` the same weights with the adapter off.
Variant = Literal["tuned", "base"]

#: Why a generation ended: the model's end-of-sequence token, the length limit, a stop string,
#: or a stop request.
StopReason = Literal["eos", "length", "stop_string", "cancelled"]


class ChatMessage(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class GenerationParams(BaseModel):
    """Decoding settings, in Hugging Face's terms.

    A temperature of 0 means greedy decoding (top-p and top-k are then unused).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: int = Field(256, ge=1, le=32768)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 switches top-k filtering off")
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    seed: int | None = Field(None, description="fixes sampling; None draws a fresh one")
    stop: tuple[str, ...] = Field((), description="strings that end the answer (not included)")

    @property
    def greedy(self) -> bool:
        """Whether decoding picks the most likely token every time."""
        return self.temperature == 0.0


class GenerationRequest(BaseModel):
    """One prompt to answer, with one or both variants of the model.

    Attributes:
        id: The caller's name for it; events carry it back.
        messages: The conversation, rendered through the model's chat template.
        prompt: Plain text fed as it is (no chat template); used when ``messages`` is empty.
        answer_prefix: Text put after the prompt as the start of the answer, which the model
            continues (an eval task's signature); the finished text does not repeat it.
        params: Decoding settings.
        variants: Which variants answer, in this order.
        samples: How many answers each variant gives (eval draws several).
        stream: Whether to report text chunks while generating (the playground) or only the
            finished answers (eval).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    messages: tuple[ChatMessage, ...] = ()
    prompt: str = ""
    answer_prefix: str = ""
    params: GenerationParams = GenerationParams()
    variants: tuple[Variant, ...] = ("tuned",)
    samples: int = Field(1, ge=1, le=1000)
    stream: bool = True


@dataclass(frozen=True, slots=True)
class ModelLoaded:
    """The child loaded the model.

    Attributes:
        threads: torch's CPU threads in the child (``None`` from a child that does not say), so
            a user and the generation benchmark can see the child computes with the settings
            they expect (``OMP_NUM_THREADS``, ``CODETUNE_TORCH_THREADS``).
    """

    base_model: str
    adapter: str | None
    device: str
    seconds: float
    threads: int | None = None
    kind: str = field(default="loaded", init=False)


@dataclass(frozen=True, slots=True)
class GenerationStarted:
    """One answer began (after the prompt was rendered and encoded)."""

    request: str
    variant: Variant
    sample: int
    prompt_text: str
    prompt_tokens: int
    kind: str = field(default="started", init=False)


@dataclass(frozen=True, slots=True)
class TokensGenerated:
    """New text of an answer in progress."""

    request: str
    variant: Variant
    sample: int
    text: str
    kind: str = field(default="tokens", init=False)


@dataclass(frozen=True, slots=True)
class GenerationFinished:
    """One answer is complete.

    Attributes:
        text: The whole answer, cut before a stop string.
        tokens: How many tokens were generated.
        seconds: Time from the first forward pass to the last token.
        stop_reason: Why it ended.
    """

    request: str
    variant: Variant
    sample: int
    text: str
    tokens: int
    seconds: float
    stop_reason: StopReason
    kind: str = field(default="finished", init=False)

    @property
    def tokens_per_s(self) -> float:
        """Generation speed of this answer."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class GenerationFailed:
    """The child could not go on (bad model folder, out of memory...)."""

    message: str
    kind: str = field(default="failed", init=False)


GenerationEvent = (
    ModelLoaded | GenerationStarted | TokensGenerated | GenerationFinished | GenerationFailed
)

_KINDS: dict[str, type[Any]] = {
    "loaded": ModelLoaded,
    "started": GenerationStarted,
    "tokens": TokensGenerated,
    "finished": GenerationFinished,
    "failed": GenerationFailed,
}


def encode_generation_event(event: GenerationEvent) -> str:
    """One event as a JSON line (without the newline)."""
    return json.dumps(asdict(event), ensure_ascii=False)


def decode_generation_event(line: str) -> GenerationEvent:
    """Read one JSON line written by :func:`encode_generation_event`.

    Raises:
        ValueError: The line is not such an event.
    """
    payload = json.loads(line)
    if not isinstance(payload, dict):
        raise ValueError(f"not an event: {line[:80]!r}")  # noqa: TRY004 - a parse error
    kind = payload.pop("kind", None)
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    try:
        event: GenerationEvent = cls(**payload)
    except TypeError as exc:
        raise ValueError(f"malformed {kind} event: {exc}") from None
    return event
