from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from codetune_studio.core.child_proc import stop_process_group

# A child that ignores SIGTERM and leaves a grandchild behind: only a group KILL ends both.
_STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open(sys.argv[1], "w").write(str(grandchild.pid))
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except FileNotFoundError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def test_stopping_a_stubborn_child_also_ends_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    child = subprocess.Popen(
        [sys.executable, "-c", _STUBBORN, str(pid_file)], start_new_session=True
    )
    while not pid_file.exists() or not pid_file.read_text():
        assert child.poll() is None, "the child died before starting its grandchild"
        time.sleep(0.01)
    grandchild = int(pid_file.read_text())

    stop_process_group(child, grace_s=0.5)

    assert child.returncode == -9
    # SIGKILL is delivered asynchronously: give the grandchild a moment to be gone.
    deadline = time.monotonic() + 30
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(grandchild)
