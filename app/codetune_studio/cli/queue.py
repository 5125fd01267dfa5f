"""``codetune-studio queue ...``: queue recipes and drain the queue on this machine.

The queue lives in the database: runs queued from any studio sharing it show up here, and
``queue run --worker`` on a GPU box keeps taking them (each exactly once, with row locks on
PostgreSQL) while teammates queue more from their laptops.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune_studio.cli.context import CliContext, echo
from codetune_studio.cli.tables import fmt_time, print_table

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from types import FrameType

    from codetune_studio.cli.types import Subparsers
    from codetune_studio.core.models import Run
    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.services.queue import QueueRunner, QueueService

__all__ = ["make_runner", "register"]


def register(subparsers: Subparsers) -> None:
    """Add the ``queue`` command and its subcommands."""
    parser = subparsers.add_parser("queue", help="queue recipes and run them one after another")
    commands = parser.add_subparsers(title="queue commands", metavar="ACTION", required=True)

    add = commands.add_parser("add", help="queue one or more recipes, or a clone of a run")
    add.add_argument("recipes", type=Path, nargs="*", metavar="RECIPE")
    add.add_argument(
        "--clone",
        type=int,
        metavar="RUN_ID",
        help="queue this run's recipe (with --set changes); the new run records it as its parent",
    )
    add.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value in every queued run (repeatable)",
    )
    add.add_argument("--name", help="run name (default: the recipe's name or file name)")
    add.set_defaults(handler=_add)

    listing = commands.add_parser("list", help="the queued runs, next first")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)

    run = commands.add_parser("run", help="train queued runs here until the queue is empty")
    run.add_argument(
        "--worker",
        action="store_true",
        help="keep waiting for new queued runs instead of exiting when the queue is empty",
    )
    run.add_argument("--poll", type=float, default=5.0, metavar="S", help="idle poll interval")
    run.add_argument("--max-runs", type=int, metavar="N", help="stop after N runs")
    run.add_argument(
        "--run-timeout", type=float, metavar="S", help="stop a run that trains longer than S s"
    )
    run.set_defaults(handler=_run)

    move = commands.add_parser("move", help="move a queued run to a place in the queue")
    move.add_argument("run_id", type=int, metavar="ID")
    move.add_argument("position", type=int, help="1 = next to run")
    move.set_defaults(handler=_move)

    remove = commands.add_parser("remove", help="take a run off the queue")
    remove.add_argument("run_ids", type=int, nargs="+", metavar="ID")
    remove.set_defaults(handler=_remove)


def _service(context: CliContext) -> QueueService:
    from codetune_studio.services.queue import QueueService

    return QueueService(context.open_database().database)


def _add(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.core.errors import ConfigError
    from codetune_studio.core.recipe import apply_overrides, load_recipe, parse_recipe

    if not args.recipes and args.clone is None:
        raise ConfigError("queue add: give one or more RECIPE files, or --clone RUN_ID")
    queue = _service(context)
    recipes: list[tuple[str, TrainingRecipe, int | None]] = []
    for path in args.recipes:  # validate all first: a bad file queues nothing
        recipes.append((path.stem, load_recipe(path), None))
    if args.clone is not None:
        source = queue.get(args.clone)
        recipe = parse_recipe(source.recipe, source=f"run {source.id}")
        recipes.append((source.name, recipe.model_copy(update={"output_dir": None}), source.id))
    if args.overrides:
        recipes = [(n, apply_overrides(r, args.overrides), p) for n, r, p in recipes]
    for stem, recipe, parent in recipes:
        run = queue.add(recipe, name=args.name or recipe.name or stem, parent_run_id=parent)
        echo(f"Queued run {run.id} ({run.name}) at position {run.queue_position}")
    return 0


def _list(args: argparse.Namespace, context: CliContext) -> int:
    runs = _service(context).list_queued()
    if args.format == "json":
        rows = [
            {
                "id": run.id,
                "name": run.name,
                "position": index,
                "owner": run.owner,
                "sweep_id": run.sweep_id,
                "created_at": run.created_at.isoformat(),
            }
            for index, run in enumerate(runs, start=1)
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not runs:
        echo("The queue is empty.")
        return 0
    print_table(
        ["#", "ID", "NAME", "OWNER", "QUEUED", "SWEEP"],
        [
            [str(i), str(r.id), r.name, r.owner, fmt_time(r.created_at), r.sweep_id or ""]
            for i, r in enumerate(runs, start=1)
        ],
    )
    return 0


def make_runner(
    context: CliContext,
    *,
    run_timeout_s: float | None = None,
    on_message: Callable[[str], None] = echo,
) -> QueueRunner:
    """A queue runner for this machine, with the command line's database and folders."""
    from codetune_studio.services.queue import DEFAULT_RUN_TIMEOUT_S, QueueRunner, WorkerOptions

    opened = context.open_database()
    options = WorkerOptions(
        runs_dir=context.paths.runs_dir,
        data_dir=context.paths.data_dir,
        database_url=opened.database.connection_url,
        online=not context.offline,
        run_timeout_s=run_timeout_s or DEFAULT_RUN_TIMEOUT_S,
    )
    return QueueRunner(_service(context), options, on_message=on_message)


def _run(args: argparse.Namespace, context: CliContext) -> int:
    runner = make_runner(context, run_timeout_s=args.run_timeout)
    handler = _stop_handler(runner)
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.worker:
            echo("Waiting for queued runs (Ctrl+C to stop).")
        done = runner.drain(wait_for_work=args.worker, poll_s=args.poll, max_runs=args.max_runs)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return _report(done)


def _report(done: list[Run]) -> int:
    from codetune_studio.core.status import RunStatus

    failed = [run for run in done if run.status is not RunStatus.FINISHED]
    echo(f"Ran {len(done)} run(s); {len(done) - len(failed)} finished, {len(failed)} did not.")
    return 1 if failed else 0


def _stop_handler(runner: QueueRunner) -> Any:
    def handle(_signum: int, _frame: FrameType | None) -> None:
        sys.stderr.write("\nStopping: the current run checkpoints and stops; no new run starts.\n")
        runner.stop()

    return handle


def _move(args: argparse.Namespace, context: CliContext) -> int:
    runs = _service(context).move(args.run_id, args.position - 1)
    echo("Queue: " + ", ".join(str(run.id) for run in runs))
    return 0


def _remove(args: argparse.Namespace, context: CliContext) -> int:
    queue = _service(context)
    for run_id in args.run_ids:
        queue.remove(run_id)
        echo(f"Removed run {run_id} from the queue.")
    return 0
