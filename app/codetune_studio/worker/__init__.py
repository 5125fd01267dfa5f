"""The training child process: ``python -m codetune_studio.worker --recipe r.json --run-id 42``.

It runs the engine on one recipe and speaks a line protocol with whoever started it (the
window's run host, or a person in a terminal):

* **stdout**: one JSON event per line (:func:`codetune_studio.core.events.encode_event`), and
  nothing else. Anything else that writes to file descriptor 1 (a library's ``print``, C code)
  is redirected to stderr, so the event stream cannot be corrupted.
* **stderr**: log records as JSON lines (``{"time", "level", "logger", "message"}``).
* **stdin**: commands as JSON lines: ``{"cmd": "stop"}``, ``{"cmd": "pause"}``,
  ``{"cmd": "resume"}``. End of input is not a stop (a host may close the pipe).
* **signals**: SIGINT/SIGTERM cancel the run, which checkpoints and ends as CANCELLED; a second
  signal exits at once.
* **exit status**: 0 finished, 1 failed, 130 cancelled, 2 bad arguments or recipe.

Under ``torchrun``/``accelerate launch`` every process runs this; rank 0 alone prints events
and reads commands, and the engine shares a stop between the processes.
"""

from __future__ import annotations

__all__ = ["EXIT_CANCELLED", "EXIT_FAILED", "EXIT_FINISHED", "exit_code_for", "parse_command"]

import json

from codetune_studio.core.status import RunStatus

EXIT_FINISHED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 130
COMMANDS = frozenset({"stop", "pause", "resume"})


def exit_code_for(status: RunStatus) -> int:
    """The process exit status for how a run ended."""
    if status is RunStatus.FINISHED:
        return EXIT_FINISHED
    if status is RunStatus.CANCELLED:
        return EXIT_CANCELLED
    return EXIT_FAILED


def parse_command(line: str) -> str | None:
    """The command in one stdin line, or ``None`` if the line is not a known command.

    Args:
        line: A JSON object such as ``{"cmd": "stop"}``; a bare word (``stop``) is accepted
            too, for people typing into a terminal.

    Returns:
        ``"stop"``, ``"pause"`` or ``"resume"``, or ``None``.
    """
    text = line.strip()
    if not text:
        return None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        payload = {"cmd": text}
    command = payload.get("cmd") if isinstance(payload, dict) else None
    return command if command in COMMANDS else None
