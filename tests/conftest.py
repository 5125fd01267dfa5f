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
import sys
import uuid
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from keyring.backend import KeyringBackend

#: Shared fixtures for engine tests (a tiny model and tokenizer built from a config).
pytest_plugins = ["tests.engine_fixtures"]

POSTGRES_URL_ENV = "CODETUNE_TEST_POSTGRES_URL"
HEADLESS_ENV = "CODETUNE_HEADLESS_TESTS"


class _QtBlocker(importlib.abc.MetaPathFinder):
    """Makes Qt unimportable, as on a server without PySide6 (``make test-headless``)."""

    blocked = ("PySide6", "pyqtgraph", "superqt", "shiboken6")

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"{fullname} is blocked: unit tests must run without Qt")


if os.environ.get(HEADLESS_ENV):
    sys.meta_path.insert(0, _QtBlocker())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "/tests/qt/" in str(item.path):
            item.add_marker(pytest.mark.gui)
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)


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
        pytest.skip(f"no PostgreSQL server configured: set {POSTGRES_URL_ENV}")
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
