"""Generating text with a base model and, optionally, its adapter: one load, both variants.

:func:`load_generator` loads a base model once and wraps it with a PEFT adapter when one is
given. The ``base`` variant then runs inside PEFT's ``disable_adapter()`` context, so the same
weights answer for both sides of a comparison, and the base side can never silently use the
tuned weights (a test compares it with the base model loaded alone). :meth:`Generator.generate`
streams text through a ``transformers`` streamer and stops on a cancel token, a stop string,
the end-of-sequence token or the length limit, saying which.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from codetune_studio.core.errors import ConfigError
from codetune_studio.engine.data import DEFAULT_CHAT_TEMPLATE

if TYPE_CHECKING:
    from codetune_studio.core.cancel import CancelToken
    from codetune_studio.core.generation import (
        ChatMessage,
        GenerationParams,
        GenerationRequest,
        StopReason,
        Variant,
    )

__all__ = ["GeneratedText", "Generator", "load_generator", "prompt_text", "render_prompt"]

logger = logging.getLogger(__name__)

#: ``on_text(new_text)``: called with each piece of the answer as it is decoded.
TextCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class GeneratedText:
    """One finished answer."""

    text: str
    tokens: int
    seconds: float
    stop_reason: StopReason


def render_prompt(tokenizer: Any, messages: tuple[ChatMessage, ...]) -> str:
    """Render a conversation through the tokenizer's chat template (ChatML when it has none).

    The same template the trainer uses (``engine.data``), so a tuned model sees its prompts
    exactly as it saw them in training.
    """
    template: object = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), None)
    if not (isinstance(template, str) and template):
        template = DEFAULT_CHAT_TEMPLATE
    conversation = [{"role": m.role, "content": m.content} for m in messages]
    text = tokenizer.apply_chat_template(
        conversation, chat_template=template, tokenize=False, add_generation_prompt=True
    )
    return str(text)


def prompt_text(tokenizer: Any, request: GenerationRequest) -> str:
    """The text the model continues for ``request``.

    The conversation rendered through the chat template (or the plain prompt), then the start of
    the answer when the request gives one (an eval task's signature).
    """
    if request.messages:
        return render_prompt(tokenizer, request.messages) + request.answer_prefix
    return request.prompt + request.answer_prefix


class _Stream(BaseStreamer):
    """Decodes generated tokens as they arrive and hands out the new text.

    Decoding is incremental, so streaming costs the same per token however long the answer
    grows: with a fast tokenizer, one call into its Rust ``DecodeStream`` per token; otherwise
    ``decode`` of a short window of recent tokens, twice, as text-generation-inference does
    (measured on the starter's tokenizer: 3.5 against 8 microseconds a token for the whole of
    :meth:`put`, with the worker's coalescing). Text is held back while it ends in an incomplete
    UTF-8 sequence, and (when stop strings are set) by the longest stop string less one
    character, so a stop string is never half shown.
    """

    def __init__(
        self,
        tokenizer: Any,
        prompt_tokens: int,
        stops: tuple[str, ...],
        on_text: TextCallback | None,
    ) -> None:
        self._tokenizer = tokenizer
        self._skip = prompt_tokens
        self._stops = stops
        self._hold = max((len(s) for s in stops), default=1) - 1
        self._on_text = on_text
        self._track = on_text is not None or bool(stops)
        self.ids: list[int] = []
        #: The answer decoded so far, piece by piece (``text()`` decodes it whole at the end).
        self.partial = ""
        self._prefix = 0  # decoding window: ids[_prefix:] give the context for new text
        self._read = 0
        self._shown = 0
        self._rust = _rust_decoder(tokenizer) if self._track else None

    def put(self, value: torch.Tensor) -> None:
        flat = value.reshape(-1).tolist()
        if self._skip:  # the first call carries the prompt
            taken = min(self._skip, len(flat))
            self._skip -= taken
            flat = flat[taken:]
        if not flat:
            return
        self.ids.extend(int(token) for token in flat)
        if self._rust is not None:
            backend, stream = self._rust
            for token in flat:
                piece = stream.step(backend, int(token))
                if piece:  # None while a character's bytes are incomplete
                    self.partial += piece
        elif self._track:
            self._decode_new()
        if self._on_text is not None:
            self._emit(final=False)

    def end(self) -> None:
        if self._on_text is not None:
            self.partial = self.text()
            self._emit(final=True)

    def text(self) -> str:
        return str(self._tokenizer.decode(self.ids, skip_special_tokens=True))

    def _decode_new(self) -> None:
        decode = self._tokenizer.decode
        before = decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = decode(self.ids[self._prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.partial += after[len(before) :]
            self._prefix, self._read = self._read, len(self.ids)

    def _emit(self, *, final: bool) -> None:
        assert self._on_text is not None  # noqa: S101 - checked by the callers
        text = self.partial
        limit = len(text) if final else len(text) - self._hold
        found = [text.find(stop) for stop in self._stops if stop in text]
        if found:  # never show a stop string, nor what follows it
            limit = min(limit, *found)
        if limit > self._shown:
            self._on_text(text[self._shown : limit])
            self._shown = limit


def _rust_decoder(tokenizer: Any) -> tuple[Any, Any] | None:
    """A fast tokenizer's backend with a fresh ``DecodeStream``; ``None`` when unavailable.

    ``DecodeStream`` skips the Python ``decode``'s clean-up of spaces before punctuation, so a
    tokenizer that asks for that clean-up keeps the windowed ``decode``: the streamed pieces
    must add up to the final answer exactly.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return None
    try:
        from tokenizers.decoders import DecodeStream
    except ImportError:  # tokenizers before 0.21
        return None
    return backend, DecodeStream(skip_special_tokens=True)


class _StopWhen(StoppingCriteria):
    """Stops on a cancel request or once a stop string appears in the answer."""

    def __init__(self, stream: _Stream, stops: tuple[str, ...], cancel: CancelToken | None):
        self._stream = stream
        self._stops = stops
        self._cancel = cancel
        self.reason: StopReason | None = None

    def __call__(
        self,
        input_ids: torch.LongTensor,
        scores: torch.FloatTensor,  # noqa: ARG002 - transformers' signature
        **kwargs: Any,  # noqa: ARG002
    ) -> Any:
        done = False
        if self._cancel is not None and self._cancel.cancelled:
            self.reason, done = "cancelled", True
        elif self._stops:
            text = self._stream.partial
            if any(stop in text for stop in self._stops):
                self.reason, done = "stop_string", True
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class Generator:
    """A loaded model (with or without an adapter) that answers prompts.

    Args:
        model: A causal LM, or a ``PeftModel`` around one.
        tokenizer: Its tokenizer.
        has_adapter: Whether ``model`` carries an adapter (the ``base`` variant switches it off).
        inference_mode: Generate under ``torch.inference_mode`` (fastest). A model that goes on
            training afterwards wants ``False`` (plain ``no_grad``): a buffer a model caches
            lazily while generating (some rotary embeddings do) would otherwise be an inference
            tensor, which autograd refuses in the next training step.
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, has_adapter: bool, inference_mode: bool = True
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.has_adapter = has_adapter
        self.inference_mode = inference_mode
        self.device = str(next(model.parameters()).device)
        #: torch's CPU threads when the generator was made (what generation computes with).
        self.threads = torch.get_num_threads()

    def encode(self, text: str, *, chat: bool) -> list[int]:
        """Token ids of a prompt; a rendered chat template brings its own special tokens."""
        ids = self.tokenizer(text, add_special_tokens=not chat)["input_ids"]
        return [int(i) for i in ids]

    def generate(
        self,
        prompt_ids: list[int],
        params: GenerationParams,
        *,
        variant: Variant = "tuned",
        cancel: CancelToken | None = None,
        on_text: TextCallback | None = None,
    ) -> GeneratedText:
        """Answer one prompt.

        Args:
            prompt_ids: The encoded prompt.
            params: Decoding settings.
            variant: ``base`` runs with the adapter switched off.
            cancel: Stops generation between tokens when cancelled.
            on_text: Receives the answer piece by piece.

        Returns:
            The answer, cut before any stop string, and why it ended.
        """
        stream = _Stream(self.tokenizer, len(prompt_ids), params.stop, on_text)
        stopper = _StopWhen(stream, params.stop, cancel)
        kwargs = self._decoding_kwargs(params)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        inputs = torch.tensor([prompt_ids], device=self.device)
        start = time.perf_counter()
        grad_off = torch.inference_mode() if self.inference_mode else torch.no_grad()
        with self._variant(variant), grad_off:
            self.model.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                streamer=stream,
                stopping_criteria=[stopper],
                **kwargs,
            )
        seconds = time.perf_counter() - start
        text = stream.text()
        reason = stopper.reason or self._natural_reason(stream.ids, params)
        if reason == "stop_string":
            cut = min(text.find(s) for s in params.stop if s in text)
            text = text[:cut]
        return GeneratedText(text, len(stream.ids), seconds, reason)

    def _decoding_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "repetition_penalty": params.repetition_penalty,
            "pad_token_id": self._pad_id(),
        }
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(
                do_sample=True,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k or None,
            )
        return kwargs

    def _pad_id(self) -> int | None:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else self._eos_ids()[0] if self._eos_ids() else None

    def _eos_ids(self) -> list[int]:
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        if configured is None:
            configured = self.tokenizer.eos_token_id
        if configured is None:
            return []
        return [int(i) for i in configured] if isinstance(configured, list) else [int(configured)]

    def _natural_reason(self, ids: list[int], params: GenerationParams) -> StopReason:
        if ids and ids[-1] in self._eos_ids():
            return "eos"
        return "length" if len(ids) >= params.max_new_tokens else "eos"

    @contextlib.contextmanager
    def _variant(self, variant: Variant) -> Iterator[None]:
        if variant == "base" and self.has_adapter:
            with self.model.disable_adapter():
                yield
        else:
            yield


def load_generator(
    base_model: str | Path, adapter: Path | None = None, *, device: str | None = None
) -> Generator:
    """Load a model for generation, with an adapter on top when one is given.

    Args:
        base_model: A local model folder (or a cached hub id).
        adapter: A PEFT adapter folder trained on ``base_model``.
        device: ``cuda``, ``mps`` or ``cpu``; the best available by default.

    Raises:
        ConfigError: The model or adapter cannot be loaded.
    """
    from peft import PeftModel

    from codetune_studio.engine.peft_setup import device_type
    from codetune_studio.engine.threads import configure_torch_threads

    configure_torch_threads()  # CODETUNE_TORCH_THREADS caps generation as it caps training
    target = device or device_type()
    model: Any
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base_model))
        model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype="auto")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Could not load the model {base_model}: {exc}") from None
    if adapter is not None:
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"{adapter} is not an adapter folder (no adapter_config.json)")
        try:
            model = PeftModel.from_pretrained(model, str(adapter))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"Could not load the adapter {adapter}: {exc}") from None
    model.to(target)
    model.eval()
    return Generator(model, tokenizer, has_adapter=adapter is not None)
