"""``codetune-studio train RECIPE``: a headless training run with a progress bar.

The run goes through the same engine as the window's worker and is recorded in the database the
same way (status, heartbeat, metrics, model version), so every studio sharing the database sees it.
Ctrl+C stops at the next optimizer step, saves a checkpoint and exits 130; a second Ctrl+C exits
at once.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune_studio.cli.context import CliContext, echo, echo_error

if TYPE_CHECKING:
    import argparse
    from types import FrameType

    from codetune_studio.cli.types import Subparsers
    from codetune_studio.core.cancel import CancelToken
    from codetune_studio.core.events import Event
    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.services.training import PlannedRun, TrainingRunService

__all__ = ["register"]

logger = logging.getLogger(__name__)

EXIT_CANCELLED = 130


def register(subparsers: Subparsers) -> None:
    """Add the ``train`` command."""
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a model from a recipe, headless",
        description="Train from a recipe file. Exit status: 0 finished, 1 failed, "
        "2 bad recipe or arguments, 130 cancelled (after checkpointing).",
    )
    parser.add_argument("recipe", type=Path, help="recipe file (YAML or JSON)")
    parser.add_argument(
        "--resume",
        metavar="ID|latest|PATH",
        help="continue a run exactly: its run id, 'latest', a run folder or a checkpoint folder",
    )
    parser.add_argument(
        "--any-owner",
        action="store_true",
        help="let --resume latest pick another user's run (shared database)",
    )
    parser.add_argument("--max-steps", type=int, metavar="N", help="override training.max_steps")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set training.learning_rate=1e-4 (repeatable)",
    )
    parser.add_argument("--output-dir", type=Path, help="where the run writes (default: per run)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an output folder that already holds files",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.core.cancel import CancelToken
    from codetune_studio.core.recipe import apply_overrides, load_recipe
    from codetune_studio.engine.threads import prefer_passive_waiting

    prefer_passive_waiting()  # before the first torch import; see engine.threads
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.services.training import TrainingRunService

    recipe = load_recipe(args.recipe)
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"training.max_steps={args.max_steps}")
    if overrides:
        recipe = apply_overrides(recipe, overrides)
    from codetune_studio.engine.starter import check_local_model

    # A damaged or pickled model folder is a bad recipe (exit 2), not a failed run.
    check_local_model(recipe.model, allow_pickle=recipe.allow_pickle)
    experiments = ExperimentService(context.open_database().database)
    runs = TrainingRunService(experiments, context.paths.runs_dir)
    planned = runs.plan(
        recipe,
        name=recipe.name or args.recipe.stem,
        output_dir=args.output_dir,
        resume=args.resume,
        any_owner=args.any_owner,
        overwrite=args.overwrite,
    )
    # This process trains the run: where to look if it dies without a word.
    runs.attach_worker(planned.run.id, log_path=context.log_file)
    echo(f"Run {planned.run.id}: writing to {planned.output_dir}")
    if planned.resume_from is not None:
        echo(f"Resuming from {planned.resume_from}")
    cancel = CancelToken()
    handler = _interrupt_handler(cancel)
    # SIGTERM too: a scheduler or `timeout` stopping the run gets a checkpoint as well.
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _train(recipe, cancel, planned, runs, context, args.no_progress)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _train(
    recipe: TrainingRecipe,
    cancel: CancelToken,
    planned: PlannedRun,
    runs: TrainingRunService,
    context: CliContext,
    no_progress: bool,
) -> int:
    from transformers.utils import logging as hf_logging

    from codetune_studio.core.status import RunStatus
    from codetune_studio.engine.sinks import CallbackSink

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # ours is the only bar
    progress = _Progress(enabled=not no_progress and sys.stderr.isatty())
    run_id = planned.run.id
    sink = CallbackSink(progress.on_event, progress.close)
    try:
        # The same service call as the window's worker: recorder, run, model version.
        recorded = runs.train(
            planned.run,
            recipe,
            sink,
            cancel,
            output_dir=planned.output_dir,
            data_dir=context.paths.data_dir,
            resume_from=planned.resume_from,
            offline=context.offline,
        )
    finally:
        sink.close()
    result = recorded.result
    loss = f", loss {result.train_loss:.4f}" if result.train_loss is not None else ""
    if result.eval_loss is not None:
        loss += f", eval loss {result.eval_loss:.4f}"
    if result.pass_at_1 is not None:
        loss += f", pass@1 {result.pass_at_1:.3f}"
    if recorded.storage_problem:  # trained, but the record is incomplete: not a success
        echo_error(f"run {run_id}: {recorded.storage_problem}")
        return 1
    if result.status is RunStatus.FINISHED:
        echo(f"Finished run {run_id} at step {result.final_step}{loss}.")
        echo(f"Adapter: {result.adapter_path}")
        if recorded.version is not None:
            echo(f"Model version: {recorded.version.id}")
        if recorded.registration_error is not None:
            echo_error(f"the model version was not registered: {recorded.registration_error}")
            return 1
        return 0
    if result.status is RunStatus.CANCELLED:
        echo(f"Cancelled run {run_id} at step {result.final_step}{loss}.")
        if result.checkpoint_path is not None:
            echo(f"Checkpoint: {result.checkpoint_path}")
            echo(f"Continue with: codetune-studio train RECIPE --resume {run_id}")
        return EXIT_CANCELLED
    echo_error(f"run {run_id} failed at step {result.final_step}: {result.error}")
    return 1


def _interrupt_handler(cancel: CancelToken) -> Any:
    def handle(_signum: int, _frame: FrameType | None) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt  # second Ctrl+C: stop now, without a checkpoint
        sys.stderr.write(
            "\nStopping after this step and saving a checkpoint (Ctrl+C again to quit).\n"
        )
        cancel.cancel()

    return handle


class _Progress:
    """A tqdm bar on stderr fed by the engine's events; plain lines when not a terminal."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._started = False
        self._bar: Any = None

    def on_event(self, event: Event) -> None:
        """Update the bar (or print a line) for one event."""
        from codetune_studio.core.events import (
            CheckpointSaved,
            CodeEvalCompleted,
            EvalCompleted,
            LogRecorded,
            MetricsLogged,
            RunStarted,
        )

        if isinstance(event, RunStarted):
            self._started = True
            self._start(event.total_steps, event.resumed_from_step)
        elif isinstance(event, MetricsLogged):
            self._metrics(event.step, event.metrics)
        elif isinstance(event, EvalCompleted):
            self._write(
                f"step {event.step}: eval loss {event.eval_loss:.4f}, "
                f"perplexity {event.perplexity:.2f}"
            )
        elif isinstance(event, CodeEvalCompleted):
            self._write(
                f"step {event.step}: pass@1 {event.metrics.get('eval_pass@1', float('nan')):.3f} "
                f"on {event.tasks} tasks ({event.seconds:.1f} s)"
            )
        elif isinstance(event, CheckpointSaved):
            self._write(f"step {event.step}: checkpoint {event.path}")
        elif isinstance(event, LogRecorded) and (
            event.level in {"WARNING", "ERROR"} or not self._started
        ):
            # Setup messages (model, data, starter build) until training starts; then only
            # problems, so the bar stays readable.
            self._write(f"{event.level.lower()}: {event.message}")

    def _start(self, total: int, initial: int) -> None:
        if not self._enabled:
            return
        # tqdm ships no type stubs; it comes with transformers.
        tqdm = importlib.import_module("tqdm.auto").tqdm
        self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def _metrics(self, step: int, metrics: dict[str, float]) -> None:
        if self._bar is None:
            self._write(
                f"step {step}: loss {metrics.get('loss', float('nan')):.4f}, "
                f"{metrics.get('tokens_per_second', 0.0):.0f} tokens/s"
            )
            return
        self._bar.set_postfix(
            loss=f"{metrics.get('loss', float('nan')):.4f}",
            tok_s=f"{metrics.get('tokens_per_second', 0.0):.0f}",
            refresh=False,
        )
        self._bar.update(step - self._bar.n)

    def _write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            sys.stderr.write(line + "\n")

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
