"""Every way a generated program can misbehave ends as a failed sample, never a hung eval."""

from __future__ import annotations

import contextlib
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from codetune_studio.services.sandbox import Sandbox, SandboxLimits

pytestmark = pytest.mark.integration

LIMITS = SandboxLimits(time_s=3.0, cpu_s=3, memory_mb=512, output_bytes=100_000, processes=16)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(LIMITS)


def run(sandbox: Sandbox, source: str) -> tuple[bool, str, str]:
    result = sandbox.run(textwrap.dedent(source))
    return result.passed, result.reason, result.output


def test_a_correct_program_passes(sandbox: Sandbox) -> None:
    assert run(sandbox, "def f():\n    return 1\nassert f() == 1\nprint('ok')\n") == (
        True,
        "passed",
        "ok\n",
    )


def test_a_failing_assert_fails_and_shows_its_traceback(sandbox: Sandbox) -> None:
    passed, reason, output = run(sandbox, "assert 1 == 2, 'wrong'\n")
    assert (passed, reason) == (False, "failed")
    assert "AssertionError: wrong" in output


def test_an_infinite_loop_is_killed_at_the_time_limit(sandbox: Sandbox) -> None:
    passed, reason, _ = run(sandbox, "while True:\n    pass\n")
    assert (passed, reason) == (False, "timeout")


def test_a_sleeping_program_is_killed_at_the_time_limit(sandbox: Sandbox) -> None:
    passed, reason, _ = run(sandbox, "import time\ntime.sleep(60)\n")
    assert (passed, reason) == (False, "timeout")


def test_sys_exit_zero_before_the_tests_end_is_not_a_pass(sandbox: Sandbox) -> None:
    passed, reason, _ = run(sandbox, "import sys\nsys.exit(0)\nassert False\n")
    assert (passed, reason) == (False, "exited")


def test_os_exit_zero_is_not_a_pass(sandbox: Sandbox) -> None:
    passed, reason, _ = run(sandbox, "import os\nos._exit(0)\n")
    assert (passed, reason) == (False, "exited")


def test_a_segfault_is_a_crash(sandbox: Sandbox) -> None:
    passed, reason, _ = run(sandbox, "import ctypes\nctypes.string_at(0)\n")
    assert (passed, reason) == (False, "crashed")


def test_an_output_flood_is_cut_off(sandbox: Sandbox) -> None:
    passed, reason, output = run(sandbox, "while True:\n    print('x' * 10000)\n")
    assert not passed
    assert reason == "output_limit"
    assert len(output) <= 4000


def test_a_fork_bomb_is_contained_and_leaves_no_process_behind(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sample's folder (and so every process's command line) lies under tmp_path.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    passed, reason, _ = run(
        sandbox,
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
    )
    assert not passed
    assert reason in {"timeout", "crashed", "failed"}
    assert _gone(str(tmp_path))


def test_memory_beyond_the_limit_fails(sandbox: Sandbox) -> None:
    passed, reason, output = run(sandbox, "block = bytearray(2 * 1024**3)\n")
    assert (passed, reason) == (False, "failed")
    assert "MemoryError" in output


def test_secrets_in_the_environment_do_not_reach_the_program(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    passed, _, output = run(
        sandbox,
        """
        import os
        leaked = [k for k in os.environ if k.endswith(("_KEY", "_TOKEN")) or "secret" in os.environ[k]]
        assert not leaked, leaked
        assert os.getcwd() == os.environ["HOME"]
        """,
    )
    assert passed, output


def test_the_network_is_unreachable_where_namespaces_work(sandbox: Sandbox) -> None:
    if sandbox.isolation == "process-group":
        pytest.skip("unshare is not available on this machine")
    passed, _, output = run(
        sandbox,
        """
        import socket
        try:
            socket.create_connection(("127.0.0.1", 5432), timeout=2)
        except OSError as exc:
            print("blocked:", exc)
        else:
            raise SystemExit("connected")
        """,
    )
    assert passed, output
    assert "blocked" in output


def _gone(text: str) -> bool:
    """Whether every process mentioning ``text`` has gone (killed ones may take a moment)."""
    for _ in range(100):
        if not _processes_mentioning(text):
            return True
        time.sleep(0.05)
    return False


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    "source",
    [
        "while True:\n    pass\n",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    ],
    ids=["loop", "fork-bomb"],
)
def test_without_namespaces_the_process_group_kill_still_contains_it(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fallback = Sandbox(LIMITS, isolation="process-group")
    result = fallback.run(source)
    assert not result.passed
    assert result.reason in {"timeout", "crashed", "failed"}
    assert _gone(str(tmp_path))
