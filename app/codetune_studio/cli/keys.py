"""``codetune-studio keys``: API keys in the OS keyring."""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

from pydantic import SecretStr

from codetune_studio.cli.context import CliContext, echo
from codetune_studio.core.audit import AuditAction
from codetune_studio.core.errors import SecretError
from codetune_studio.secrets import KNOWN_SECRETS

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    """Add the ``keys`` command group."""
    parser = subparsers.add_parser("keys", help="store, list and delete API keys (OS keyring)")
    commands = parser.add_subparsers(title="keys commands", metavar="ACTION", required=True)
    names = sorted(KNOWN_SECRETS)

    set_parser = commands.add_parser(
        "set", help="store a key; reads it without echo, or from standard input when piped"
    )
    set_parser.add_argument("name", choices=names)
    set_parser.add_argument("--stdin", action="store_true", help="read the key from standard input")
    set_parser.set_defaults(handler=_set)

    list_parser = commands.add_parser(
        "list", help="show which keys are set and where (never the values)"
    )
    list_parser.set_defaults(handler=_list)

    delete_parser = commands.add_parser("delete", help="remove a key from the keyring")
    delete_parser.add_argument("name", choices=names)
    delete_parser.set_defaults(handler=_delete)


def _read_secret(name: str, *, from_stdin: bool) -> SecretStr:
    label = KNOWN_SECRETS[name].label
    if from_stdin or not sys.stdin.isatty():
        value = sys.stdin.readline().strip()
    else:
        value = getpass.getpass(f"{label} API key (input hidden): ").strip()
    if not value:
        raise SecretError(f"no {label} key was given; nothing was stored")
    return SecretStr(value)


def _set(args: argparse.Namespace, context: CliContext) -> int:
    value = _read_secret(args.name, from_stdin=args.stdin)
    context.secrets.set(args.name, value)
    echo(f"Stored the {KNOWN_SECRETS[args.name].label} key in the OS keyring.")
    context.audit(AuditAction.KEY_SET, args.name, {"store": "keyring"})
    return 0


def _list(_args: argparse.Namespace, context: CliContext) -> int:
    for name in KNOWN_SECRETS:
        info = context.secrets.info(name)
        where = {"keyring": "set (OS keyring)", "environment": f"set (environment: {info.env_var})"}
        echo(f"{name:<12} {where.get(info.source or '', 'not set')}")
    return 0


def _delete(args: argparse.Namespace, context: CliContext) -> int:
    label = KNOWN_SECRETS[args.name].label
    if context.secrets.delete(args.name):
        echo(f"Deleted the {label} key from the OS keyring.")
        context.audit(AuditAction.KEY_DELETED, args.name, {"store": "keyring"})
        return 0
    echo(f"No {label} key was stored in the OS keyring; nothing to delete.")
    return 1
