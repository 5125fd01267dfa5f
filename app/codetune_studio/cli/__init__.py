"""The ``codetune-studio`` command: the window by default, and headless subcommands.

Each subcommand lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``handler`` to a function ``(args, context) -> exit status``. Errors from lower
layers arrive as :class:`~codetune_studio.core.errors.CodetuneError` and are printed as one line;
anything else is logged with its traceback and summarised (``--debug`` re-raises it).
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from codetune_studio.cli import analyze as analyze_cmd
from codetune_studio.cli import audit as audit_cmd
from codetune_studio.cli import dataset as dataset_cmd
from codetune_studio.cli import db as db_cmd
from codetune_studio.cli import evaluate as eval_cmd
from codetune_studio.cli import export as export_cmd
from codetune_studio.cli import generate as generate_cmd
from codetune_studio.cli import keys as keys_cmd
from codetune_studio.cli import models as models_cmd
from codetune_studio.cli import paths as paths_cmd
from codetune_studio.cli import plugins as plugins_cmd
from codetune_studio.cli import queue as queue_cmd
from codetune_studio.cli import runs as runs_cmd
from codetune_studio.cli import sweep as sweep_cmd
from codetune_studio.cli import tokenizer as tokenizer_cmd
from codetune_studio.cli import train as train_cmd
from codetune_studio.cli import verify as verify_cmd
from codetune_studio.cli.context import CliContext, GlobalOptions, echo_error
from codetune_studio.cli.version import VersionAction
from codetune_studio.core.errors import CodetuneError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[ModuleType, ...] = (
    paths_cmd, db_cmd, keys_cmd, train_cmd, dataset_cmd, analyze_cmd, plugins_cmd, audit_cmd,
)  # fmt: skip
#: Run history, queue, sweeps and model versions.
COMMANDS += (runs_cmd, queue_cmd, sweep_cmd, models_cmd)
#: Generation and code evaluation.
COMMANDS += (generate_cmd, eval_cmd)
#: Export and verification.
COMMANDS += (export_cmd, verify_cmd)
#: Data tools.
COMMANDS += (tokenizer_cmd,)


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser, subcommands included."""
    parser = argparse.ArgumentParser(
        prog="codetune-studio",
        allow_abbrev=False,
        description="Fine-tune language models on your own machine. "
        "With no command, opens the studio window.",
    )
    parser.add_argument("--version", action=VersionAction)
    GlobalOptions.add_arguments(parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit status."""
    # Global options may stand anywhere on the line (`db status --database URL` too), so they are
    # picked out first and the rest goes to the full parser.
    global_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    GlobalOptions.add_arguments(global_parser)
    global_args, rest = global_parser.parse_known_args(argv)
    args = build_parser().parse_args(rest)
    context = CliContext(GlobalOptions.from_args(global_args))
    try:
        context.start()
        handler = getattr(args, "handler", None)
        if handler is None:
            return _default_action(context)
        status: int = handler(args, context)
    except CodetuneError as exc:
        logger.debug("command failed", exc_info=True)
        echo_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        echo_error("Interrupted.")
        return 130
    except BrokenPipeError:
        # `codetune-studio runs | head`: the reader left; say nothing more (Python's advice).
        _silence_stdout()
        return 1
    except Exception as exc:
        if context.options.debug:
            raise
        logger.exception("unexpected error")
        echo_error(
            f"Unexpected error: {exc.__class__.__name__}: {exc}. "
            f"Details are in {context.log_file_hint()}; rerun with --debug to see them here."
        )
        return 1
    else:
        return status
    finally:
        context.close()


def _silence_stdout() -> None:
    """Point stdout at the null device so the exit-time flush does not raise again."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing to silence
        pass


def _default_action(context: CliContext) -> int:
    """What a bare ``codetune-studio`` does: open the studio window."""
    # Imported here so that the headless subcommands never load Qt.
    from codetune_studio.ui.app import run_studio

    return run_studio(context)
