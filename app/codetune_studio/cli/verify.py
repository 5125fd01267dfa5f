"""``codetune-studio verify DIR``: check an export again, in fresh processes.

Exit status: 0 the export passes, 1 it fails (each failed check says what is wrong), 2 the folder
is not an export made by the studio.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from codetune_studio.cli.context import CliContext, echo

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    """Add the ``verify`` command."""
    parser = subparsers.add_parser(
        "verify",
        help="verify an exported folder again",
        description="Load an export with plain transformers/peft (or gguf's reader) in a fresh "
        "process and compare it with its source. Exit status: 0 pass, 1 fail, 2 not an export.",
    )
    parser.add_argument("folder", type=Path, metavar="DIR", help="the export folder")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, context: CliContext) -> int:
    del context  # needs neither the database nor settings
    from codetune_studio.cli.export import print_verdict, progress_printer
    from codetune_studio.engine.export_verify import verify_export

    echo(f"Verifying {args.folder.resolve()}")
    verdict = verify_export(args.folder, progress=progress_printer())
    print_verdict(verdict)
    return 0 if verdict.ok else 1
