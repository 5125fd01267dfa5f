"""The eval sandbox's child: ``python -m codetune_studio.worker.sandbox PROGRAM RESULT``.

It runs one generated program with its tests under the limits the host asked for and reports a
pass only by writing a secret token, read from stdin before the program starts, to the result
file once the program ran to its end. A program that exits early (``sys.exit``, ``os._exit``),
crashes, loops or floods its output therefore can never look like a pass.

Limits, set here before the program runs (the host adds the time limit, the network and PID
namespaces and the scrubbed environment):

* ``RLIMIT_AS`` (memory), ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_FSIZE`` (output files, which is
  also what stops an output flood: stdout and stderr are files), ``RLIMIT_CORE`` 0;
* when started as root, the program runs as ``nobody`` with ``RLIMIT_NPROC``: root ignores the
  process limit, ``nobody`` does not, and this is what stops a fork bomb.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["NOBODY", "main"]

#: The unprivileged account a root host runs programs as (uid and gid).
NOBODY = 65534


def main(argv: Sequence[str] | None = None) -> int:
    """Run the program under limits; exit 0 with the token written only if it completed."""
    args = _parse_args(argv)
    token = sys.stdin.readline().strip()
    source = Path(args.program).read_text(encoding="utf-8")
    result = os.open(args.result, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    _limit(args)
    if args.drop_privileges:
        _become_nobody()
    namespace: dict[str, object] = {"__name__": "__main__", "__file__": args.program}
    try:
        code = compile(source, args.program, "exec")
        exec(code, namespace)  # noqa: S102 - running the code is the sandbox's purpose
    except SystemExit as exc:
        sys.stderr.write(f"the program called sys.exit({exc.code!r}) before its tests ended\n")
        return 1
    except BaseException:  # noqa: BLE001 - any failure of the program is a failed sample
        traceback.print_exc()
        return 1
    os.write(result, token.encode())
    os.close(result)
    sys.stdout.flush()
    return 0


def _limit(args: argparse.Namespace) -> None:
    import resource

    memory = args.memory_mb * 1024 * 1024
    limits = {
        resource.RLIMIT_AS: memory,
        resource.RLIMIT_CPU: args.cpu_s,
        resource.RLIMIT_FSIZE: args.output_bytes,
        resource.RLIMIT_CORE: 0,
    }
    if args.max_processes:
        limits[resource.RLIMIT_NPROC] = args.max_processes
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))


def _become_nobody() -> None:
    """Run as ``nobody`` (so ``RLIMIT_NPROC`` holds) yet still able to read Python's files.

    The interpreter may live under a folder only root can enter (``/root/.pyenv``), so the
    program keeps one capability, ``CAP_DAC_READ_SEARCH`` (read any file), and no other: it can
    import the standard library but cannot write outside its folder, and the process limit, which
    the kernel waives only for root and for holders of ``CAP_SYS_RESOURCE``, applies to it.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_keepcaps = 8
    libc.prctl(pr_set_keepcaps, 1, 0, 0, 0)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)

    class _Header(ctypes.Structure):
        _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))

    class _Data(ctypes.Structure):
        _fields_ = (
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        )

    cap_dac_read_search = 1 << 2
    header = _Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_Data * 2)()
    data[0].effective = data[0].permitted = cap_dac_read_search
    if libc.capset(ctypes.byref(header), data) != 0:
        # Not fatal: the program then runs as nobody without it (imports may fail).
        sys.stderr.write(f"sandbox: capset failed (errno {ctypes.get_errno()})\n")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m codetune_studio.worker.sandbox")
    parser.add_argument("program", help="the program file (completion and tests)")
    parser.add_argument("result", help="file that receives the token on success")
    parser.add_argument("--memory-mb", type=int, default=512)
    parser.add_argument("--cpu-s", type=int, default=10)
    parser.add_argument("--output-bytes", type=int, default=1_000_000)
    parser.add_argument("--max-processes", type=int, default=0, help="RLIMIT_NPROC (0: unset)")
    parser.add_argument("--drop-privileges", action="store_true", help="run as nobody")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
