"""The child side of :func:`codetune_studio.plugins.isolation.run_isolated`.

``python -m codetune_studio.plugins.runner`` reads a
:class:`~codetune_studio.plugins.isolation.RunnerRequest` from standard input, loads the tool,
runs it on each input and writes one JSON line ``{"index": i, "result": {...}}`` per input to
the original standard output. Everything else (the tool's prints, log records, tracebacks) goes
to standard error, so a chatty tool cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import IO

from pydantic import SecretStr, ValidationError

from codetune_studio.core.errors import PluginError
from codetune_studio.plugins.api import ToolContext, ToolResult
from codetune_studio.plugins.isolation import RunnerRequest, run_in_process
from codetune_studio.plugins.registry import load_tool_class

__all__ = ["main"]

logger = logging.getLogger(__name__)

_CHILD_MARGIN_S = 0.25


def main() -> int:
    """Serve one request; return the process exit status."""
    protocol = _take_stdout()
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        request = RunnerRequest.model_validate_json(sys.stdin.buffer.read())
    except ValidationError:
        logger.exception("malformed request")
        return 2
    _limit_memory(request.memory_limit_bytes)
    try:
        tool = load_tool_class(request.factory)()
    except PluginError as exc:
        _fail_all(protocol, request, str(exc))
        return 0
    except Exception as exc:  # a tool's constructor is third-party code
        logger.exception("could not create %s", request.plugin)
        _fail_all(
            protocol, request, f"could not create {request.plugin}: {type(exc).__name__}: {exc}"
        )
        return 0
    deadline = None
    if request.deadline_epoch is not None:
        remaining = request.deadline_epoch - time.time() - _CHILD_MARGIN_S
        deadline = time.monotonic() + max(0.0, remaining)
    context = ToolContext(
        secrets={name: SecretStr(value) for name, value in request.secrets.items()},
        settings=request.settings,
        deadline=deadline,
    )
    for index, inputs in enumerate(request.inputs):
        _send(protocol, index, run_in_process(tool, inputs, context))
    return 0


def _limit_memory(limit: int | None) -> None:
    """Cap this process's address space, so a runaway tool gets MemoryError, not the machine."""
    if limit is None or os.name != "posix":
        return
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _take_stdout() -> IO[str]:
    """Keep the real stdout for the protocol and point fd 1 (and ``sys.stdout``) at stderr."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol


def _send(protocol: IO[str], index: int, result: ToolResult) -> None:
    line = json.dumps({"index": index, "result": result.model_dump(mode="json")})
    protocol.write(line + "\n")
    protocol.flush()


def _fail_all(protocol: IO[str], request: RunnerRequest, message: str) -> None:
    for index, inputs in enumerate(request.inputs):
        result = ToolResult(plugin=request.plugin, path=inputs.path, row=inputs.row, error=message)
        _send(protocol, index, result)


if __name__ == "__main__":
    sys.exit(main())
