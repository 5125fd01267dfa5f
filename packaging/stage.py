"""Prepare what the packaged studio carries besides code (``make package`` runs this).

``record STAGE --torch cpu|cuda`` writes ``STAGE/codetune-build.json`` (version, commit, torch
build) for PyInstaller to bundle, and refuses a torch build other than the one asked for.
``starter STAGE`` builds the starter model once into ``STAGE/models/starter-v2`` (about two
minutes; a stage that already holds a complete one keeps it), which ``make package`` copies into
the bundle so that its first training starts within seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codetune_studio.core.build_info import git_commit, write_build_info
from codetune_studio.engine.starter import ensure_starter_model

ROOT = Path(__file__).resolve().parents[1]


def record(stage: Path, torch: str) -> int:
    """Write the build record; exit status 2 if ``.venv``'s torch is not the build asked for."""
    stage.mkdir(parents=True, exist_ok=True)
    info = write_build_info(stage / "codetune-build.json", commit=git_commit(ROOT))
    if (torch == "cpu") != ("(CPU)" in info.torch):
        sys.stderr.write(
            f"package: asked for the {torch} build but .venv holds torch {info.torch}; "
            f"run `make clean && make setup TORCH={torch}` first\n"
        )
        return 2
    sys.stdout.write(f"package: {info.version}, commit {info.commit}, torch {info.torch}\n")
    return 0


def starter(stage: Path) -> int:
    """Build (or keep) the starter model under ``stage``."""
    folder = ensure_starter_model(stage)
    sys.stdout.write(f"package: starter model in {folder}\n")
    return 0


def main() -> int:
    """Run one staging step."""
    parser = argparse.ArgumentParser(description="Stage what the packaged studio carries.")
    parser.add_argument("step", choices=("record", "starter"))
    parser.add_argument("stage", type=Path)
    parser.add_argument("--torch", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    if args.step == "record":
        return record(args.stage, args.torch)
    return starter(args.stage)


if __name__ == "__main__":
    raise SystemExit(main())
