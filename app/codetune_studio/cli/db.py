"""``codetune-studio db``: which database the studio uses, and its schema."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from codetune_studio.cli.context import CliContext, echo

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    """Add the ``db`` command group."""
    parser = subparsers.add_parser("db", help="database status and schema upgrades")
    commands = parser.add_subparsers(title="db commands", metavar="ACTION", required=True)
    status = commands.add_parser(
        "status", help="dialect, URL (password masked), schema revision, row counts"
    )
    status.add_argument("--json", action="store_true", help="print a JSON object")
    status.set_defaults(handler=_status)
    upgrade = commands.add_parser("upgrade", help="apply pending schema migrations")
    upgrade.set_defaults(handler=_upgrade)


def _status(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.database import DatabaseService

    opened = context.open_database()
    status = DatabaseService(opened.database, is_fallback=opened.is_fallback).status()
    if args.json:
        echo(json.dumps(status.model_dump(mode="json"), indent=2))
        return 0
    revision = status.revision or "none (empty database)"
    state = (
        "up to date"
        if status.revision == status.head_revision
        else f"head is {status.head_revision}"
    )
    echo(f"dialect   {status.dialect}{' (fallback)' if status.is_fallback else ''}")
    echo(f"url       {status.url_masked}")
    echo(f"revision  {revision} ({state})")
    echo("rows")
    width = max(map(len, status.row_counts), default=0)
    for table, count in status.row_counts.items():
        echo(f"  {table:<{width}}  {count}")
    return 0


def _upgrade(_args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.database import DatabaseService

    opened = context.open_database(upgrade=False)
    before, after = DatabaseService(opened.database).upgrade()
    if before == after:
        echo(f"Schema already at {after}; nothing to do.")
    else:
        echo(f"Schema upgraded from {before or 'empty'} to {after}.")
    return 0
