"""The command line that starts a training worker: plain, or through ``accelerate launch``.

A recipe without a ``launch`` section runs ``python -m codetune_studio.worker``. With one, the
same worker module runs under ``accelerate launch -m`` with the section's options, so a run uses
every GPU of a workstation (or several machines) with no other change: the worker already speaks
only from rank 0 and records from rank 0.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from codetune_studio.core.child_cmd import python_module_command

if TYPE_CHECKING:
    from collections.abc import Sequence

    from codetune_studio.core.recipe import LaunchSpec

__all__ = [
    "WORKER_MODULE",
    "accelerate_arguments",
    "describe_worker_exit",
    "launch_environment",
    "worker_command",
]

#: The training worker's module.
WORKER_MODULE = "codetune_studio.worker"
_ACCELERATE_LAUNCH_MODULE = "accelerate.commands.launch"


def accelerate_arguments(launch: LaunchSpec) -> list[str]:
    """``accelerate launch`` options for a recipe's launch section.

    Args:
        launch: The recipe's ``launch`` section.

    Returns:
        The launcher's flags, in its own spelling (``--num_processes 2 ...``).
    """
    args = [
        "--num_processes",
        str(launch.num_processes),
        "--num_machines",
        str(launch.num_machines),
    ]
    if launch.num_machines > 1:
        args += ["--machine_rank", str(launch.machine_rank)]
    if launch.main_process_ip:
        args += ["--main_process_ip", launch.main_process_ip]
    if launch.main_process_port is not None:
        args += ["--main_process_port", str(launch.main_process_port)]
    if launch.mixed_precision is not None:
        args += ["--mixed_precision", launch.mixed_precision]
    if launch.gpu_ids:
        args += ["--gpu_ids", launch.gpu_ids]
    if launch.dynamo_backend:
        args += ["--dynamo_backend", launch.dynamo_backend]
    if launch.num_processes > 1:
        # Accelerate's multi-process launcher is torch.distributed.run whatever the device (its
        # --cpu launcher starts a single process unless MPI is set up), so CPU processes use it
        # too, told to stay on the CPU by launch_environment().
        args.append("--multi_gpu")
    elif launch.use_cpu:
        args.append("--cpu")
    return args


def launch_environment(launch: LaunchSpec | None) -> dict[str, str]:
    """Environment variables the launched worker needs for a recipe's launch section.

    Args:
        launch: The recipe's ``launch`` section, or ``None``.

    Returns:
        ``{"ACCELERATE_USE_CPU": "true"}`` for CPU processes, else nothing.
    """
    if launch is not None and launch.use_cpu:
        return {"ACCELERATE_USE_CPU": "true"}
    return {}


def worker_command(
    worker_args: Sequence[str], launch: LaunchSpec | None = None, *, module: str = WORKER_MODULE
) -> list[str]:
    """The argv that starts the training worker.

    Args:
        worker_args: The worker's own arguments (``--recipe ... --run-id ...``).
        launch: The recipe's launch section; ``None`` starts one plain process.
        module: The worker module (tests substitute a fake one).

    Returns:
        ``python -m codetune_studio.worker ...`` or
        ``python -m accelerate.commands.launch <options> -m codetune_studio.worker ...``.
    """
    if launch is None:
        return python_module_command(module, *worker_args)
    return python_module_command(
        _ACCELERATE_LAUNCH_MODULE, *accelerate_arguments(launch), "-m", module, *worker_args
    )


def describe_worker_exit(exit_code: int, log_tail: Sequence[str]) -> str:
    """A readable reason for a worker that ended without recording how its run ended.

    Args:
        exit_code: The process's exit status (negative: killed by that signal).
        log_tail: Its last log lines, already readable.

    Returns:
        One sentence, with the last log message when there is one.
    """
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        reason = f"The training process was killed ({name})."
    elif exit_code == 0:
        reason = "The training process ended without reporting a result."
    else:
        reason = f"The training process stopped with exit code {exit_code}."
    last = next((line for line in reversed(log_tail) if line.strip()), "")
    if last:
        reason += f" Last message: {last.strip()[-300:]}"
    return reason
