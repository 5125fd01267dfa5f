"""Running a tool where it cannot hurt the caller: in a child process, with a deadline.

:func:`run_isolated` starts ``python -m codetune_studio.plugins.runner``, sends it the inputs,
the tool's settings and only the API keys the tool declared, and reads one result per input as
JSON lines. A tool that raises, hangs past the deadline (terminated, then killed), or takes its
process down (``os._exit``, a segfault) ends as a :class:`ToolResult` whose ``error`` says so,
and the caller carries on. Results that arrived before a crash or timeout are kept.

Why a subprocess rather than ``multiprocessing``: the child's environment is built explicitly,
so API keys in environment variables (``OPENAI_API_KEY``...) do not leak to a tool that did not
declare them, and the child does not re-import the caller's ``__main__`` (the whole GUI).

:func:`run_in_process` runs a tool in the calling process with the same error handling; the
runner uses it, and so can trusted callers that need no isolation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections import deque
from typing import IO, TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from codetune_studio.core.child_cmd import python_module_command
from codetune_studio.core.child_env import child_environment
from codetune_studio.core.child_proc import signal_process_group
from codetune_studio.core.errors import PluginError
from codetune_studio.core.redact import known_secret_values, scrub
from codetune_studio.plugins.api import ToolContext, ToolInputs, ToolResult

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from pydantic import SecretStr

    from codetune_studio.plugins.api import BaseTool
    from codetune_studio.plugins.spec import PluginSpec

__all__ = ["RunnerRequest", "run_in_process", "run_isolated"]

logger = logging.getLogger(__name__)

#: Seconds a tool gets to exit after SIGTERM before it is killed.
DEFAULT_GRACE_S = 2.0
#: Address space a tool's process may use: far above what an analyzer or an API client needs,
#: far below what takes a workstation down.
DEFAULT_MEMORY_LIMIT_BYTES = 8 * 1024**3
#: The longest stderr line kept from a tool; a flood without newlines is read in pieces.
_MAX_STDERR_LINE = 64 * 1024


class RunnerRequest(BaseModel):
    """What the parent sends the runner on its standard input (one JSON document).

    Attributes:
        plugin: The tool's name, for messages.
        factory: The tool class, ``"module:attr"``.
        inputs: What to analyse, in order.
        secrets: The declared keys' values (plain text only inside this pipe).
        settings: The tool's options.
        deadline_epoch: ``time.time()`` by which the whole batch must be done.
        memory_limit_bytes: The child's address-space cap (POSIX), ``None`` for none.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    plugin: str
    factory: str
    inputs: tuple[ToolInputs, ...]
    secrets: dict[str, str]
    settings: dict[str, str]
    deadline_epoch: float | None
    memory_limit_bytes: int | None = None


def run_in_process(tool: BaseTool, inputs: ToolInputs, context: ToolContext) -> ToolResult:
    """Validate and run ``tool`` on ``inputs`` here; every failure becomes an error result.

    Args:
        tool: The tool instance.
        inputs: What to analyse.
        context: Keys, settings and deadline.

    Returns:
        The tool's result with path, row and duration filled in; on failure a result whose
        ``error`` is the tool's :class:`PluginError` message or a one-line crash summary.
    """
    started = time.perf_counter()
    try:
        tool.validate_inputs(inputs)
        result = tool.run(inputs, context)
        if not isinstance(result, ToolResult):
            raise PluginError(f"{tool.name} returned {type(result).__name__}, not a ToolResult")  # noqa: TRY301 - one path for every failure
    except PluginError as exc:
        result = _error_result(tool.name, tool.version, inputs, str(exc))
    except Exception as exc:  # a tool's bug must not reach the caller
        logger.warning("%s failed on %s", tool.name, inputs.path, exc_info=True)
        result = _error_result(
            tool.name, tool.version, inputs, f"{tool.name} failed: {_one_line(exc)}"
        )
    update: dict[str, object] = {"duration_s": round(time.perf_counter() - started, 6)}
    if result.path is None:
        update["path"] = inputs.path
    if result.row is None and inputs.row is not None:
        update["row"] = inputs.row
    return result.model_copy(update=update)


def run_isolated(
    spec: PluginSpec,
    inputs: Sequence[ToolInputs],
    *,
    secrets: Mapping[str, SecretStr] | None = None,
    settings: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
    cancelled: Callable[[], bool] | None = None,
    on_result: Callable[[ToolResult], None] | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
) -> list[ToolResult]:
    """Run the tool a spec names over ``inputs`` in a child process, within ``timeout_s``.

    Blocks the calling thread (call it from a worker thread in the GUI) and never raises for
    anything the tool does.

    Args:
        spec: The plugin to run.
        inputs: What to analyse; one result comes back per input, in the same order.
        secrets: Keys the caller can offer; only those in ``spec.secrets`` reach the tool.
        settings: The tool's options.
        timeout_s: Overall deadline for the whole batch, start-up included.
        cancelled: Polled about ten times a second; returning ``True`` stops the child.
        on_result: Called (in this thread) with each result as it arrives, for progress.
        grace_s: How long a stopped child gets between SIGTERM and SIGKILL.
        memory_limit_bytes: The child's address-space cap; a tool over it gets
            ``MemoryError`` and ends as an error result.

    Returns:
        One :class:`ToolResult` per input. Inputs the tool never finished carry an ``error``
        saying whether it timed out, was cancelled or crashed.
    """
    if not inputs:
        return []
    if not math.isfinite(timeout_s) or timeout_s <= 0:
        raise ValueError(f"timeout_s must be a finite number of seconds above 0, got {timeout_s}")
    offered = dict(secrets or {})
    passed = {name: offered[name].get_secret_value() for name in spec.secrets if name in offered}
    withheld = sorted(set(offered) - set(spec.secrets))
    if withheld:
        logger.debug("not passing undeclared keys %s to %s", withheld, spec.name)
    request = RunnerRequest(
        plugin=spec.name,
        factory=spec.factory,
        inputs=tuple(inputs),
        secrets=passed,
        settings=dict(settings or {}),
        deadline_epoch=time.time() + timeout_s,
        memory_limit_bytes=memory_limit_bytes,
    )
    session = _ChildSession(spec, list(passed.values()), grace_s)
    try:
        session.start(request.model_dump_json().encode("utf-8"))
    except OSError as exc:
        message = f"could not start {spec.name}: {_one_line(exc)}"
        return [_error_result(spec.name, spec.version, item, message) for item in inputs]
    outcome = session.collect(time.monotonic() + timeout_s, cancelled, on_result)
    failure = session.failure_message(outcome, timeout_s)
    results: list[ToolResult] = []
    for index, item in enumerate(inputs):
        result = session.results.get(index)
        if result is None:
            result = _error_result(spec.name, spec.version, item, failure)
            if on_result is not None:
                on_result(result)
        results.append(result)
    return results


class _ChildSession:
    """One runner child: its pipes, reader threads and the results read so far."""

    def __init__(self, spec: PluginSpec, secret_values: list[str], grace_s: float) -> None:
        self.spec = spec
        self.results: dict[int, ToolResult] = {}
        # What the tool was given and what the studio's environment holds: neither may reach
        # a stored error or a log line.
        self._secret_values = [value for value in secret_values if value]
        self._secret_values += known_secret_values()
        self._grace_s = grace_s
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._threads: list[threading.Thread] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, payload: bytes) -> None:
        command = python_module_command("codetune_studio.plugins.runner", isolated=True)
        # A session of its own, so stopping the tool also stops anything it started.
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter (or frozen studio) and module
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_child_environment(),
            start_new_session=os.name == "posix",
        )
        assert self._proc.stdin is not None  # noqa: S101 - guaranteed by stdin=PIPE
        assert self._proc.stdout is not None  # noqa: S101
        assert self._proc.stderr is not None  # noqa: S101
        self._spawn(self._write, self._proc.stdin, payload)
        self._spawn(self._read_stdout, self._proc.stdout)
        self._spawn(self._read_stderr, self._proc.stderr)

    def collect(
        self,
        deadline: float,
        cancelled: Callable[[], bool] | None,
        on_result: Callable[[ToolResult], None] | None,
    ) -> str:
        """Read results until the child closes its output; return how the run ended."""
        outcome = "finished"
        while True:
            if cancelled is not None and cancelled():
                outcome = "cancelled"
                break
            wait = min(0.1, deadline - time.monotonic())
            if wait <= 0:
                outcome = "timeout"
                break
            try:
                line = self._lines.get(timeout=wait)
            except queue.Empty:
                continue
            if line is None:
                break
            self._accept(line, on_result)
        self._finish(stop=outcome != "finished")
        return outcome

    def failure_message(self, outcome: str, timeout_s: float) -> str:
        name = self.spec.name
        if outcome == "timeout":
            return f"{name} did not finish within {timeout_s:g} s and was stopped"
        if outcome == "cancelled":
            return f"{name} was cancelled"
        code = self._proc.returncode if self._proc is not None else None
        if code is not None and code < 0:
            try:
                reason = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                reason = f"killed by signal {-code}"
        else:
            reason = f"exited with status {code}"
        hint = self._last_stderr_line()
        return f"{name} crashed ({reason})" + (f": {hint}" if hint else "")

    def _accept(self, line: bytes, on_result: Callable[[ToolResult], None] | None) -> None:
        try:
            message = json.loads(line)
            index = int(message["index"])
            result = ToolResult.model_validate(message["result"])
        except (ValueError, KeyError, TypeError, ValidationError):
            # Only the runner writes to this pipe, but never trust a child blindly.
            logger.debug("ignoring a malformed line from %s", self.spec.name)
            return
        if result.error:
            result = result.model_copy(update={"error": self._scrub(result.error)})
        self.results[index] = result
        if on_result is not None:
            on_result(result)

    def _finish(self, *, stop: bool) -> None:
        proc = self._proc
        if proc is None:
            return
        if not stop:
            # The child closed its output; give it a moment to exit on its own.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self._grace_s)
        if proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self._grace_s)
            except subprocess.TimeoutExpired:
                logger.info("%s ignored SIGTERM; killing it", self.spec.name)
                self._signal(signal.SIGKILL if os.name == "posix" else signal.SIGTERM)
                proc.wait()
        for thread in self._threads:
            thread.join(timeout=self._grace_s)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None:
            signal_process_group(self._proc, sig)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(
            target=target, args=args, daemon=True, name=f"plugin-{target.__name__}"
        )
        thread.start()
        self._threads.append(thread)

    @staticmethod
    def _write(stream: IO[bytes], payload: bytes) -> None:
        # A child that dies before reading its request closes the pipe: that is reported as a
        # crash by the exit status, not here.
        with contextlib.suppress(OSError):
            stream.write(payload)
            stream.close()

    def _read_stdout(self, stream: IO[bytes]) -> None:
        try:
            for line in stream:
                self._lines.put(line)
        finally:
            self._lines.put(None)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        # Bounded reads: a tool printing gigabytes without a newline cannot exhaust memory.
        for raw in iter(lambda: stream.readline(_MAX_STDERR_LINE), b""):
            text = self._scrub(raw.decode("utf-8", "replace").rstrip())
            if text:
                self._stderr_tail.append(text)
                logger.debug("[%s] %s", self.spec.name, text)

    def _last_stderr_line(self) -> str:
        lines = list(self._stderr_tail)
        # faulthandler's header names the crash; the stack lines after it do not.
        fatal = [line for line in lines if line.startswith("Fatal Python error")]
        if fatal:
            return fatal[-1][:300]
        for line in reversed(lines):
            if not line.startswith((" ", "Traceback", "Current thread", "Extension modules")):
                return line[:300]
        return ""

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secret_values)


def _child_environment() -> dict[str, str]:
    # An allow-list: a tool gets keys only through ToolContext.secrets, and only the ones it
    # declared; no database URL, cloud credential or token reaches it through the environment.
    # The runner and the tool write UTF-8 whatever the user's locale.
    return child_environment({"PYTHONIOENCODING": "utf-8", "PYTHONFAULTHANDLER": "1"})


def _error_result(plugin: str, version: str, inputs: ToolInputs, message: str) -> ToolResult:
    return ToolResult(
        plugin=plugin, plugin_version=version, path=inputs.path, row=inputs.row, error=message
    )


def _one_line(exc: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
