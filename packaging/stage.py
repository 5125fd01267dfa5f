"""Prepare what the packaged studio carries besides code (``make package`` runs this first).

Writes ``codetune-build.json`` (version, commit, torch build) and builds the starter model once
into ``STAGE/models/starter-v1``, so the bundle's first training starts within seconds. A stage
folder that already holds a complete starter model keeps it (building takes about two minutes).

Usage: ``python packaging/stage.py STAGE_DIR --torch cpu|cuda``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codetune_studio.core.build_info import git_commit, write_build_info
from codetune_studio.engine.starter import ensure_starter_model

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Stage the build record and the starter model; exit 2 if torch is not the build asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", type=Path)
    parser.add_argument("--torch", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    args.stage.mkdir(parents=True, exist_ok=True)
    info = write_build_info(args.stage / "codetune-build.json", commit=git_commit(ROOT))
    is_cpu = "(CPU)" in info.torch
    if (args.torch == "cpu") != is_cpu:
        sys.stderr.write(
            f"package: asked for the {args.torch} build but .venv holds torch {info.torch}; "
            f"run `make clean && make setup TORCH={args.torch}` first\n"
        )
        return 2
    sys.stdout.write(f"package: {info.version}, commit {info.commit}, torch {info.torch}\n")
    folder = ensure_starter_model(args.stage)
    sys.stdout.write(f"package: starter model in {folder}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
