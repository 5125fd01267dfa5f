"""``codetune-studio models ...``: trained model versions and where each came from."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from codetune_studio.cli.context import CliContext, echo
from codetune_studio.cli.tables import fmt_time, print_table

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers
    from codetune_studio.core.models import ModelVersion

__all__ = ["register", "version_json"]


def register(subparsers: Subparsers) -> None:
    """Add the ``models`` command and its subcommands."""
    parser = subparsers.add_parser("models", help="trained model versions and their lineage")
    commands = parser.add_subparsers(title="models commands", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="every model version, newest first")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", help="one model version")
    show.add_argument("version_id", type=int, metavar="ID")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(handler=_show)
    lineage = commands.add_parser("lineage", help="a version's chain of parents and runs")
    lineage.add_argument("version_id", type=int, metavar="ID")
    lineage.add_argument("--format", choices=("table", "json"), default="table")
    lineage.set_defaults(handler=_lineage)


def version_json(version: ModelVersion) -> dict[str, Any]:
    """One model version as JSON."""
    return version.model_dump(mode="json")


def _list(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.experiments import ExperimentService

    versions = ExperimentService(context.open_database().database).list_model_versions()
    if args.format == "json":
        sys.stdout.write(json.dumps([version_json(v) for v in versions], indent=2) + "\n")
        return 0
    print_table(
        ["ID", "NAME", "BASE MODEL", "RUN", "PARENT", "CREATED", "PATH"],
        [
            [
                str(v.id),
                v.name,
                v.base_model[-30:],
                str(v.run_id or "-"),
                str(v.parent_id or "-"),
                fmt_time(v.created_at),
                v.path,
            ]
            for v in versions
        ],
    )
    return 0


def _show(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.history import RunHistoryService

    history = RunHistoryService(context.open_database().database)
    version = history.model_version(args.version_id)
    run = history.get_summary(version.run_id).run if version.run_id is not None else None
    if args.format == "json":
        payload = {
            **version_json(version),
            "host": run.host if run else None,
            "output_dir": run.output_dir if run else None,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    echo(f"Model version {version.id}: {version.name}")
    echo(f"  path            {version.path}" + (f" (on {run.host})" if run else ""))
    echo(f"  base model      {version.base_model}")
    echo(f"  base revision   {version.base_revision or '-'}")
    echo(f"  dataset         {version.dataset_fingerprint or '-'}")
    echo(f"  recipe hash     {version.recipe_hash or '-'}")
    echo(f"  run             {version.run_id or '-'}")
    echo(f"  parent version  {version.parent_id or '-'}")
    return 0


def _lineage(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.history import RunHistoryService

    chain = RunHistoryService(context.open_database().database).model_lineage(args.version_id)
    if args.format == "json":
        payload = [
            {**version_json(version), "runs": [step.model_dump(mode="json") for step in runs]}
            for version, runs in chain
        ]
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    for depth, (version, runs) in enumerate(chain):
        arrow = "  " * depth + ("<- parent " if depth else "")
        echo(f"{arrow}model version {version.id} ({version.base_model})")
        for step in runs:
            relation = f"{step.relation} " if step.relation else "made by "
            echo(f"{'  ' * depth}     {relation}run {step.run_id} {step.name} ({step.status})")
    echo(f"base model: {chain[-1][0].base_model}")
    return 0
