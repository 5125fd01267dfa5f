"""Entry point of the training child process; see :mod:`codetune_studio.worker`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from codetune_studio.core.cancel import CancelToken
from codetune_studio.core.errors import CodetuneError, ConfigError
from codetune_studio.core.events import LogRecorded, RunFinished
from codetune_studio.core.redact import known_secret_values, scrub
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.sinks import EventSink, JsonLinesSink, NullSink
from codetune_studio.engine.threads import prefer_passive_waiting
from codetune_studio.worker import EXIT_FAILED, exit_code_for, parse_command

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

    from codetune_studio.core.models import Run
    from codetune_studio.services.training import TrainingRunService

__all__ = ["main"]

logger = logging.getLogger("codetune_studio.worker")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record, for the window's log panel."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line (without the newline)."""
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["traceback"] = self.formatException(record.exc_info)
        # The worker holds the database URL: an error quoting it must not land in worker.log.
        known = known_secret_values()
        for key in ("message", "traceback"):
            if key in payload:
                payload[key] = scrub(payload[key], known)
        return json.dumps(payload, ensure_ascii=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one training run as a child process and return its exit status."""
    prefer_passive_waiting()  # before the first torch import; see engine.threads
    args = _parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    events = _claim_stdout()
    _configure_logging(args.log_level)
    cancel = CancelToken()
    _install_signal_handlers(cancel)
    if rank == 0:
        threading.Thread(
            target=_read_commands, args=(sys.stdin, cancel), name="worker-stdin", daemon=True
        ).start()
    # Rank 0 alone speaks; the others' stdout stays silent (torchrun merges the streams).
    sink: EventSink = JsonLinesSink(events) if rank == 0 else NullSink()
    try:
        return _run(args, sink, cancel)
    finally:
        sink.close()


def _run(args: argparse.Namespace, sink: EventSink, cancel: CancelToken) -> int:
    from codetune_studio.core.recipe import load_recipe

    data_dir = Path(args.data_dir) if args.data_dir else _default_data_dir()
    # Rank 0 alone records, as it alone reports events.
    record = args.record and int(os.environ.get("RANK", "0")) == 0
    with contextlib.ExitStack() as stack:
        try:
            recipe = load_recipe(Path(args.recipe))
            resume = _resolve_resume(args.resume)
            run = _recorded_run(args, data_dir, stack) if record else None
        except CodetuneError as exc:
            # The run never started, but the host still expects a final event.
            sink.emit(LogRecorded(level="ERROR", message=str(exc)))
            sink.emit(RunFinished(status=RunStatus.FAILED, final_step=0, error=str(exc)))
            return exc.exit_code
        _quiet_progress_bars()  # after the recipe check: this is the first torch import
        if run is not None:
            runs, row = run
            # The same service call as `codetune-studio train`: recorder, run, model version.
            recorded = runs.train(
                row,
                recipe,
                sink,
                cancel,
                output_dir=Path(args.output_dir),
                data_dir=data_dir,
                resume_from=resume,
                offline=not args.online,
            )
            if recorded.storage_problem:
                logger.error("%s", recorded.storage_problem)
                return 1  # trained, but the record is incomplete: not a clean success
            return exit_code_for(recorded.result.status)
        from codetune_studio.engine.run import run_training

        judge = None
        if recipe.evaluation is not None:
            from codetune_studio.services.training import code_judge_for

            judge = code_judge_for(recipe)
        result = run_training(
            recipe,
            sink,
            cancel,
            run_id=_run_id(args.run_id),
            output_dir=Path(args.output_dir),
            data_dir=data_dir,
            resume_from=resume,
            offline=not args.online,
            code_judge=judge,
        )
        return exit_code_for(result.status)


def _recorded_run(
    args: argparse.Namespace, data_dir: Path, stack: contextlib.ExitStack
) -> tuple[TrainingRunService, Run]:
    """Open the database for a ``--record`` run (closed with ``stack``) and load its row."""
    from codetune_studio.services.training import open_training_runs

    if not args.run_id.isdigit():
        raise ConfigError(f"--record needs a database run id, got {args.run_id!r}")
    runs = stack.enter_context(open_training_runs(args.database, data_dir=data_dir))
    # Before the slow imports and the model: a kill from here on leaves our pid to find dead.
    return runs, runs.attach_worker(int(args.run_id))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m codetune_studio.worker",
        description="Run one training run; events on stdout, JSON logs on stderr, "
        'commands ({"cmd": "stop"|"pause"|"resume"}) on stdin.',
    )
    parser.add_argument("--recipe", required=True, help="recipe file (YAML or JSON)")
    parser.add_argument("--run-id", required=True, help="the run's id")
    parser.add_argument("--output-dir", required=True, help="folder for checkpoints and adapter")
    parser.add_argument("--resume", help="a checkpoint-N folder, or a run folder (its newest)")
    parser.add_argument("--data-dir", help="the studio's data folder (starter model cache)")
    parser.add_argument("--online", action="store_true", help="allow model downloads")
    parser.add_argument(
        "--record",
        action="store_true",
        help="record status, heartbeat, metrics and the model version in the database "
        "(--run-id must then be the run's database id)",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("CODETUNE_DATABASE_URL") or None,
        metavar="URL",
        help="database to record in (default: CODETUNE_DATABASE_URL, else the SQLite store "
        "in --data-dir)",
    )
    parser.add_argument("--log-level", default="INFO", help="stderr log level (default INFO)")
    return parser.parse_args(argv)


def _resolve_resume(value: str | None) -> Path | None:
    """A checkpoint folder as given, or the newest checkpoint of a run folder."""
    if not value:
        return None
    from codetune_studio.engine.checkpoint import TRAINER_STATE, latest_checkpoint

    path = Path(value)
    if (path / TRAINER_STATE).is_file():
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise ConfigError(f"--resume {value}: no complete checkpoint-N folder there")
    return found


def _run_id(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def _default_data_dir() -> Path:
    from codetune_studio.core.paths import resolve_paths

    return resolve_paths().data_dir


def _claim_stdout() -> IO[str]:
    """Keep file descriptor 1 for events; send everything else that prints there to stderr."""
    sys.stdout.flush()
    events = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Accelerate narrates every file of every checkpoint at INFO; our CheckpointSaved suffices.
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    logging.captureWarnings(True)


def _quiet_progress_bars() -> None:
    # Download and weight-loading bars would interleave with the JSON log lines.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _install_signal_handlers(cancel: CancelToken) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        if cancel.cancelled:
            # Second signal: the user means it. Exit without the checkpoint.
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(EXIT_FAILED if signum == signal.SIGTERM else 130)
        logger.info("%s received: stopping after this step", signal.Signals(signum).name)
        cancel.cancel()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def _read_commands(stream: IO[str], cancel: CancelToken) -> None:
    for line in stream:
        command = parse_command(line)
        if command is None:
            if line.strip():
                logger.warning("ignoring unknown command %r", line.strip()[:100])
            continue
        logger.info("command: %s", command)
        if command == "stop":
            cancel.cancel()
        elif command == "pause":
            cancel.pause()
        else:
            cancel.resume()


if __name__ == "__main__":
    sys.exit(main())
