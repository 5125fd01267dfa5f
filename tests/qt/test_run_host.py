from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.status import RunStatus
from codetune_studio.ui.run_host import RunController, RunHost, RunOutcome, describe_exit
from codetune_studio.ui.studio_services import WorkerLaunch

if TYPE_CHECKING:
    from codetune_studio.services.experiments import ExperimentService

FAKE_WORKER = Path(__file__).resolve().parents[1] / "fixtures" / "fake_worker.py"


def _controller(
    qtbot: Any,
    tmp_path: Path,
    experiments: ExperimentService,
    mode: str,
    **host_kwargs: Any,
) -> tuple[RunController, int]:
    run = experiments.create_run("fake", {"model": "starter"})
    launch = WorkerLaunch(
        argv=[sys.executable, str(FAKE_WORKER), "--run-id", str(run.id), "--mode", mode],
        cwd=tmp_path,
    )
    host = RunHost(run.id, launch, tmp_path / "run", experiments=experiments, **host_kwargs)
    controller = RunController(host)
    return controller, run.id


def _run_to_end(qtbot: Any, controller: RunController, timeout: int = 20_000) -> RunOutcome:
    with qtbot.waitSignal(controller.finished, timeout=timeout) as blocker:
        controller.start()
    outcome: RunOutcome = blocker.args[0]
    controller.wait()
    return outcome


def test_crashing_worker_becomes_failed_run_with_a_reason(
    qtbot: Any, tmp_path: Path, experiments: ExperimentService
) -> None:
    controller, run_id = _controller(qtbot, tmp_path, experiments, "crash")
    batches: list[list[Any]] = []
    controller.events_received.connect(batches.append)
    outcome = _run_to_end(qtbot, controller)
    assert outcome.status is RunStatus.FAILED
    assert outcome.exit_code == 9
    assert outcome.reason is not None
    assert "exit code 9" in outcome.reason
    assert "about to crash" in outcome.reason
    assert sum(len(b) for b in batches) >= 3  # the events before the crash still arrived
    stored = experiments.get_run(run_id)
    assert stored.status is RunStatus.FAILED
    assert stored.error == outcome.reason


def test_finishing_worker_that_did_not_record_itself_is_recorded_by_the_host(
    qtbot: Any, tmp_path: Path, experiments: ExperimentService
) -> None:
    controller, run_id = _controller(qtbot, tmp_path, experiments, "finish")
    logs: list[str] = []
    controller.log_received.connect(logs.extend)
    outcome = _run_to_end(qtbot, controller)
    assert outcome.status is RunStatus.FINISHED
    assert outcome.exit_code == 0
    assert "INFO fake worker up" in logs
    stored = experiments.get_run(run_id)
    assert stored.status is RunStatus.FINISHED


def test_stop_request_reaches_the_worker(
    qtbot: Any, tmp_path: Path, experiments: ExperimentService
) -> None:
    controller, run_id = _controller(qtbot, tmp_path, experiments, "obey")
    with qtbot.waitSignal(controller.events_received, timeout=10_000):
        controller.start()
    with qtbot.waitSignal(controller.finished, timeout=10_000) as blocker:
        controller.stop()
    controller.wait()
    assert blocker.args[0].status is RunStatus.CANCELLED
    assert experiments.get_run(run_id).status is RunStatus.CANCELLED


@pytest.mark.expect_logs(
    r"worker ignored stop; terminating it", r"worker ignored terminate; killing it"
)
def test_stop_escalates_to_terminate_then_kill_for_a_stubborn_worker(
    qtbot: Any, tmp_path: Path, experiments: ExperimentService, caplog: Any
) -> None:
    controller, run_id = _controller(
        qtbot, tmp_path, experiments, "stubborn", stop_grace_s=0.3, terminate_grace_s=0.3
    )
    with qtbot.waitSignal(controller.events_received, timeout=10_000):
        controller.start()
    with qtbot.waitSignal(controller.finished, timeout=10_000) as blocker:
        controller.stop()
    controller.wait()
    outcome: RunOutcome = blocker.args[0]
    assert outcome.status is RunStatus.CANCELLED
    assert outcome.exit_code == -9  # SIGTERM was ignored; SIGKILL ended it
    assert outcome.reason is not None
    assert "killed" in outcome.reason
    messages = [r.getMessage() for r in caplog.records]
    assert any("terminating" in m for m in messages)
    assert any("killing" in m for m in messages)
    assert experiments.get_run(run_id).status is RunStatus.CANCELLED


def test_worker_that_cannot_start_fails_readably(
    qtbot: Any, tmp_path: Path, experiments: ExperimentService
) -> None:
    run = experiments.create_run("missing", {})
    launch = WorkerLaunch(argv=[str(tmp_path / "no-such-program")], cwd=tmp_path)
    controller = RunController(RunHost(run.id, launch, tmp_path / "run", experiments=experiments))
    outcome = _run_to_end(qtbot, controller)
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason is not None
    assert "could not start" in outcome.reason
    assert experiments.get_run(run.id).status is RunStatus.FAILED


def test_describe_exit_names_out_of_memory_and_signals() -> None:
    assert "memory" in describe_exit(-9, [])
    assert "ran out of memory" in describe_exit(1, ["torch.OutOfMemoryError: CUDA out of memory"])
    assert "SIGSEGV" in describe_exit(-11, [])


def test_the_host_records_its_worker_pid_and_log_as_soon_as_it_starts(
    qtbot: Any, tmp_path: Path, experiments: ExperimentService
) -> None:
    # So a worker killed before its first heartbeat leaves a dead pid any studio can find.
    controller, run_id = _controller(qtbot, tmp_path, experiments, "obey")
    with qtbot.waitSignal(controller.started, timeout=20_000) as blocker:
        controller.start()
    pid = blocker.args[0]
    stored = experiments.get_run(run_id)
    assert stored.status is RunStatus.PENDING
    assert stored.pid == pid
    assert stored.log_path == str(tmp_path / "run" / "worker.log")
    with qtbot.waitSignal(controller.finished, timeout=20_000):
        controller.stop()
    controller.wait()
