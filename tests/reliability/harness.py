"""Helpers for the reliability scenarios: real worker processes, killed and resumed."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codetune_studio.core.child_cmd import python_module_command
from codetune_studio.core.child_env import child_environment

#: Trials per kill scenario: a few in CI, twenty under `make reliability`.
TRIALS = int(os.environ.get("CODETUNE_RELIABILITY_TRIALS", "3"))
REPO = Path(__file__).resolve().parents[2]


def worker_env(database_url: str | None = None) -> dict[str, str]:
    """The worker's environment, as the window builds it (allow-list plus what it needs)."""
    extra = {
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        "CODETUNE_TORCH_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    if database_url:
        extra["CODETUNE_DATABASE_URL"] = database_url
    return child_environment(extra)


@dataclass
class Worker:
    """A training worker started as the window starts it (own session, events to a file)."""

    process: subprocess.Popen[bytes]
    events: Path

    def read_events(self) -> list[dict[str, Any]]:
        """The events written so far (a half-written last line is skipped)."""
        if not self.events.exists():
            return []
        found = []
        for line in self.events.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def wait_for(self, predicate: Any, timeout: float = 300.0) -> list[dict[str, Any]]:
        """Poll the events until ``predicate(events)`` holds or the worker exits."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            events = self.read_events()
            if predicate(events) or self.process.poll() is not None:
                return events
            time.sleep(0.02)
        raise TimeoutError("the worker did not get there in time")


def start_worker(
    *,
    recipe: Path,
    run_id: int,
    output_dir: Path,
    data_dir: Path,
    spool: Path,
    resume: Path | None = None,
    database_url: str | None = None,
) -> Worker:
    """Start ``python -m codetune_studio.worker --record`` in its own session."""
    args = [
        "--recipe", str(recipe), "--run-id", str(run_id), "--output-dir", str(output_dir),
        "--data-dir", str(data_dir), "--record", "--log-level", "WARNING",
    ]  # fmt: skip
    if resume is not None:
        args += ["--resume", str(resume)]
    spool.mkdir(parents=True, exist_ok=True)
    events = spool / "events.jsonl"
    with events.open("wb") as out, (spool / "worker.log").open("wb") as err:
        process = subprocess.Popen(
            python_module_command("codetune_studio.worker", *args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=worker_env(database_url),
            start_new_session=True,
        )
    return Worker(process, events)


def event_kind(event: dict[str, Any]) -> str:
    """The event's type name as the worker wrote it."""
    return str(event.get("type") or event.get("event") or event.get("kind") or "?")
