"""``codetune-studio paths``: where the studio keeps its files."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from codetune_studio import __version__
from codetune_studio.cli.context import CliContext, echo

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers

__all__ = ["print_summary", "register"]


def register(subparsers: Subparsers) -> None:
    """Add the ``paths`` command."""
    parser = subparsers.add_parser("paths", help="show where data, settings, logs and caches live")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.set_defaults(handler=_run)


def _folders(context: CliContext) -> dict[str, str]:
    paths = context.paths
    return {
        "data": str(paths.data_dir),
        "config": str(paths.config_dir),
        "settings": str(paths.settings_file),
        "database": context.database_url_masked(),
        "runs": str(paths.runs_dir),
        "logs": str(context.log_file),
        "cache": str(paths.cache_dir),
    }


def _run(args: argparse.Namespace, context: CliContext) -> int:
    folders = _folders(context)
    if args.json:
        echo(json.dumps(folders, indent=2))
    else:
        width = max(map(len, folders))
        for name, value in folders.items():
            echo(f"{name:<{width}}  {value}")
    return 0


def print_summary(context: CliContext) -> None:
    """Print the version and the folders, for a bare ``codetune-studio``."""
    echo(f"CodeTune Studio {__version__}")
    for name, value in _folders(context).items():
        echo(f"  {name:<9} {value}")
