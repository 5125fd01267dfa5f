"""One of eight studio processes starting at once against a fresh database.

Run as ``python tests/reliability/_migrator.py URL GO_FILE``. Everything slow (Alembic, the
models) is imported first; then it prints ``ready``, waits for ``GO_FILE`` to appear so all eight
start their upgrade in the same instant, opens the database as the studio does and upgrades it.
Prints a JSON line: the revision it found and the one it left. On a failure it prints the error
as one line on stderr and exits 1.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import alembic.command  # noqa: F401 - imported before the start signal, as a warm studio would

from codetune_studio.core.errors import CodetuneError
from codetune_studio.storage.db import Database


def main() -> int:
    url, go_file = sys.argv[1], Path(sys.argv[2])
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while not go_file.exists():
        time.sleep(0.001)
    try:
        database = Database.connect(url, connect_timeout=30)
        try:
            before, after = database.upgrade()
        finally:
            database.dispose()
    except CodetuneError as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    sys.stdout.write(json.dumps({"before": before, "after": after}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
