"""Running generated code with its tests in a sandbox: one child process per sample.

:class:`Sandbox` starts ``python -m codetune_studio.worker.sandbox`` in a fresh temporary folder
with an allow-listed environment (no API keys, tokens or database URLs), under a wall-clock time
limit, and kills its whole process tree when the limit passes. Where ``unshare`` works, the child
also gets no network and its own PID namespace, so every process it starts dies with it:
as root ``unshare --net --pid --fork --kill-child``, as an ordinary user
``unshare --user --map-root-user --net --pid --fork --kill-child``. Elsewhere (macOS, Windows, a
container that forbids namespaces) it falls back to killing the process group, and
:attr:`Sandbox.isolation` says which one is in use, so results can report it.

Memory, CPU, output size and process count are limited inside the child (see
:mod:`codetune_studio.worker.sandbox`). An infinite loop, a fork bomb, ``sys.exit``, a segfault
and an output flood each end as a failed :class:`SandboxResult`, never as a hung evaluation.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codetune_studio.core.child_cmd import python_module_command
from codetune_studio.core.child_env import child_environment

__all__ = ["SANDBOX_MODULE", "Isolation", "Sandbox", "SandboxLimits", "SandboxResult"]

logger = logging.getLogger(__name__)

#: The child's module.
SANDBOX_MODULE = "codetune_studio.worker.sandbox"

#: How the sandbox keeps a program in: namespaces, or only a process group.
Isolation = Literal["namespaces", "user-namespaces", "process-group"]

_NOBODY = 65534
_KILL_ROUNDS = 50  # SIGKILL rounds for a process group until it is empty
_OUTPUT_SHOWN = 4000  # characters of a sample's output kept in results
#: Variables a sandboxed program sees; nothing else of the parent's environment reaches it.
_SANDBOX_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """What one sample may use.

    Attributes:
        time_s: Wall-clock seconds before the whole process tree is killed.
        cpu_s: CPU seconds (``RLIMIT_CPU``).
        memory_mb: Address space (``RLIMIT_AS``).
        output_bytes: Bytes of stdout and of stderr each (``RLIMIT_FSIZE``).
        processes: Processes the program may run at once (``RLIMIT_NPROC``).
    """

    time_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    output_bytes: int = 1_000_000
    processes: int = 32


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """How one program did.

    Attributes:
        passed: It ran to the end with every test passing.
        reason: ``passed``, ``failed`` (an assertion or an exception), ``timeout``,
            ``crashed`` (a signal), ``exited`` (it left before its tests ended) or
            ``output_limit``.
        output: The start of its stdout and stderr, for the drill-down.
        seconds: How long it ran.
    """

    passed: bool
    reason: str
    output: str
    seconds: float


@functools.cache
def _detect_isolation() -> Isolation:
    """Probe once whether ``unshare`` gives this process network and PID namespaces."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return "process-group"
    root = os.geteuid() == 0
    prefix = _unshare_prefix("namespaces" if root else "user-namespaces")
    try:
        probe = subprocess.run(  # noqa: S603 - fixed argv
            [*prefix, "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "process-group"
    if probe.returncode != 0:
        logger.info("unshare is not allowed here; the sandbox kills a process group instead")
        return "process-group"
    return "namespaces" if root else "user-namespaces"


def _unshare_prefix(isolation: Isolation) -> list[str]:
    if isolation == "namespaces":
        return ["unshare", "--net", "--pid", "--fork", "--kill-child", "--"]
    if isolation == "user-namespaces":
        return [
            "unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--"
        ]  # fmt: skip
    return []


def _own_processes() -> int:
    """How many processes this user runs now (``RLIMIT_NPROC`` counts them all)."""
    uid = os.getuid()
    count = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    count += entry.stat().st_uid == uid
    return count


class Sandbox:
    """Runs programs one at a time under :class:`SandboxLimits`.

    Args:
        limits: What each program may use.
        isolation: Forces an isolation level; probed once per process by default.
    """

    def __init__(self, limits: SandboxLimits | None = None, isolation: Isolation | None = None):
        self.limits = limits or SandboxLimits()
        self.isolation: Isolation = isolation or _detect_isolation()

    def run(self, program: str) -> SandboxResult:
        """Run ``program`` (completion and tests in one source) and say whether it passed."""
        with tempfile.TemporaryDirectory(prefix="codetune-sandbox-") as folder:
            return self._run_in(Path(folder), program)

    def _run_in(self, folder: Path, program: str) -> SandboxResult:
        drop = sys.platform != "win32" and os.geteuid() == 0
        program_file = folder / "program.py"
        program_file.write_text(program, encoding="utf-8")
        result_file = folder / "result"
        if drop:
            os.chown(folder, _NOBODY, _NOBODY)  # the program may write in its own folder
        token = secrets.token_hex(16)
        argv = self._argv(program_file, result_file, drop=drop)
        start = time.monotonic()
        with (folder / "stdout").open("wb") as out, (folder / "stderr").open("wb") as err:
            process = subprocess.Popen(  # noqa: S603 - our own sandbox command line
                argv,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=folder,
                env=self._environment(folder),
                start_new_session=True,  # one group: the time limit kills all of it
            )
            timed_out = self._wait(process, token)
        seconds = time.monotonic() - start
        output = _read_output(folder)
        passed = (
            not timed_out
            and process.returncode == 0
            and result_file.is_file()
            and result_file.read_text(encoding="utf-8", errors="replace") == token
        )
        flooded = any(
            (folder / name).stat().st_size >= self.limits.output_bytes
            for name in ("stdout", "stderr")
        )
        reason = "output_limit" if flooded and not passed else None
        reason = reason or self._reason(passed, timed_out, process.returncode, output)
        return SandboxResult(passed, reason, output, seconds)

    def _argv(self, program: Path, result: Path, *, drop: bool) -> list[str]:
        limits = self.limits
        processes = limits.processes if drop else _own_processes() + limits.processes
        child = python_module_command(
            SANDBOX_MODULE,
            str(program),
            str(result),
            f"--memory-mb={limits.memory_mb}",
            f"--cpu-s={limits.cpu_s}",
            f"--output-bytes={limits.output_bytes}",
            f"--max-processes={processes}",
            *(["--drop-privileges"] if drop else []),
            isolated=True,
        )
        return [*_unshare_prefix(self.isolation), *child]

    def _environment(self, folder: Path) -> dict[str, str]:
        inherited = {name: os.environ[name] for name in _SANDBOX_ENV if name in os.environ}
        extra = {"HOME": str(folder), "TMPDIR": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}
        return child_environment(extra, source=inherited)

    def _wait(self, process: subprocess.Popen[bytes], token: str) -> bool:
        """Hand over the token, wait up to the time limit, kill the tree; True if timed out."""
        assert process.stdin is not None  # noqa: S101 - PIPE was asked for
        with contextlib.suppress(OSError):
            process.stdin.write((token + "\n").encode())
            process.stdin.close()
        try:
            process.wait(timeout=self.limits.time_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        else:
            timed_out = False
        # Always: a finished first process may leave children behind (a fork bomb's), and a
        # child forked while the first kill was delivered escapes it, so repeat until none is left.
        for _ in range(_KILL_ROUNDS):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                break
            if process.poll() is None:
                process.wait()
            time.sleep(0.02)
        process.wait()
        return timed_out

    @staticmethod
    def _reason(passed: bool, timed_out: bool, code: int, output: str) -> str:
        if passed:
            return "passed"
        if timed_out:
            return "timeout"
        if code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            return "output_limit"
        if code < 0 or code > 128:
            return "crashed"
        if code == 0 or "called sys.exit" in output:
            return "exited"
        return "failed"


def _read_output(folder: Path) -> str:
    parts = []
    for name in ("stdout", "stderr"):
        with contextlib.suppress(OSError), (folder / name).open("rb") as handle:
            text = handle.read(_OUTPUT_SHOWN).decode("utf-8", "replace")
            if text.strip():
                parts.append(text)
    return "\n".join(parts)[:_OUTPUT_SHOWN]
