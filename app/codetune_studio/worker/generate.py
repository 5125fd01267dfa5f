"""The generation child process: ``python -m codetune_studio.worker.generate``.

It loads a base model (and an adapter) once, answers the requests in a JSON file
(:class:`~codetune_studio.core.generation.GenerationRequest`) and speaks the same line protocol
as the training worker:

* **stdout**: one JSON event per line (:mod:`codetune_studio.core.generation`), nothing else.
* **stderr**: log records as JSON lines.
* **stdin**: ``{"cmd": "stop"}`` (or ``stop``) ends the answer in progress as ``cancelled``
  and skips the rest.
* **exit status**: 0 done, 130 stopped, 1 failed, 2 bad arguments or model.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from codetune_studio.core.cancel import CancelToken
from codetune_studio.core.errors import CodetuneError, ConfigError
from codetune_studio.core.generation import (
    GenerationEvent,
    GenerationFailed,
    GenerationFinished,
    GenerationRequest,
    GenerationStarted,
    ModelLoaded,
    TokensGenerated,
    Variant,
    encode_generation_event,
)
from codetune_studio.engine.threads import prefer_passive_waiting
from codetune_studio.worker import EXIT_CANCELLED, EXIT_FAILED, EXIT_FINISHED, parse_command

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from codetune_studio.engine.generation import Generator

__all__ = ["main"]

logger = logging.getLogger("codetune_studio.worker.generate")

_CHUNK_S = 0.03  # the longest a streamed piece of text waits before it is sent


class _Events:
    """Writes events to the claimed stdout, one flushed line each."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: GenerationEvent) -> None:
        with self._lock:
            self._stream.write(encode_generation_event(event) + "\n")
            self._stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Answer the requests in ``--requests`` and return the exit status."""
    prefer_passive_waiting()  # before the first torch import; see engine.threads
    from codetune_studio.worker.__main__ import (
        _claim_stdout,
        _configure_logging,
        _quiet_progress_bars,
    )

    args = _parse_args(argv)
    events = _Events(_claim_stdout())
    _configure_logging(args.log_level)
    cancel = CancelToken()
    threading.Thread(
        target=_read_commands, args=(sys.stdin, cancel), name="generate-stdin", daemon=True
    ).start()
    try:
        requests = _load_requests(Path(args.requests))
        _quiet_progress_bars()
        from codetune_studio.engine.generation import load_generator

        start = time.perf_counter()
        adapter = Path(args.adapter) if args.adapter else None
        generator = load_generator(args.base_model, adapter, device=args.device)
    except CodetuneError as exc:
        events.emit(GenerationFailed(str(exc)))
        return exc.exit_code
    events.emit(
        ModelLoaded(
            base_model=str(args.base_model),
            adapter=args.adapter,
            device=generator.device,
            seconds=round(time.perf_counter() - start, 3),
            threads=generator.threads,
        )
    )
    try:
        for request in requests:
            if cancel.cancelled:
                break
            _answer(generator, request, events, cancel)
    except MemoryError:
        events.emit(GenerationFailed("Out of memory while generating; lower max new tokens."))
        return EXIT_FAILED
    return EXIT_CANCELLED if cancel.cancelled else EXIT_FINISHED


def _answer(
    generator: Generator, request: GenerationRequest, events: _Events, cancel: CancelToken
) -> None:
    from codetune_studio.engine.generation import prompt_text as render_request

    prompt_text = render_request(generator.tokenizer, request)
    prompt_ids = generator.encode(prompt_text, chat=bool(request.messages))
    for sample in range(request.samples):
        for variant in request.variants:
            if cancel.cancelled:
                return
            events.emit(
                GenerationStarted(request.id, variant, sample, prompt_text, len(prompt_ids))
            )

            chunks = _Coalescer(functools.partial(_send_text, events, request.id, variant, sample))
            params = request.params
            if params.seed is not None and request.samples > 1:
                # Each sample draws differently, yet the whole set is reproducible.
                params = params.model_copy(update={"seed": params.seed + sample})
            result = generator.generate(
                prompt_ids,
                params,
                variant=variant,
                cancel=cancel,
                on_text=chunks.add if request.stream else None,
            )
            chunks.flush()
            events.emit(
                GenerationFinished(
                    request.id,
                    variant,
                    sample,
                    result.text,
                    result.tokens,
                    round(result.seconds, 4),
                    result.stop_reason,
                )
            )


def _send_text(events: _Events, request: str, variant: Variant, sample: int, text: str) -> None:
    events.emit(TokensGenerated(request, variant, sample, text))


class _Coalescer:
    """Gathers text pieces and passes them on at most every :data:`_CHUNK_S` seconds.

    One event per token costs a JSON line, a write and a flush each, a noticeable share of a
    small model's time per token; a few dozen updates a second look just as live.
    """

    def __init__(self, send: Callable[[str], None]) -> None:
        self._send = send
        self._pending: list[str] = []
        self._last = time.perf_counter()

    def add(self, text: str) -> None:
        self._pending.append(text)
        now = time.perf_counter()
        if now - self._last >= _CHUNK_S:
            self.flush()
            self._last = now

    def flush(self) -> None:
        if self._pending:
            self._send("".join(self._pending))
            self._pending.clear()


def _load_requests(path: Path) -> list[GenerationRequest]:
    from pydantic import ValidationError

    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        items = payload if isinstance(payload, list) else [payload]
        return [GenerationRequest.model_validate(item) for item in items]
    except (OSError, ValueError, ValidationError) as exc:
        raise ConfigError(f"{path}: not a valid list of generation requests: {exc}") from None


def _read_commands(stream: IO[str], cancel: CancelToken) -> None:
    for line in stream:
        if parse_command(line) == "stop":
            logger.info("stop requested")
            cancel.cancel()
            return


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m codetune_studio.worker.generate",
        description="Answer generation requests; events on stdout, JSON logs on stderr, "
        '{"cmd": "stop"} on stdin.',
    )
    parser.add_argument("--base-model", required=True, help="base model folder")
    parser.add_argument("--adapter", help="PEFT adapter folder trained on the base model")
    parser.add_argument("--requests", required=True, help="JSON file: a list of requests")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
