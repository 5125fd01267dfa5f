"""Training events and their JSON-lines codec.

The engine reports everything it does as one of these small immutable values. The worker prints
them one per line on stdout (``encode_event``), the window's run host reads them back
(``decode_event``), and sinks record them. Every field is plain data so a line is readable by any
JSON tool and the codec stays lossless: ``decode_event(encode_event(e)) == e``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from codetune_studio.core.status import RunStatus

__all__ = [
    "CheckpointSaved",
    "CodeEvalCompleted",
    "EvalCompleted",
    "Event",
    "LogRecorded",
    "MetricsLogged",
    "RunFinished",
    "RunStarted",
    "decode_event",
    "encode_event",
]


@dataclass(slots=True, frozen=True)
class RunStarted:
    """The engine has loaded the model and data and is about to take its first step.

    Attributes:
        run_id: The run's id (a database id or a timestamp string).
        total_steps: The number of optimizer steps the run will take in all.
        output_dir: The folder the run writes its checkpoints and adapter into.
        resumed_from_step: The step of the checkpoint it resumed from, 0 for a fresh run.
    """

    run_id: str | int
    total_steps: int
    output_dir: Path
    resumed_from_step: int = 0


@dataclass(slots=True, frozen=True)
class MetricsLogged:
    """Training metrics after an optimizer step.

    Attributes:
        step: The optimizer step (1-based) the metrics belong to.
        metrics: Metric name to value, e.g. ``loss``, ``learning_rate``, ``grad_norm``,
            ``tokens`` (real tokens in the step), ``tokens_per_second``, ``padding_share``,
            ``memory_mb``, ``epoch``.
    """

    step: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class EvalCompleted:
    """An evaluation pass over the validation split finished.

    Attributes:
        step: The optimizer step after which it ran.
        eval_loss: The mean per-token loss on the validation split.
        perplexity: ``exp(eval_loss)`` (``inf`` when it overflows).
    """

    step: int
    eval_loss: float
    perplexity: float


@dataclass(slots=True, frozen=True)
class CodeEvalCompleted:
    """The recipe's code tasks were answered by the model being trained and run in the sandbox.

    Attributes:
        step: The optimizer step after which it ran.
        metrics: ``eval_pass@1`` and, for several samples a task, ``eval_pass@N``; each in
            [0, 1].
        tasks: How many tasks were evaluated.
        samples: Answers per task.
        seconds: How long generating and running the answers took.
    """

    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    tasks: int = 0
    samples: int = 1
    seconds: float = 0.0


@dataclass(slots=True, frozen=True)
class CheckpointSaved:
    """A complete checkpoint now exists on disk.

    Attributes:
        step: The optimizer step it captures.
        path: The checkpoint folder (``.../checkpoint-N``).
    """

    step: int
    path: Path


@dataclass(slots=True, frozen=True)
class LogRecorded:
    """A message for the run's log panel.

    Attributes:
        level: A :mod:`logging` level name such as ``INFO`` or ``WARNING``.
        message: The message text.
    """

    level: str
    message: str


@dataclass(slots=True, frozen=True)
class RunFinished:
    """The run ended; always the last event of a run.

    Attributes:
        status: ``FINISHED``, ``CANCELLED`` or ``FAILED``.
        final_step: The last optimizer step completed.
        adapter_path: The folder holding the trained adapter (or model), if one was written.
        error: What went wrong and how to fix it, for a failed run.
    """

    status: RunStatus
    final_step: int
    adapter_path: Path | None = None
    error: str | None = None


Event = (
    RunStarted
    | MetricsLogged
    | EvalCompleted
    | CodeEvalCompleted
    | CheckpointSaved
    | LogRecorded
    | RunFinished
)

#: The ``event`` tag each class is written with; part of the worker's wire format.
_TAGS: Final[dict[type[Any], str]] = {
    RunStarted: "run_started",
    MetricsLogged: "metrics_logged",
    EvalCompleted: "eval_completed",
    CodeEvalCompleted: "code_eval_completed",
    CheckpointSaved: "checkpoint_saved",
    LogRecorded: "log_recorded",
    RunFinished: "run_finished",
}
_CLASSES: Final[dict[str, type[Any]]] = {tag: cls for cls, tag in _TAGS.items()}


def encode_event(event: Event) -> str:
    """Encode an event as one line of JSON (without the trailing newline).

    Non-finite floats are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` because
    strict JSON has no spelling for them and a diverging loss must still reach the window.

    Args:
        event: The event to encode.

    Returns:
        A compact JSON object with an ``event`` tag and the event's fields.

    Raises:
        TypeError: If ``event`` is not one of the event classes.
    """
    tag = _TAGS.get(type(event))
    if tag is None:
        raise TypeError(f"not a training event: {event!r}")
    payload: dict[str, Any] = {"event": tag}
    for item in dataclasses.fields(event):
        payload[item.name] = _to_json(getattr(event, item.name))
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def decode_event(line: str) -> Event:
    """Decode a line written by :func:`encode_event`.

    Args:
        line: One JSON object, with or without surrounding whitespace.

    Returns:
        The event it describes.

    Raises:
        ValueError: If the line is not JSON, has an unknown ``event`` tag or misses a field.
    """
    try:
        payload = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON event line: {line[:200]!r} ({exc})") from exc
    if not isinstance(payload, dict):
        raise ValueError(f"an event line must be a JSON object, got {line[:200]!r}")  # noqa: TRY004 - bad input, not a caller bug
    tag = payload.pop("event", None)
    cls = _CLASSES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ValueError(f"unknown event {tag!r}; expected one of {sorted(_CLASSES)}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name in payload:
            kwargs[item.name] = _from_json(payload[item.name], hints[item.name])
    try:
        event: Event = cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{tag} event is missing a field: {exc}") from exc
    return event


_NON_FINITE: Final[dict[str, float]] = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_HINTS_CACHE: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """Resolved field annotations of an event class, cached (the annotations are strings)."""
    if cls not in _HINTS_CACHE:
        _HINTS_CACHE[cls] = typing.get_type_hints(cls)
    return _HINTS_CACHE[cls]


def _to_json(value: Any) -> Any:
    """Turn a field value into something :func:`json.dumps` writes losslessly."""
    if isinstance(value, RunStatus):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    return value


def _from_json(value: Any, hint: Any) -> Any:
    """Turn a decoded JSON value back into the type its field is annotated with."""
    if value is None:
        return None
    args = typing.get_args(hint)
    if hint is Path or Path in args:
        return Path(value)
    if hint is RunStatus:
        return RunStatus(value)
    if typing.get_origin(hint) is dict:
        return {str(key): _float(item) for key, item in value.items()}
    if hint is float:
        return _float(value)
    return value


def _float(value: Any) -> float:
    """A float from JSON, accepting the strings :func:`_to_json` writes for non-finite values."""
    if isinstance(value, str):
        return _NON_FINITE[value]
    return float(value)
