"""``codetune-studio db``: which database the studio uses, and its schema."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from codetune_studio.cli.context import CliContext, echo, echo_error

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
    status.add_argument(
        "--check",
        action="store_true",
        help="also check the database file for damage (SQLite's integrity check)",
    )
    status.set_defaults(handler=_status)
    upgrade = commands.add_parser("upgrade", help="apply pending schema migrations")
    upgrade.set_defaults(handler=_upgrade)


def _status(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.database import DatabaseService

    opened = context.open_database()
    service = DatabaseService(opened.database, is_fallback=opened.is_fallback)
    problems = service.integrity_problems() if args.check else None
    status = service.status()
    if args.json:
        data = status.model_dump(mode="json")
        if problems is not None:
            data["integrity"] = problems or ["ok"]
        echo(json.dumps(data, indent=2))
        return 1 if problems else 0
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
    if problems is None:
        return 0
    if not problems:
        echo("integrity ok")
        return 0
    for problem in problems[:20]:
        echo_error(f"integrity: {problem}")
    echo_error(
        f"The database is damaged ({len(problems)} problems). Restore a backup, or move the "
        "file aside so the studio starts a new one."
    )
    return 1


def _upgrade(_args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.database import DatabaseService

    opened = context.open_database(upgrade=False)
    before, after = DatabaseService(opened.database).upgrade()
    if before == after:
        echo(f"Schema already at {after}; nothing to do.")
    else:
        echo(f"Schema upgraded from {before or 'empty'} to {after}.")
    return 0
