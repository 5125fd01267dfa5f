from __future__ import annotations

import io
import json
import math
import threading
from pathlib import Path

import pytest

from codetune_studio.core.cancel import CancelToken
from codetune_studio.core.events import (
    CheckpointSaved,
    CodeEvalCompleted,
    EvalCompleted,
    Event,
    LogRecorded,
    MetricsLogged,
    RunFinished,
    RunStarted,
    decode_event,
    encode_event,
)
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.sinks import CallbackSink, CompositeSink, JsonLinesSink, ListSink

EVENTS: list[Event] = [
    RunStarted(run_id="20261126-1", total_steps=10, output_dir=Path("runs/r"), resumed_from_step=0),
    RunStarted(run_id=42, total_steps=10, output_dir=Path("out"), resumed_from_step=5),
    MetricsLogged(step=3, metrics={"loss": 1.25, "learning_rate": 2e-4, "grad_norm": 0.5}),
    MetricsLogged(step=4, metrics={"loss": math.inf}),
    EvalCompleted(step=5, eval_loss=2.0, perplexity=math.exp(2.0)),
    CodeEvalCompleted(
        step=5, metrics={"eval_pass@1": 0.5, "eval_pass@4": 0.75}, tasks=4, samples=4, seconds=2.5
    ),
    CheckpointSaved(step=5, path=Path("runs/r/checkpoints/checkpoint-5")),
    LogRecorded(level="WARNING", message='quote " and\nnewline ü'),
    RunFinished(status=RunStatus.FINISHED, final_step=10, adapter_path=Path("runs/r/adapter")),
    RunFinished(status=RunStatus.FAILED, final_step=3, adapter_path=None, error="out of memory"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_event_round_trips_through_one_json_line(event: Event) -> None:
    line = encode_event(event)
    assert "\n" not in line
    assert json.loads(line)["event"]
    assert decode_event(line) == event


def test_nan_metric_round_trips_as_nan() -> None:
    decoded = decode_event(encode_event(MetricsLogged(step=1, metrics={"loss": math.nan})))
    assert isinstance(decoded, MetricsLogged)
    assert math.isnan(decoded.metrics["loss"])


def test_integer_metrics_decode_as_floats() -> None:
    decoded = decode_event('{"event":"metrics_logged","step":1,"metrics":{"tokens":3}}')
    assert isinstance(decoded, MetricsLogged)
    assert decoded.metrics == {"tokens": 3.0}
    assert isinstance(decoded.metrics["tokens"], float)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("not json", "not a JSON event line"),
        ("[1, 2]", "must be a JSON object"),
        ('{"event": "nope"}', "unknown event"),
        ('{"event": "checkpoint_saved", "step": 1}', "missing a field"),
    ],
)
def test_decode_rejects_bad_lines_with_a_clear_message(line: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        decode_event(line)


def test_json_lines_sink_writes_one_flushed_line_per_event() -> None:
    stream = io.StringIO()
    sink = JsonLinesSink(stream)
    for event in EVENTS[:3]:
        sink.emit(event)
    sink.close()
    lines = stream.getvalue().splitlines()
    assert [decode_event(line) for line in lines] == EVENTS[:3]


@pytest.mark.expect_logs(r"event sink CallbackSink failed on RunStarted")
def test_composite_sink_keeps_going_when_one_sink_fails(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("disk full")

    good = ListSink()
    composite = CompositeSink([CallbackSink(broken), good])
    composite.emit(EVENTS[0])
    composite.close()
    assert good.events == [EVENTS[0]]
    assert good.closed
    assert "event sink CallbackSink failed" in caplog.text


def test_cancel_token_cancels_and_releases_a_pause() -> None:
    token = CancelToken()
    assert not token.cancelled
    assert token.wait_if_paused(timeout=0)
    token.pause()
    assert token.paused
    assert not token.wait_if_paused(timeout=0.01)
    released = threading.Event()

    def loop() -> None:
        token.wait_if_paused()
        released.set()

    thread = threading.Thread(target=loop)
    thread.start()
    token.cancel()
    thread.join(timeout=5)
    assert released.is_set()
    assert (token.cancelled, token.paused) == (True, False)


def test_cancel_token_resume_ends_a_pause() -> None:
    token = CancelToken()
    token.pause()
    token.resume()
    assert not token.paused
    assert token.wait_if_paused(timeout=0)
    assert not token.cancelled


def test_pause_after_cancel_does_not_block() -> None:
    token = CancelToken()
    token.cancel()
    token.pause()
    assert token.wait_if_paused(timeout=0)
