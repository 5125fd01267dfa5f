"""An export run as a child process, for the window: ``codetune-studio export`` with progress.

The window never merges a model in its own process (minutes of GIL-holding work and gigabytes of
memory). It runs the same command a terminal would, through ``python_module_command`` and the
allow-listed child environment, in its own process group, and reads its lines: progress
(``[ 42%] message`` on stderr) and the verdict (stdout). :meth:`ExportJob.events` is a generator,
so the window's ``run_in_thread`` delivers each event on the GUI thread; :meth:`ExportJob.cancel`
stops the whole process group (export and verification children alike).
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Final

from codetune_studio.core.child_cmd import python_module_command
from codetune_studio.core.child_env import child_environment
from codetune_studio.core.child_proc import stop_process_group

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from codetune_studio.services.export import ExportOptions

__all__ = ["ExportEvent", "ExportJob", "export_command"]

_PROGRESS = re.compile(r"^\[\s*(\d+)%\] (.*)$")
_GRACE_S: Final = 5.0
_POLL_S: Final = 0.2


@dataclass(frozen=True, slots=True)
class ExportEvent:
    """One line from the export child.

    Attributes:
        kind: ``progress``, ``output`` (a stdout line), ``error`` (an ``error:`` line), ``log``
            (any other stderr line), ``tick`` (nothing new; a cancellation point) or
            ``finished`` (``message`` is the exit status, ``cancelled`` or the deadline).
        message: The text.
        fraction: Progress from 0 to 1, for ``progress``.
    """

    kind: str
    message: str
    fraction: float = 0.0


def export_command(
    model: str, options: ExportOptions, *, data_dir: Path, offline: bool = False
) -> list[str]:
    """The ``codetune-studio export`` command line for ``options``."""
    args = ["--data-dir", str(data_dir), "export", model, "--out", str(options.out)]
    args += ["--format", options.format, "--dtype", options.dtype]
    args += ["--gguf-type", options.gguf_type]
    if options.ollama:
        args.append("--ollama")
    if options.push:
        args += ["--push", options.push]
        if options.private:
            args.append("--private")
    if not options.verify:
        args.append("--no-verify")
    if offline:
        args.append("--offline")
    return python_module_command("codetune_studio", *args)


class ExportJob:
    """One export child process.

    Args:
        argv: Its command line (see :func:`export_command`).
        database_url: The database the child records against (passed in its environment, never
            on the command line where ``ps`` shows it).
        deadline_s: Seconds it may run before it is stopped.
    """

    def __init__(
        self, argv: list[str], *, database_url: str | None = None, deadline_s: float = 7200.0
    ) -> None:
        self._argv = argv
        self._database_url = database_url
        self._deadline_s = deadline_s
        self._cancelled = threading.Event()
        self._lines: queue.Queue[tuple[str, str] | None] = queue.Queue()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Ask the job to stop; :meth:`events` stops the process group at its next poll."""
        self._cancelled.set()

    def events(self) -> Iterator[ExportEvent]:
        """Start the child and yield its events until it ends (last: ``finished``)."""
        extra = {"PYTHONUNBUFFERED": "1"}
        if self._database_url:
            extra["CODETUNE_DATABASE_URL"] = self._database_url
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self._argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_environment(extra),
            start_new_session=os.name == "posix",
        )
        readers = [
            threading.Thread(target=self._read, args=(stream, kind), daemon=True)
            for stream, kind in ((proc.stdout, "out"), (proc.stderr, "err"))
        ]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + self._deadline_s
        open_streams = len(readers)
        try:
            while open_streams:
                if self.cancelled or time.monotonic() > deadline:
                    _stop(proc)
                try:
                    item = self._lines.get(timeout=_POLL_S)
                except queue.Empty:
                    yield ExportEvent("tick", "")  # a cancellation point for the caller
                    continue
                if item is None:
                    open_streams -= 1
                    continue
                yield _event(*item)
            status = proc.wait()
        finally:
            _stop(proc)
            for reader in readers:
                reader.join(timeout=_GRACE_S)
        if self.cancelled:
            yield ExportEvent("finished", "cancelled")
        elif time.monotonic() > deadline:
            yield ExportEvent("finished", f"stopped after {self._deadline_s:g} s")
        else:
            yield ExportEvent("finished", str(status))

    def _read(self, stream: IO[bytes] | None, kind: str) -> None:
        if stream is None:
            self._lines.put(None)
            return
        with stream:
            for raw in stream:
                self._lines.put((kind, raw.decode("utf-8", "replace").rstrip("\n")))
        self._lines.put(None)


def _event(kind: str, line: str) -> ExportEvent:
    if kind == "err":
        if match := _PROGRESS.match(line):
            return ExportEvent("progress", match.group(2), int(match.group(1)) / 100)
        if line.startswith("error: "):
            return ExportEvent("error", line.removeprefix("error: "))
        return ExportEvent("log", line)
    return ExportEvent("output", line)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the child's whole process group: TERM, then KILL after a grace period."""
    stop_process_group(proc, _GRACE_S)
