"""``codetune-studio plugins list``: the installed analysis plugins and their state."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from codetune_studio.cli.context import CliContext, echo
from codetune_studio.plugins.registry import discover

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    """Add the ``plugins`` command group."""
    parser = subparsers.add_parser("plugins", help="list the analysis plugins")
    commands = parser.add_subparsers(title="plugins commands", metavar="ACTION", required=True)
    list_parser = commands.add_parser("list", help="show each plugin, its state and what it needs")
    list_parser.add_argument("--format", choices=("table", "json"), default="table")
    list_parser.set_defaults(handler=_list)


def _list(args: argparse.Namespace, context: CliContext) -> int:
    entries = discover(disabled=context.settings.plugins.disabled)
    rows = [
        {
            "name": e.name,
            "version": e.spec.version if e.spec else None,
            "state": e.state.value,
            "needs_network": e.spec.needs_network if e.spec else None,
            "secrets": list(e.spec.secrets) if e.spec else [],
            "description": e.spec.description if e.spec else "",
            "error": e.error,
            "entry_point": e.entry_point,
        }
        for e in entries
    ]
    if args.format == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not rows:
        echo("No plugins installed.")
        return 0
    name_width = max(len(e.name) for e in entries)
    for e in entries:
        spec = e.spec
        needs = [
            *(["network"] if spec and spec.needs_network else []),
            *(f"{s} key" for s in (spec.secrets if spec else ())),
        ]
        detail = e.error if e.error else (spec.description if spec else "")
        version = spec.version if spec else "?"
        echo(
            f"{e.name:<{name_width}}  {version:<7}  {e.state.value:<8}  {', '.join(needs) or 'nothing':<22}  {detail}"
        )
    return 0
