"""CPU threads for training: how many, and how idle threads wait.

torch computes on the CPU with an OpenMP thread pool, one thread per core by default, whose
idle threads spin for a while before sleeping. On a small machine that is the right choice
only while nothing else runs: measured with the starter model on 2 cores (quickstart settings),
a second busy process made the default 2 spinning threads 1.5 to 2.1 times slower per step than
one thread, while 2 threads told to sleep when idle (``OMP_WAIT_POLICY=PASSIVE``) kept pace with
one thread under contention and with the default when the machine was quiet. So:

* :func:`prefer_passive_waiting` sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy;
  OpenMP reads it once, when torch is first imported, so the worker and ``codetune-studio
  train`` call it before importing the engine.
* ``CODETUNE_TORCH_THREADS=N`` (:data:`THREADS_ENV`) caps torch's threads for a run, e.g. to
  leave a core to the window: :func:`configure_torch_threads` applies it.

This module imports torch only inside :func:`configure_torch_threads`, so that calling
:func:`prefer_passive_waiting` cannot load OpenMP too early.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from codetune_studio.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping

__all__ = [
    "THREADS_ENV",
    "configure_torch_threads",
    "prefer_passive_waiting",
    "requested_threads",
]

logger = logging.getLogger(__name__)

#: Environment variable: torch's CPU threads for a training run (unset: one per core).
THREADS_ENV = "CODETUNE_TORCH_THREADS"


def prefer_passive_waiting(environ: MutableMapping[str, str] | None = None) -> None:
    """Make idle OpenMP threads sleep instead of spinning, unless a policy is already set.

    Call it before torch is first imported in the process; afterwards it has no effect.

    Args:
        environ: The environment to change (default: ``os.environ``).
    """
    target = os.environ if environ is None else environ
    target.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def requested_threads(environ: Mapping[str, str] | None = None) -> int | None:
    """The thread count :data:`THREADS_ENV` asks for.

    Args:
        environ: The environment to read (default: ``os.environ``).

    Returns:
        The count, or ``None`` when the variable is unset or empty.

    Raises:
        ConfigError: The value is not a whole number of at least 1.
    """
    raw = (os.environ if environ is None else environ).get(THREADS_ENV, "").strip()
    if not raw:
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(
            f"{THREADS_ENV}: got {raw!r}, must be a whole number >= 1 "
            "(or unset it for one thread per core)"
        )
    return count


def configure_torch_threads(environ: Mapping[str, str] | None = None) -> int:
    """Apply :data:`THREADS_ENV` to torch, if set, and return the thread count in use.

    Args:
        environ: The environment to read (default: ``os.environ``).

    Returns:
        torch's intra-op thread count after the change.

    Raises:
        ConfigError: :data:`THREADS_ENV` is not a whole number of at least 1.
    """
    import torch

    count = requested_threads(environ)
    if count is not None:
        torch.set_num_threads(count)
    threads = torch.get_num_threads()
    logger.info(
        "torch uses %d CPU threads (%s), OMP_WAIT_POLICY=%s",
        threads,
        f"{THREADS_ENV}={count}" if count is not None else "default",
        os.environ.get("OMP_WAIT_POLICY", "unset"),
    )
    return threads
