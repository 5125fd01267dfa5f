"""The packaged studio's entry point (PyInstaller runs this file as ``__main__``).

A frozen studio has no Python to start its children with, so it starts itself again:
``codetune-studio --codetune-run-module codetune_studio.worker ...`` runs the training worker
(and likewise the plugin runner) exactly as ``python -m`` would from a source install. Any other
command line is the ordinary ``codetune-studio`` command.
"""

from __future__ import annotations

import multiprocessing

from codetune_studio.core.child_cmd import run_frozen_module


def _main() -> int:
    # A library that starts a process through multiprocessing's spawn (Windows, macOS) re-enters
    # this executable too; freeze_support hands such a child over before anything else runs.
    multiprocessing.freeze_support()
    if run_frozen_module():
        return 0
    from codetune_studio.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(_main())
