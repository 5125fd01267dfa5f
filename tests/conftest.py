"""Fixtures every test shares: isolated folders, an in-memory keyring, database URLs."""

from __future__ import annotations

import os

# Before any Qt import: with no display and no platform set, Qt aborts the whole process.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Nothing in the tests may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import importlib.abc
import logging
import re
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from keyring.backend import KeyringBackend

#: Shared fixtures for engine tests (a tiny model and tokenizer built from a config).
#: pytester: the strict fixtures are tested on small generated test files.
pytest_plugins = ["tests.engine_fixtures", "pytester"]

POSTGRES_URL_ENV = "CODETUNE_TEST_POSTGRES_URL"
HEADLESS_ENV = "CODETUNE_HEADLESS_TESTS"
#: Seconds a thread a test started may take to end after the test before it counts as leaked.
THREAD_GRACE_S = 10.0


class _QtBlocker(importlib.abc.MetaPathFinder):
    """Makes Qt unimportable, as on a server without PySide6 (``make test-headless``)."""

    blocked = ("PySide6", "pyqtgraph", "superqt", "shiboken6")

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"{fullname} is blocked: unit tests must run without Qt")


if os.environ.get(HEADLESS_ENV):
    sys.meta_path.insert(0, _QtBlocker())

# tqdm starts a process-wide monitor thread with its first progress bar (datasets and the CLI
# show bars) that outlives the test; without it the leaked-thread check sees only our threads.
import tqdm  # type: ignore[import-untyped]  # noqa: E402

tqdm.tqdm.monitor_interval = 0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "expect_logs(*patterns, level='WARNING'): WARNING/ERROR log records whose message matches "
        "one of the regular expressions are expected; any other such record fails the test",
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow")
    skip_gpu = _gpu_skip() if any("gpu" in item.keywords for item in items) else None
    for item in items:
        if "/tests/qt/" in str(item.path):
            item.add_marker(pytest.mark.gui)
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if skip_gpu is not None and "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def _gpu_skip() -> pytest.MarkDecorator | None:
    """A skip for ``gpu`` tests where CUDA is missing, saying so; ``None`` where it is there."""
    import torch

    if torch.cuda.is_available():
        return None
    return pytest.mark.skip(
        reason="gpu: needs an NVIDIA GPU with CUDA (torch.cuda.is_available() is False here)"
    )


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every per-user folder at the test's own temporary folder."""
    home = tmp_path / "studio"
    monkeypatch.setenv("CODETUNE_DATA_DIR", str(home))
    monkeypatch.delenv("CODETUNE_CONFIG_DIR", raising=False)
    for name in (
        "CODETUNE_DATABASE_URL",
        "DATABASE_URL",
        "LOG_LEVEL",
        "LOG_FILE",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "HF_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(autouse=True)
def memory_keyring(request: pytest.FixtureRequest) -> Iterator[None]:
    """Install an in-memory keyring so no test touches the user's real one."""
    if "keyring" in request.keywords:
        yield
        return
    import keyring

    from tests.helpers import MemoryKeyring

    previous: KeyringBackend = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


def postgres_server_url() -> str | None:
    """The PostgreSQL server the tests may use, from ``CODETUNE_TEST_POSTGRES_URL``."""
    return os.environ.get(POSTGRES_URL_ENV) or None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    server = postgres_server_url()
    if server is None:
        message = f"no PostgreSQL server configured: set {POSTGRES_URL_ENV}"
        if os.environ.get("CI"):
            # CI must run every storage test on PostgreSQL too; a skip there would hide a gap.
            pytest.fail(f"{message} (CI is set: PostgreSQL tests must not skip)")
        pytest.skip(message)
    import sqlalchemy as sa

    name = f"codetune_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'studio.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the handlers a CLI call installs, so one test's log file never catches another's."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


# --- strictness: unexpected log records and leaked threads fail a test ------------------------


@dataclass
class _ExpectedLog:
    pattern: re.Pattern[str]
    level: int

    def matches(self, record: logging.LogRecord) -> bool:
        return record.levelno <= self.level and bool(self.pattern.search(record.getMessage()))


class _LogFailHandler(logging.Handler):
    """Collects every WARNING+ record that reaches the root logger during a test."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _expected_from_marks(item: pytest.Item) -> list[_ExpectedLog]:
    expected = []
    for mark in item.iter_markers("expect_logs"):
        level = logging.getLevelName(str(mark.kwargs.get("level", "ERROR")).upper())
        expected += [_ExpectedLog(re.compile(p), level) for p in mark.args]
    return expected


def _describe(record: logging.LogRecord) -> str:
    text = f"{record.levelname} {record.name}: {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        text += f" [{type(error).__name__}: {error}]"
    return text


@pytest.fixture
def expect_logs(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Declare WARNING/ERROR records the test expects: ``expect_logs(r"regex", level="WARNING")``.

    ``level`` is the highest level the pattern allows (default ``ERROR``, which also allows
    warnings). The regular expression is searched in the record's formatted message.
    """
    expected: list[_ExpectedLog] = request.node.stash.setdefault(_EXPECTED_KEY, [])

    def expect(*patterns: str, level: str = "ERROR") -> None:
        number = logging.getLevelName(level.upper())
        expected.extend(_ExpectedLog(re.compile(p), number) for p in patterns)

    return expect


_EXPECTED_KEY = pytest.StashKey[list[_ExpectedLog]]()


@pytest.fixture(autouse=True)
def fail_on_unexpected_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test on any WARNING/ERROR log record it did not declare.

    Exceptions swallowed by ``ui.safe_slot`` or by an event sink are logged, not raised, so
    without this a broken slot would pass. Declare expected records with
    ``@pytest.mark.expect_logs(r"regex", ...)`` or the ``expect_logs`` fixture.
    """
    handler = _LogFailHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    expected = _expected_from_marks(request.node) + request.node.stash.get(_EXPECTED_KEY, [])
    unexpected = [r for r in handler.records if not any(e.matches(r) for e in expected)]
    if unexpected:
        lines = "\n  ".join(_describe(r) for r in unexpected[:10])
        pytest.fail(
            f"{len(unexpected)} unexpected log record(s) at WARNING or above "
            f"(declare them with @pytest.mark.expect_logs or the expect_logs fixture):\n  {lines}",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def no_leaked_python_threads() -> Iterator[None]:
    """Fail a test that leaves a Python thread running (after a grace period for it to end)."""
    before = set(threading.enumerate())
    yield
    new = [
        t
        for t in threading.enumerate()
        if t not in before and not isinstance(t, threading._DummyThread)
    ]
    for thread in new:
        thread.join(THREAD_GRACE_S / max(len(new), 1))
    leaked = [t for t in new if t.is_alive()]
    if leaked:
        pytest.fail(f"threads leaked: {leaked}", pytrace=False)
