"""``codetune-studio audit``: who set or deleted keys, switched database, deleted or exported."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from codetune_studio.cli.context import CliContext, echo

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    """Add the ``audit`` command."""
    parser = subparsers.add_parser(
        "audit",
        help="show the audit log (keys, database switches, deletions, exports)",
        description="List recorded security-relevant actions, newest first. Secrets are never "
        "recorded.",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--limit", type=int, default=100, metavar="N", help="at most N entries")
    parser.add_argument("--action", metavar="ACTION", help="only this action, e.g. key.set")
    parser.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.audit import AuditService

    if args.limit <= 0:
        from codetune_studio.core.errors import ConfigError

        raise ConfigError(f"--limit must be a positive number, got {args.limit}")
    entries = AuditService(context.open_database().database).list(
        limit=args.limit, action=args.action
    )
    if args.format == "json":
        echo(json.dumps([entry.model_dump(mode="json") for entry in entries], indent=2))
        return 0
    if not entries:
        echo("The audit log is empty.")
        return 0
    for entry in entries:
        stamp = entry.at.strftime("%Y-%m-%d %H:%M:%S")
        details = " ".join(f"{k}={v}" for k, v in entry.details.items())
        echo(f"{stamp}Z  {entry.actor}@{entry.host}  {entry.action:<18} {entry.target}  {details}")
    return 0
