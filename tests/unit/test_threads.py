"""CPU thread settings for training: CODETUNE_TORCH_THREADS and OpenMP's wait policy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from codetune_studio.core.errors import ConfigError
from codetune_studio.engine.threads import (
    THREADS_ENV,
    configure_torch_threads,
    prefer_passive_waiting,
    requested_threads,
)


def test_passive_waiting_is_a_default_the_user_can_override() -> None:
    environ: dict[str, str] = {}
    prefer_passive_waiting(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    chosen = {"OMP_WAIT_POLICY": "ACTIVE"}
    prefer_passive_waiting(chosen)
    assert chosen == {"OMP_WAIT_POLICY": "ACTIVE"}


@pytest.mark.parametrize(("raw", "expected"), [("", None), (" ", None), ("1", 1), (" 3 ", 3)])
def test_requested_threads_reads_the_environment(raw: str, expected: int | None) -> None:
    assert requested_threads({THREADS_ENV: raw}) == expected
    assert requested_threads({}) is None


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5"])
def test_a_bad_thread_count_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"{THREADS_ENV}: got '{raw}', must be a whole number"):
        requested_threads({THREADS_ENV: raw})


def test_configure_torch_threads_sets_torch_and_leaves_the_default_alone() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert configure_torch_threads({}) == before
        assert configure_torch_threads({THREADS_ENV: "1"}) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_entry_points_do_not_import_torch_before_setting_the_wait_policy() -> None:
    # OpenMP reads OMP_WAIT_POLICY once, when torch loads: the worker and the train command
    # set it first thing, so importing them must not have loaded torch already.
    code = (
        "import sys\n"
        "import codetune_studio.cli.train, codetune_studio.worker.__main__\n"
        "import codetune_studio.engine.threads\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "False"
