"""``codetune-studio sweep RECIPE --grid field=v1,v2 ...``: queue a grid (or a random sample)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from codetune_studio.cli.context import CliContext, echo, echo_notice
from codetune_studio.cli.runs import metric_option

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    """Add the ``sweep`` command."""
    parser = subparsers.add_parser(
        "sweep",
        help="queue a group of runs over a grid of recipe values",
        description="Queue one run per combination of --grid values (or --random N of them), "
        "as one sweep group. With --run, train them here and print the comparison.",
    )
    parser.add_argument("recipe", type=Path, help="the base recipe")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="FIELD=V1,V2",
        help="values of one recipe field, e.g. training.learning_rate=1e-4,3e-4 (repeatable)",
    )
    parser.add_argument("--random", type=int, metavar="N", help="a random sample of N points")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    parser.add_argument(
        "--name",
        help="what the runs are called, as NAME [field=value ...] "
        "(default: the recipe's name, else its file name)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--metric",
        default="eval_loss",
        type=metric_option,
        help="metric that marks the best run (default eval_loss; pass@1 needs each run "
        "evaluated with `codetune-studio eval RUN_ID --tasks FILE` first)",
    )
    parser.add_argument("--run", action="store_true", help="train the sweep now and compare")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.cli.queue import make_runner
    from codetune_studio.cli.runs import print_comparison
    from codetune_studio.core.recipe import apply_overrides, load_recipe
    from codetune_studio.services.history import RunHistoryService
    from codetune_studio.services.queue import QueueService
    from codetune_studio.services.sweeps import expand_sweep, parse_grid, queue_sweep

    recipe = load_recipe(args.recipe)
    if args.overrides:
        recipe = apply_overrides(recipe, args.overrides)
    name = (args.name or "").strip() or recipe.name or args.recipe.stem
    # The variants' recipes carry the sweep's name too, as the window's sweep dialog does.
    recipe = recipe.model_copy(update={"name": name})
    variants = expand_sweep(recipe, parse_grid(args.grid), sample=args.random, seed=args.seed)
    database = context.open_database().database
    sweep = queue_sweep(QueueService(database), recipe, variants, name=name)
    # With --format json, stdout carries the JSON document alone; progress goes to stderr.
    say = echo_notice if args.format == "json" else echo
    say(f"Queued sweep {sweep.sweep_id}: runs {', '.join(str(r.id) for r in sweep.runs)}")
    if not args.run:
        return 0
    runner = make_runner(context, on_message=say)
    # Run exactly this sweep's runs: other queued work may be in line before it.
    ids = {run.id for run in sweep.runs}
    done = 0
    while done < len(ids) and (ran := runner.run_next()) is not None:
        done += ran.id in ids
    comparison = RunHistoryService(database).compare(
        [run.id for run in sweep.runs], metric=args.metric
    )
    if args.format == "json":
        sys.stdout.write(
            json.dumps({"sweep_id": sweep.sweep_id, **comparison.as_json()}, indent=2) + "\n"
        )
    else:
        print_comparison(comparison)
    if comparison.best_run_id is None and args.metric.startswith("pass"):
        listed = " ".join(str(run.id) for run in sweep.runs)
        echo_notice(
            f"No run of the sweep has a {args.metric} yet: evaluate each with `codetune-studio "
            f"eval RUN_ID --tasks FILE`, then `codetune-studio runs compare {listed} "
            f"--metric {args.metric}`."
        )
    return 0
