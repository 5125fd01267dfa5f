"""Fingerprint of what the dependency locks are compiled from, to tell a stale lock.

``make lock`` writes the fingerprint into each lock's header; ``make setup`` and a unit test
compare it with the current ``pyproject.toml``, so a branch that adds a dependency without
re-locking fails with the command that fixes it instead of with an ``ImportError`` later.

Only what the resolution depends on counts: ``requires-python``, the dependencies and the extras,
the build requirements, and the files in ``packaging/locks/*.in`` (pins and build tools). Edits to
tool settings in ``pyproject.toml`` leave the locks fresh.

Usage::

    python packaging/lock_inputs.py                 # print the fingerprint
    python packaging/lock_inputs.py --check LOCK... # exit 1 naming each stale lock
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK_DIR = ROOT / "packaging" / "locks"
HEADER = "# lock-inputs: "


def fingerprint(root: Path = ROOT) -> str:
    """The SHA-256 of the lock's inputs, as 16 hex digits.

    Args:
        root: The repository root.

    Returns:
        The fingerprint.
    """
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {
            name: sorted(reqs) for name, reqs in project.get("optional-dependencies", {}).items()
        },
        "build-system": sorted(pyproject.get("build-system", {}).get("requires", [])),
        "inputs": {
            path.name: path.read_text(encoding="utf-8")
            for path in sorted((root / "packaging" / "locks").glob("*.in"))
        },
    }
    blob = json.dumps(inputs, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def recorded(lock: Path) -> str | None:
    """The fingerprint a lock was made from, read from its header."""
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith(HEADER):
            return line.removeprefix(HEADER).strip()
    return None


def main(argv: list[str] | None = None) -> int:
    """Print the fingerprint, or check locks against it."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", nargs="+", type=Path, metavar="LOCK")
    args = parser.parse_args(argv)
    current = fingerprint()
    if not args.check:
        sys.stdout.write(current + "\n")
        return 0
    stale = [lock for lock in args.check if recorded(lock) != current]
    for lock in stale:
        sys.stderr.write(
            f"error: {lock} is older than pyproject.toml's dependencies: run `make lock` "
            "and commit the locks (or `make setup LOCK=none` to install from the ranges).\n"
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
