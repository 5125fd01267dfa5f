"""Stopping a child process together with everything it started.

Every child of the studio (training worker, plugin runner, generation, eval sandbox, export
probes, the queue runner) starts in a process group of its own, so that one signal reaches
the grandchildren too (``accelerate launch``'s ranks, a tokenizer's threads, a test's forks).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

__all__ = ["signal_process_group", "stop_process_group"]


def signal_process_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the child's whole process group; a child already gone is no error.

    Args:
        process: A child started with ``start_new_session=True`` (POSIX).
        sig: ``SIGTERM`` to ask, ``SIGKILL`` to insist. Windows has no groups here: ``SIGTERM``
            terminates the child, anything else kills it.
    """
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.name == "posix":
            os.killpg(process.pid, sig)
        elif sig == signal.SIGTERM:  # pragma: no cover - POSIX CI
            process.terminate()
        else:  # pragma: no cover - POSIX CI
            process.kill()


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """Ask the child's group to stop, wait ``grace_s``, then kill it and wait again.

    Args:
        process: A child started in its own process group.
        grace_s: How long it may take to exit after ``SIGTERM`` (and after ``SIGKILL``).
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        signal_process_group(process, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
