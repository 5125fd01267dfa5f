"""Generating from a trained model in a child process: resolving MODEL and hosting the child.

:func:`resolve_model` turns what a user types (a run id, ``v:ID`` for a model version, or a
folder) into a base model folder and an optional adapter folder. :class:`GenerationProcess`
starts ``python -m codetune_studio.worker.generate`` with the studio's allow-listed environment,
yields its events as they arrive, sends ``stop`` on request, enforces a deadline and kills the
child's whole process group when it must; a child that dies without saying why becomes a
:class:`~codetune_studio.core.errors.GenerationError` with a readable reason. Loading a model and
generating therefore never happen in the window's (or the CLI's) own process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from codetune_studio.core.child_cmd import python_module_command
from codetune_studio.core.child_env import child_environment
from codetune_studio.core.errors import CodetuneError, ConfigError
from codetune_studio.core.generation import (
    GenerationEvent,
    GenerationFailed,
    GenerationRequest,
    decode_generation_event,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from codetune_studio.services.experiments import ExperimentService

__all__ = [
    "GENERATE_MODULE",
    "GenerationError",
    "GenerationProcess",
    "ResolvedModel",
    "describe_death",
    "resolve_model",
]

logger = logging.getLogger(__name__)

#: The child's module.
GENERATE_MODULE = "codetune_studio.worker.generate"

_TAIL_LINES = 20
_OOM_MARKERS = ("out of memory", "outofmemoryerror", "cannot allocate memory", "memoryerror")


class GenerationError(CodetuneError):
    """Generation could not run or the generating process died."""


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model ready to load: the base, the adapter on top (if any) and how to name it.

    Attributes:
        base_model: Base model folder (or cached hub id).
        adapter: Adapter folder; ``None`` for a plain model (then base and tuned are the same).
        label: A short name for tables and pane titles.
        version_id: The model version, when it came from the database.
    """

    base_model: str
    adapter: Path | None
    label: str
    version_id: int | None = None


def resolve_model(
    value: str,
    *,
    experiments: ExperimentService | None,
    data_dir: Path,
    offline: bool = True,
    base_model: str | None = None,
) -> ResolvedModel:
    """Resolve a run id, ``v:ID`` or a folder into a :class:`ResolvedModel`.

    Args:
        value: ``42`` (the newest model version of run 42), ``v:7`` (model version 7), an adapter
            folder, or a full model folder.
        experiments: Where runs and model versions are recorded.
        data_dir: The studio's data folder (the starter model lives there).
        offline: Whether the network is off limits.
        base_model: Overrides the adapter's recorded base model.

    Raises:
        ConfigError: Nothing matches, or the folder holds neither a model nor an adapter.
    """
    text = value.strip()
    if text.startswith("v:") or text.isdigit():
        if experiments is None:
            raise ConfigError(f"{value}: looking up runs and model versions needs the database")
        return _from_database(text, experiments, data_dir, offline, base_model)
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise ConfigError(
            f"{value}: not a run id, a model version (v:ID) or a folder; "
            "`codetune-studio eval list` and `runs` show what exists"
        )
    return _from_folder(folder, data_dir, offline, base_model, label=folder.name)


def _from_database(
    text: str,
    experiments: ExperimentService,
    data_dir: Path,
    offline: bool,
    base_model: str | None,
) -> ResolvedModel:
    from codetune_studio.core.errors import NotFoundError

    if text.startswith("v:"):
        number = text[2:]
        if not number.isdigit():
            raise ConfigError(f"{text}: a model version is v: and a number, for example v:3")
        try:
            version = experiments.lineage(int(number))[0]
        except NotFoundError:
            raise ConfigError(f"{text}: no such model version") from None
    else:
        versions = experiments.list_model_versions(run_id=int(text))
        if not versions:
            raise ConfigError(f"run {text} has no model version (did it finish?)")
        version = versions[0]
    resolved = _from_folder(
        Path(version.path),
        data_dir,
        offline,
        base_model or version.base_model,
        label=f"v:{version.id} {version.name}",
    )
    return ResolvedModel(resolved.base_model, resolved.adapter, resolved.label, version.id)


def _from_folder(
    folder: Path, data_dir: Path, offline: bool, base_model: str | None, *, label: str
) -> ResolvedModel:
    from codetune_studio.engine.model_folder import (
        PICKLE_HINT_CLI,
        check_adapter_folder,
        check_model_folder,
    )
    from codetune_studio.engine.starter import resolve_model as resolve_base

    if (folder / "adapter_config.json").is_file():
        check_adapter_folder(folder)
        recorded = _adapter_base(folder)
        base = base_model or recorded
        if not base:
            raise ConfigError(f"{folder}: the adapter does not name its base model; pass one")
        resolved = resolve_base(
            base, data_dir=data_dir, offline=offline, pickle_hint=PICKLE_HINT_CLI
        )
        return ResolvedModel(str(resolved), folder, label)
    if (folder / "config.json").is_file():
        # Before the generating child loads it: one line, not a traceback from that process.
        check_model_folder(folder, pickle_hint=PICKLE_HINT_CLI)
        return ResolvedModel(str(folder), None, label)
    raise ConfigError(
        f"{folder}: neither a model folder (config.json) nor an adapter folder "
        "(adapter_config.json); point to the folder a run or save_pretrained wrote"
    )


def _adapter_base(folder: Path) -> str | None:
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    return str(base) if base else None


def describe_death(exit_code: int, stderr_tail: Sequence[str]) -> str:
    """Explain why the generation child ended without finishing, in a user's words."""
    tail = " ".join(_message(line) for line in stderr_tail[-3:]).strip()
    if any(marker in tail.lower() for marker in _OOM_MARKERS):
        return (
            "The generation process ran out of memory; lower max new tokens or use a smaller model."
        )
    if exit_code in (-signal.SIGKILL, 128 + signal.SIGKILL):
        reason = "The generation process was killed (SIGKILL), most often when memory runs out."
    elif exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        reason = f"The generation process crashed ({name})."
    else:
        reason = f"The generation process stopped unexpectedly (exit code {exit_code})."
    return f"{reason} Last message: {tail[-300:]}" if tail else reason


def _message(line: str) -> str:
    if line.startswith("{"):
        with contextlib.suppress(ValueError):
            record: Any = json.loads(line)
            if isinstance(record, dict) and "message" in record:
                return str(record["message"])
    return line


class GenerationProcess:
    """One generation child: start it, read its events, stop or kill it.

    Use it as a context manager so the child and its reader threads never outlive the caller::

        with GenerationProcess(model, requests) as process:
            for event in process.events():
                ...

    Args:
        model: What to load.
        requests: What to answer.
        deadline_s: The longest the whole child may run; it is then killed.
        stop_grace_s: How long a stop request may take before the child is killed.
        device: Forces a device (``cpu``); the child picks the best one by default.
        extra_env: Variables the child needs beyond the allow-list.
    """

    def __init__(
        self,
        model: ResolvedModel,
        requests: Sequence[GenerationRequest],
        *,
        deadline_s: float = 1800.0,
        stop_grace_s: float = 10.0,
        device: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self._model = model
        self._requests = list(requests)
        self._deadline_s = deadline_s
        self._stop_grace_s = stop_grace_s
        self._device = device
        self._extra_env = extra_env or {}
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr_tail: list[str] = []
        self._threads: list[threading.Thread] = []
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._stop_sent_at: float | None = None
        self._killed_because: str | None = None
        self._started_at = 0.0
        self._ended = False
        self._failure: str | None = None
        self.exit_code: int | None = None

    def __enter__(self) -> GenerationProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The child's process id once started."""
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Write the requests to a temporary file and start the child.

        Raises:
            GenerationError: The child could not start.
        """
        self._folder = tempfile.TemporaryDirectory(prefix="codetune-generate-")
        requests_file = Path(self._folder.name) / "requests.json"
        requests_file.write_text(
            json.dumps([r.model_dump(mode="json") for r in self._requests]), encoding="utf-8"
        )
        args = ["--base-model", self._model.base_model, "--requests", str(requests_file)]
        if self._model.adapter is not None:
            args += ["--adapter", str(self._model.adapter)]
        if self._device:
            args += ["--device", self._device]
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":  # pragma: no cover - POSIX CI
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            # Its own process group, so one kill reaches all of it, but in the studio's session:
            # on Linux a new session (start_new_session) is a new scheduler autogroup, and there
            # the child's torch threads got 0.15-0.75x the speed of a busy studio process beside
            # them on 2 cores; in one autogroup both ran at full speed (side by side in
            # benchmarks/generation_throughput.py).
            kwargs["process_group"] = 0
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our own module's command line
                python_module_command(GENERATE_MODULE, *args),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=child_environment(self._extra_env),
                **kwargs,
            )
        except OSError as exc:
            raise GenerationError(f"The generation process could not start: {exc}") from None
        assert self._process.stdout is not None  # noqa: S101 - PIPE was asked for
        assert self._process.stderr is not None  # noqa: S101
        self._threads = [
            threading.Thread(
                target=self._pump, args=(self._process.stdout,), name="generate-out", daemon=True
            ),
            threading.Thread(
                target=self._drain, args=(self._process.stderr,), name="generate-err", daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()
        self._started_at = time.monotonic()

    def events(self, *, poll_s: float = 0.1) -> Iterator[GenerationEvent]:
        """Yield the child's events until it exits.

        Raises:
            GenerationError: The child died without finishing, or reported a failure.
        """
        while not self.ended:
            yield from self.poll(timeout_s=poll_s)
        self.finish()

    @property
    def ended(self) -> bool:
        """Whether the child closed its output (it has exited or is exiting)."""
        return self._ended

    def poll(self, timeout_s: float = 0.0) -> list[GenerationEvent]:
        """The events that arrived, waiting up to ``timeout_s`` for the first one.

        Also enforces the deadline and the stop grace period, so a caller that polls (the
        window's generation host) needs no timer of its own for them.
        """
        process = self._require_started()
        found: list[GenerationEvent] = []
        wait = timeout_s
        while not self._ended:
            try:
                line = self._lines.get(timeout=wait) if wait > 0 else self._lines.get_nowait()
            except queue.Empty:
                break
            wait = 0.0
            if line is None:  # stdout closed: the child is exiting
                self._ended = True
                break
            try:
                event = decode_generation_event(line)
            except ValueError:
                logger.debug("generation child printed %r", line[:200])
                continue
            if isinstance(event, GenerationFailed):
                self._failure = event.message
            found.append(event)
        if not self._ended:
            self._enforce_deadlines(process)
        return found

    def finish(self) -> None:
        """Wait for the ended child and raise if it did not end well.

        Raises:
            GenerationError: The child died without finishing, or reported a failure.
        """
        process = self._require_started()
        self.exit_code = process.wait()
        for thread in self._threads:
            thread.join()
        self._raise_for_exit(self._failure)

    def stop(self) -> None:
        """Ask the child to stop the answer in progress; it is killed if it does not."""
        process = self._process
        if process is None or process.poll() is not None or self._stop_sent_at is not None:
            return
        self._stop_sent_at = time.monotonic()
        try:
            assert process.stdin is not None  # noqa: S101 - PIPE was asked for
            process.stdin.write(json.dumps({"cmd": "stop"}) + "\n")
            process.stdin.flush()
        except OSError:
            logger.debug("could not send stop; the child is exiting", exc_info=True)

    def kill(self, reason: str = "killed") -> None:
        """Kill the child's whole process group at once."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        self._killed_because = reason
        try:
            if sys.platform == "win32":  # pragma: no cover - POSIX CI
                process.kill()
            else:
                os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Kill the child if it still runs, wait for it and release its files and threads."""
        if self._process is not None:
            self.kill("closed")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
            for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    # --- internals ----------------------------------------------------------------------------

    def _require_started(self) -> subprocess.Popen[str]:
        if self._process is None:
            raise GenerationError("The generation process was not started")
        return self._process

    def _pump(self, stream: IO[str]) -> None:
        with contextlib.suppress(ValueError, OSError):  # closed by close()
            for line in stream:
                if line.strip():
                    self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _drain(self, stream: IO[str]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                if line.strip():
                    self._stderr_tail = [*self._stderr_tail[-_TAIL_LINES:], line.rstrip("\n")]

    def _enforce_deadlines(self, process: subprocess.Popen[str]) -> None:
        if process.poll() is not None:
            return
        now = time.monotonic()
        if now - self._started_at > self._deadline_s:
            self.kill(f"it ran past its deadline of {self._deadline_s:g} s")
        elif self._stop_sent_at is not None and now - self._stop_sent_at > self._stop_grace_s:
            self.kill("it did not stop when asked")

    def _raise_for_exit(self, failure: str | None) -> None:
        code = self.exit_code
        if code in (0, 130):
            return
        if failure:
            raise GenerationError(failure)
        if self._killed_because and self._killed_because != "closed":
            raise GenerationError(f"The generation process was killed: {self._killed_because}.")
        raise GenerationError(describe_death(code or 0, self._stderr_tail))
