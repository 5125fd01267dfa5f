"""Hosting one training worker process from the window.

A :class:`RunHost` lives in its own ``QThread``. It starts the worker
(``python -m codetune_studio.worker``) in a session of its own, with stdout and stderr going to
files in the run's folder, and tails those files: stdout carries one JSON event per line
(``core.events``), stderr the worker's log. Writing the pipes to files rather than to the window
is what lets a run outlive the window: the user may close the studio and leave it training, and
the worker never meets a broken pipe. Commands (``{"cmd": "stop"}``, ``pause``, ``resume``) go to
the worker's stdin.

Stopping escalates the way qutebrowser's ``GUIProcess`` separates terminate from kill: ask
politely, then after a grace period terminate, then kill. A worker that dies without reporting a
result (a native crash, the kernel's OOM killer, ``os._exit``) becomes a FAILED run with a
readable reason, recorded in the database, while the window stays up.

:class:`RunController` is the GUI-thread face of a host: it owns the thread and forwards requests
and signals across it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from codetune_studio.core.child_env import child_environment
from codetune_studio.core.errors import CodetuneError, StorageError
from codetune_studio.core.events import (
    Event,
    LogRecorded,
    RunFinished,
    RunStarted,
    decode_event,
)
from codetune_studio.core.status import RunStatus

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.ui.studio_services import WorkerLaunch

__all__ = ["RunController", "RunHost", "RunOutcome", "describe_exit"]

logger = logging.getLogger(__name__)

_OOM_MARKERS = ("out of memory", "outofmemoryerror", "cannot allocate memory", "memoryerror")
_TAIL_LINES = 20


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a hosted run ended.

    Attributes:
        run_id: The run.
        status: FINISHED, CANCELLED or FAILED.
        reason: Why it failed or how it was stopped, in words a user understands.
        exit_code: The worker's exit status (negative: the signal that killed it).
        detached: The window let go of the run, which goes on in the background.
    """

    run_id: int
    status: RunStatus
    reason: str | None
    exit_code: int | None
    detached: bool = False


def describe_exit(exit_code: int, stderr_tail: list[str]) -> str:
    """Explain why a worker ended without reporting a result.

    Args:
        exit_code: Its exit status; negative for the signal that killed it (POSIX).
        stderr_tail: Its last log lines.

    Returns:
        One or two sentences for the user.
    """
    tail = " ".join(stderr_tail[-3:]).strip()
    oom = any(marker in tail.lower() for marker in _OOM_MARKERS)
    if oom:
        reason = (
            "The training process ran out of memory. Lower the batch size or the sequence "
            "length, or enable gradient checkpointing."
        )
    elif exit_code in (-signal.SIGKILL, 128 + signal.SIGKILL):
        reason = (
            "The training process was killed (SIGKILL), most often by the system when memory "
            "runs out. Lower the batch size or the sequence length and try again."
        )
    elif exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        reason = f"The training process crashed ({name})."
    elif exit_code == 0:
        reason = "The training process ended without reporting a result."
    else:
        reason = f"The training process stopped unexpectedly (exit code {exit_code})."
    if tail and not oom:
        reason += f" Last message: {tail[-300:]}"
    return reason


class _Tail:
    """Reads the complete lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._handle: IO[bytes] | None = None
        self._partial = b""

    def read_lines(self, *, final: bool = False) -> list[str]:
        if self._handle is None:
            try:
                self._handle = self._path.open("rb")
            except FileNotFoundError:
                return []
        data = self._partial + self._handle.read()
        lines = data.split(b"\n")
        self._partial = b"" if final else lines.pop()
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines if line.strip()]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _log_text(line: str) -> str:
    """A stderr line as the log panel shows it; JSON log records are flattened."""
    if line.startswith("{"):
        with contextlib.suppress(ValueError):
            record: Any = json.loads(line)
            if isinstance(record, dict) and "message" in record:
                level = record.get("level") or record.get("levelname") or "INFO"
                return f"{level} {record['message']}"
    return line


class RunHost(QObject):
    """Starts one worker process and relays what it reports; lives in its own thread.

    Args:
        run_id: The run's database id.
        launch: How to start the worker.
        spool_dir: Where its stdout and stderr files go (the run's folder).
        experiments: Records a FAILED (or forcibly stopped) run the worker could not record
            itself; ``None`` records nothing.
        stop_grace_s: How long a stop request may take before the worker is terminated.
        terminate_grace_s: How long termination may take before the worker is killed.
        poll_ms: How often the output files are read.
    """

    started = Signal(int)  # the worker's pid
    events_received = Signal(list)  # list[Event], in order, a batch per poll
    log_received = Signal(list)  # list[str]
    finished = Signal(object)  # RunOutcome

    def __init__(
        self,
        run_id: int,
        launch: WorkerLaunch,
        spool_dir: Path,
        *,
        experiments: ExperimentService | None = None,
        stop_grace_s: float = 30.0,
        terminate_grace_s: float = 5.0,
        poll_ms: int = 100,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self._launch = launch
        self._spool = spool_dir
        self._experiments = experiments
        self._stop_grace_ms = int(stop_grace_s * 1000)
        self._terminate_grace_ms = int(terminate_grace_s * 1000)
        self._poll_ms = poll_ms
        self._process: subprocess.Popen[bytes] | None = None
        self._events = _Tail(spool_dir / "events.jsonl")
        self._stderr = _Tail(spool_dir / "worker.log")
        self._stderr_tail: list[str] = []
        self._result: RunFinished | None = None
        self._stop_requested = False
        self._escalated = ""
        self._timer: QTimer | None = None
        self._done = False

    # --- requests (queued from the GUI thread) ------------------------------------------------

    @Slot()
    def start(self) -> None:
        """Start the worker and begin reading what it writes."""
        self._spool.mkdir(parents=True, exist_ok=True)
        # An allow-list: the worker gets what it needs (the database URL...) explicitly through
        # the launch, never the studio's API keys or cloud credentials.
        env = child_environment(self._launch.env)
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":  # pragma: no cover - POSIX CI
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True  # a closing window or Ctrl+C must not reach it
        try:
            with (
                (self._spool / "events.jsonl").open("wb") as out,
                (self._spool / "worker.log").open("wb") as err,
            ):
                self._process = subprocess.Popen(  # noqa: S603 - our own worker command line
                    self._launch.argv,
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    cwd=self._launch.cwd,
                    env=env,
                    **kwargs,
                )
        except OSError as exc:
            reason = f"The training process could not start: {exc}"
            self._record(RunStatus.FAILED, reason)
            self._finish(RunStatus.FAILED, reason, None)
            return
        logger.info("run %s: worker started, pid %s", self.run_id, self._process.pid)
        self._record_worker(self._process.pid)
        self.started.emit(self._process.pid)
        self._timer = QTimer(self)
        self._timer.setInterval(self._poll_ms)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._timer.start()

    @Slot()
    def request_stop(self) -> None:
        """Ask the worker to stop; terminate and then kill it if it does not."""
        if self._process is None or self._done or self._stop_requested:
            return
        self._stop_requested = True
        self._send({"cmd": "stop"})
        QTimer.singleShot(self._stop_grace_ms, self._escalate_terminate)

    @Slot()
    def request_pause(self) -> None:
        """Ask the worker to pause between steps."""
        self._send({"cmd": "pause"})

    @Slot()
    def request_resume(self) -> None:
        """Ask a paused worker to carry on."""
        self._send({"cmd": "resume"})

    @Slot()
    def detach(self) -> None:
        """Let go of the worker: it trains on in the background and records itself."""
        if self._done:
            return
        self._poll()
        if self._is_done():  # the poll may have found it ended
            return
        self._done = True
        if self._timer is not None:
            self._timer.stop()
        self._events.close()
        self._stderr.close()
        logger.info("run %s left running in the background", self.run_id)
        self.finished.emit(RunOutcome(self.run_id, RunStatus.RUNNING, None, None, detached=True))

    def _is_done(self) -> bool:
        return self._done

    # --- internals ----------------------------------------------------------------------------

    def _send(self, command: dict[str, str]) -> None:
        process = self._process
        if process is None or process.stdin is None or process.poll() is not None:
            return
        try:
            process.stdin.write((json.dumps(command) + "\n").encode())
            process.stdin.flush()
        except OSError:  # it is exiting; the exit code tells the story
            logger.debug("run %s: could not send %s", self.run_id, command, exc_info=True)

    def _escalate_terminate(self) -> None:
        if self._process is not None and not self._done and self._process.poll() is None:
            logger.warning("run %s: worker ignored stop; terminating it", self.run_id)
            self._escalated = "terminated"
            self._process.terminate()
            QTimer.singleShot(self._terminate_grace_ms, self._escalate_kill)

    def _escalate_kill(self) -> None:
        if self._process is not None and not self._done and self._process.poll() is None:
            logger.warning("run %s: worker ignored terminate; killing it", self.run_id)
            self._escalated = "killed"
            self._process.kill()

    @Slot()
    def _on_timer_timeout(self) -> None:
        self._poll()

    def _poll(self) -> None:
        process = self._process
        if process is None or self._done:
            return
        exit_code = process.poll()
        final = exit_code is not None
        self._relay(final=final)
        if exit_code is not None:
            self._on_exit(exit_code)

    def _relay(self, *, final: bool) -> None:
        events: list[Event] = []
        for line in self._events.read_lines(final=final):
            try:
                event = decode_event(line)
            except ValueError:
                # A stray print in the worker or a library: show it, don't choke on it.
                events.append(LogRecorded("INFO", line))
                continue
            if isinstance(event, RunFinished):
                self._result = event
            events.append(event)
        if events:
            self.events_received.emit(events)
        logs = [_log_text(line) for line in self._stderr.read_lines(final=final)]
        if logs:
            self._stderr_tail = (self._stderr_tail + logs)[-_TAIL_LINES:]
            self.log_received.emit(logs)

    def _on_exit(self, exit_code: int) -> None:
        if self._result is not None:
            status, reason = self._result.status, self._result.error
        elif self._stop_requested:
            status = RunStatus.CANCELLED
            reason = (
                f"Stopped: the worker did not stop in time and was {self._escalated}."
                if self._escalated
                else "Stopped before it reported a result."
            )
        else:
            status, reason = RunStatus.FAILED, describe_exit(exit_code, self._stderr_tail)
        self._record(status, reason)
        self._finish(status, reason, exit_code)

    def _record_worker(self, pid: int) -> None:
        """Record the worker's pid and log, so a worker killed during start-up is noticed at once.

        This runs in the host's thread, never the GUI's.
        """
        if self._experiments is None:
            return
        try:
            self._experiments.record_worker(
                self.run_id, pid=pid, log_path=str(self._spool / "worker.log")
            )
        except CodetuneError as exc:  # unreachable database, or the run ended meanwhile
            logger.warning("run %s: could not record its worker: %s", self.run_id, exc)

    def _record(self, status: RunStatus, reason: str | None) -> None:
        """Write the outcome the worker could not write itself (it died, or was killed).

        A worker records its own start, metrics and end; the host steps in only when the run
        is still open in the database once the process is gone.
        """
        if self._experiments is None:
            return
        try:
            run = self._experiments.get_run(self.run_id)
            if not run.status.is_terminal:
                self._experiments.finish_run(self.run_id, status, error=reason)
        except StorageError:
            logger.exception("run %s: could not record its end (%s)", self.run_id, status.value)

    def _finish(self, status: RunStatus, reason: str | None, exit_code: int | None) -> None:
        self._done = True
        if self._timer is not None:
            self._timer.stop()
        self._events.close()
        self._stderr.close()
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        logger.info("run %s ended: %s (%s)", self.run_id, status.value, reason or "no error")
        self.finished.emit(RunOutcome(self.run_id, status, reason, exit_code))


class RunController(QObject):
    """The GUI thread's handle on one hosted run: owns the host's thread, forwards requests.

    Args:
        host: The host; it is moved into a new thread.
        parent: The Qt parent.
    """

    started = Signal(int)
    events_received = Signal(list)
    log_received = Signal(list)
    finished = Signal(object)  # RunOutcome
    _stop_requested = Signal()
    _pause_requested = Signal()
    _resume_requested = Signal()
    _detach_requested = Signal()

    def __init__(self, host: RunHost, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.run_id = host.run_id
        self.paused = False
        self.outcome: RunOutcome | None = None
        self.total_steps: int | None = None
        self._thread = QThread()
        self._thread.setObjectName(f"run-host-{host.run_id}")
        host.moveToThread(self._thread)
        # Deferred deletes of an object in a thread are processed as that thread ends.
        self._thread.finished.connect(host.deleteLater)
        self._connect_signals()

    def _connect_signals(self) -> None:
        self._thread.started.connect(self.host.start)
        self._stop_requested.connect(self.host.request_stop)
        self._pause_requested.connect(self.host.request_pause)
        self._resume_requested.connect(self.host.request_resume)
        self._detach_requested.connect(self.host.detach)
        self.host.started.connect(self.started)
        self.host.events_received.connect(self._on_host_events_received)
        self.host.log_received.connect(self.log_received)
        self.host.finished.connect(self._on_host_finished)

    @property
    def running(self) -> bool:
        """Whether the run has not ended (or been let go) yet."""
        return self.outcome is None

    def start(self) -> None:
        """Start the host's thread, which starts the worker."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the run to stop (escalating to terminate, then kill)."""
        self._stop_requested.emit()

    def set_paused(self, paused: bool) -> None:
        """Pause or resume the run."""
        self.paused = paused
        (self._pause_requested if paused else self._resume_requested).emit()

    def detach(self) -> None:
        """Let the run go on in the background without the window."""
        self._detach_requested.emit()

    def wait(self, timeout_ms: int = 5000) -> bool:
        """Wait for the host's thread to end; returns whether it did."""
        if not self._thread.isRunning():
            return True
        return bool(self._thread.wait(timeout_ms))

    @Slot(list)
    def _on_host_events_received(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, RunStarted):
                self.total_steps = event.total_steps
        self.events_received.emit(events)

    @Slot(object)
    def _on_host_finished(self, outcome: RunOutcome) -> None:
        self.outcome = outcome
        self._thread.quit()
        self._thread.wait(5000)
        self.finished.emit(outcome)
