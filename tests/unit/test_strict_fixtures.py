"""The strict fixtures themselves: an undeclared warning or a leaked thread fails a test."""

from __future__ import annotations

import textwrap
import threading

import pytest

CONFTEST = """
from tests.conftest import (  # noqa: F401
    expect_logs,
    fail_on_unexpected_logs,
    no_leaked_python_threads,
    pytest_configure,
)
"""

TESTS = """
import logging
import threading
import time

import pytest

log = logging.getLogger("codetune_studio.selftest")


def test_undeclared_warning():
    log.warning("disk almost full")


@pytest.mark.expect_logs(r"almost full")
def test_warning_declared_with_the_marker():
    log.warning("disk almost full")


def test_warning_declared_with_the_fixture(expect_logs):
    expect_logs(r"almost full", level="WARNING")
    log.warning("disk almost full")


def test_the_fixture_level_is_a_ceiling(expect_logs):
    expect_logs(r"almost full", level="WARNING")
    log.error("disk almost full")


def test_swallowed_exception_is_a_record():
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("error in a slot")


def test_info_is_fine():
    log.info("all good")


def test_leaked_thread():
    # Outlives this test's grace period, ends well within the outer test's.
    threading.Thread(target=time.sleep, args=(1.0,), name="forgotten", daemon=True).start()
"""


# The generated tests run in this process, so their records reach this test's check too.
@pytest.mark.expect_logs(r"disk almost full", r"error in a slot")
def test_unexpected_records_and_leaked_threads_fail_and_declared_ones_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.conftest as strict

    monkeypatch.setattr(strict, "THREAD_GRACE_S", 0.2)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_selftest=textwrap.dedent(TESTS))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:pytest-qt")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 7  # every test body itself passes...
    assert outcomes.get("errors") == 4  # ...and four fail at teardown
    text = result.stdout.str()
    assert "ERROR at teardown of test_undeclared_warning" in text
    assert "ERROR at teardown of test_the_fixture_level_is_a_ceiling" in text
    assert "ERROR at teardown of test_swallowed_exception_is_a_record" in text
    assert "[ValueError: boom]" in text
    assert "ERROR at teardown of test_leaked_thread" in text
    assert "threads leaked" in text
    assert "forgotten" in text
    for thread in threading.enumerate():
        if thread.name == "forgotten":
            thread.join()  # the generated test's thread is this process's too
