"""The command line that starts one of the studio's own child processes.

From a source install a child is ``python -m <module>``. A frozen (PyInstaller) studio has no
Python to run: there the executable re-enters itself with :data:`FROZEN_MODULE_FLAG`, and
:func:`run_frozen_module` (called first thing by the frozen entry point) runs the module as
``-m`` would. Every child launch goes through :func:`python_module_command`, so the training
worker, the plugin runner, generation and the eval sandbox all work in both kinds of install.
"""

from __future__ import annotations

import runpy
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["FROZEN_MODULE_FLAG", "is_frozen", "python_module_command", "run_frozen_module"]

#: The frozen executable's stand-in for ``python -m``.
FROZEN_MODULE_FLAG = "--codetune-run-module"


def is_frozen() -> bool:
    """Whether this process runs from a frozen bundle rather than a Python installation."""
    return bool(getattr(sys, "frozen", False))


def python_module_command(module: str, *args: str, isolated: bool = False) -> list[str]:
    """Return the argv that runs ``module`` as a child process with ``args``.

    Args:
        module: A module with a ``__main__`` block, for example ``codetune_studio.worker``.
        *args: The child's own arguments.
        isolated: Keep the current folder off ``sys.path`` (Python's ``-P``), so a file in the
            user's folder cannot shadow a module the child imports.
    """
    if is_frozen():
        return [sys.executable, FROZEN_MODULE_FLAG, module, *args]
    flags = ["-P"] if isolated else []
    return [sys.executable, *flags, "-m", module, *args]


def run_frozen_module(argv: Sequence[str] | None = None) -> bool:
    """Run ``<exe> --codetune-run-module MODULE ARGS...`` the way ``python -m`` would.

    Args:
        argv: The process's arguments; ``sys.argv`` by default.

    Returns:
        ``False`` when ``argv`` is an ordinary command line (the caller goes on as usual);
        otherwise the module has run, and :class:`SystemExit` from it propagates.
    """
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 3 or argv[1] != FROZEN_MODULE_FLAG:
        return False
    module = argv[2]
    sys.argv = [module, *argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return True
