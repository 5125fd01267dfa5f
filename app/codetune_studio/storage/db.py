"""Engine setup, schema migrations and the unit of work.

Create one :class:`Database` per process with :meth:`Database.connect` and share it; every
service call then opens its own short unit of work (a ``Session``) from it. Sessions are never
shared across threads.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, func, inspect, select, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from codetune_studio.core.errors import StorageError, StorageUnavailableError
from codetune_studio.core.models import DatabaseStatus
from codetune_studio.storage.orm import Base

if TYPE_CHECKING:
    from collections.abc import Iterator

    from alembic.config import Config
    from sqlalchemy.engine import Connection

__all__ = [
    "MIGRATIONS_DIR",
    "SCHEMA_HEAD",
    "Database",
    "DatabaseUnreachableError",
    "InvalidDatabaseUrlError",
    "alembic_config",
    "mask_url",
    "normalize_url",
    "split_password",
    "sqlite_url",
    "with_password",
]

logger = logging.getLogger(__name__)

#: The Alembic script folder shipped inside the package.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: The newest migration in ``migrations/versions``; a test keeps the two in step.
SCHEMA_HEAD = "0004"
_VERSION_TABLE = "alembic_version"

#: Key of the PostgreSQL advisory lock that serialises schema upgrades across studios.
#: Any fixed 64-bit number works; this one spells "codetune" in ASCII, to be recognisable in
#: ``pg_locks``.
_MIGRATION_LOCK_KEY = 0x636F646574756E65

#: How long a studio waits for another one's schema upgrade before giving up.
_MIGRATION_LOCK_TIMEOUT_S = 120
_MIGRATION_LOCK_TIMEOUT = f"{_MIGRATION_LOCK_TIMEOUT_S}s"

_SQLITE_BUSY_TIMEOUT_MS = 5_000
#: Attempts at switching a SQLite file to WAL (see ``_switch_to_wal``).
_WAL_SWITCH_TRIES = 3
_CONNECTION_LOST = ("server closed", "terminating connection", "connection refused", "timeout")
#: What to do about an unreachable server, wherever the studio was started from.
_UNREACHABLE_FIX = (
    "Start the server or check the database URL, or switch to the local SQLite database "
    "(File > Settings in the window, --fallback-sqlite on the command line)"
)


class DatabaseUnreachableError(StorageUnavailableError):
    """The configured PostgreSQL server could not be reached or refused the login.

    Attributes:
        target: ``host:port/database``, without credentials.
        cause: A short, password-free description of what went wrong.
    """

    #: A setting to fix (the server or the URL), like a bad recipe: nothing was started.
    exit_code = 2

    def __init__(self, message: str, *, target: str, cause: str) -> None:
        super().__init__(message)
        self.target = target
        self.cause = cause


class InvalidDatabaseUrlError(StorageError):
    """The database URL itself is wrong (not a URL, a port that is not a number...)."""

    exit_code = 2  # a configuration mistake, like a bad recipe


def mask_url(url: str | URL) -> str:
    """Render a database URL with its password replaced by ``***``.

    Args:
        url: A SQLAlchemy database URL (string or ``URL``).

    Returns:
        The URL, safe to show or log. A string that is not a URL is returned with anything that
        looks like ``user:password@`` masked.
    """
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):  # ValueError: an unparsable port
        return re.sub(r"([^:/@\s]+:)[^@\s]*@", r"\1***@", str(url))
    return parsed.render_as_string(hide_password=True)


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL and point bare PostgreSQL URLs at the psycopg 3 driver.

    ``postgres://`` (Heroku-style) and ``postgresql://`` would otherwise ask SQLAlchemy for
    psycopg2, which the studio does not ship.

    Args:
        url: The URL as the user gave it.

    Returns:
        The parsed URL.

    Raises:
        StorageError: If it is not a database URL.
    """
    if isinstance(url, str):
        raw = url.strip()
        if raw.startswith("postgres://"):
            raw = "postgresql://" + raw[len("postgres://") :]
        try:
            parsed = make_url(raw)
        except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
            msg = (
                f"{mask_url(raw)!r} is not a database URL; use sqlite:///PATH or "
                "postgresql://USER@HOST:PORT/DATABASE (the port must be a number)"
            )
            raise InvalidDatabaseUrlError(msg) from exc
    else:
        parsed = url
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def split_password(url: str) -> tuple[str, str | None]:
    """Split a database URL into the URL without its password, and the password.

    Args:
        url: A database URL as the user typed it.

    Returns:
        The URL rendered without a password, and the password (``None`` when it had none).

    Raises:
        StorageError: If it is not a database URL.
    """
    parsed = normalize_url(url)
    password = _password(parsed)
    if password is None:
        return url.strip(), None
    # URL.set() ignores None, so the password is dropped through the named tuple.
    return parsed._replace(password=None).render_as_string(hide_password=False), password


def with_password(url: str, password: str | None) -> str:
    """Return ``url`` with ``password`` filled in, unless it has one or there is no user.

    Raises:
        StorageError: If it is not a database URL.
    """
    parsed = normalize_url(url)
    if not password or parsed.password or not parsed.username:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite database file.

    Args:
        path: The database file.

    Returns:
        A ``sqlite:///`` URL with an absolute path.
    """
    return f"sqlite:///{path.expanduser().resolve()}"


def alembic_config(url: str | URL | None = None) -> Config:
    """Build the Alembic configuration in code; the studio ships no ``alembic.ini``.

    Args:
        url: Database URL for standalone Alembic use (for example autogenerating a revision).

    Returns:
        A config whose ``script_location`` is the package's migrations folder.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation treats "%" specially, and URL-encoded passwords contain it.
        rendered = normalize_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def _stamped_revision(conn: Connection) -> str | None:
    """The revision Alembic stamped into the database, read without importing Alembic."""
    if not inspect(conn).has_table(_VERSION_TABLE):
        return None
    revisions = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars().all()  # noqa: S608 - a constant name
    if len(revisions) > 1:
        msg = f"The database has several schema heads ({', '.join(revisions)}); it needs repair."
        raise StorageError(msg)
    return revisions[0] if revisions else None


def _target(url: URL) -> str:
    host = url.host or "localhost"
    port = url.port or 5432
    return f"{host}:{port}/{url.database or ''}"


def _password(url: URL) -> str | None:
    return str(url.password) if url.password else None


def _first_line(exc: BaseException, password: str | None) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    line = lines[0] if lines else type(orig).__name__
    if password:
        line = line.replace(password, "***")
    return line


def _connect_cause(exc: BaseException, password: str | None, timeout: float) -> tuple[str, bool]:
    """Describe a failed PostgreSQL connect in a few words, and whether retrying may help."""
    detail = _first_line(exc, password)
    lowered = str(getattr(exc, "orig", None) or exc).lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return "the server refused the login (wrong user or password)", False
    if "does not exist" in lowered and "database" in lowered:
        return "the database does not exist on that server", False
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return "unknown host name", False
    if "connection refused" in lowered:
        return "connection refused", True
    if "timeout" in lowered or "timed out" in lowered:
        return f"no answer within {timeout:g} s", True
    # Anything else (the server starting up, too many clients) may clear up on a retry.
    return detail, True


class Database:
    """The studio's connection to one database: engine, migrations and units of work.

    Build it with :meth:`connect`; the constructor is for tests that bring their own engine.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)
        self._upgrade_lock = threading.Lock()

    @classmethod
    def connect(cls, url: str, *, connect_timeout: float = 10.0) -> Database:
        """Open a database and check that it answers.

        SQLite files get WAL journaling, foreign keys and a busy timeout, and their folder is
        created. PostgreSQL uses psycopg 3 with pre-ping and recycled connections; an
        unreachable server is retried with exponential backoff for at most ``connect_timeout``
        seconds in total.

        Args:
            url: A ``sqlite:///PATH`` or ``postgresql[+psycopg]://`` URL (``postgres://`` works).
            connect_timeout: Seconds to keep trying before giving up.

        Returns:
            The connected database.

        Raises:
            DatabaseUnreachableError: If PostgreSQL cannot be reached within the time allowed.
            StorageUnavailableError: If a SQLite file cannot be opened.
            StorageError: If the URL is not a supported database URL.
        """
        parsed = normalize_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            database = cls(_sqlite_engine(parsed))
        elif backend == "postgresql":
            database = cls(_postgres_engine(parsed, connect_timeout))
        else:
            msg = (
                f"Unsupported database {mask_url(parsed)!r}: use sqlite:///PATH or "
                "postgresql://USER@HOST:PORT/DATABASE"
            )
            raise StorageError(msg)
        try:
            database._wait_until_reachable(connect_timeout)
        except BaseException:
            database.dispose()
            raise
        logger.info("Connected to %s", database.url_masked)
        return database

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for the storage layer and tests only)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @property
    def url_masked(self) -> str:
        """The database URL with the password hidden."""
        return mask_url(self._engine.url)

    @property
    def connection_url(self) -> str:
        """The full URL, password included, for a child process's environment; never log it."""
        return self._engine.url.render_as_string(hide_password=False)

    def _wait_until_reachable(self, budget: float) -> None:
        url = self._engine.url
        if self.dialect == "sqlite":
            try:
                with self._engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except DBAPIError as exc:
                msg = (
                    f"Cannot open the SQLite database {url.database}: "
                    f"{_first_line(exc, None)}. Check that the folder is writable."
                )
                raise StorageUnavailableError(msg) from exc
            return
        deadline = time.monotonic() + budget
        delay = 0.25
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except OperationalError as exc:
                cause, retryable = _connect_cause(exc, _password(url), budget)
                remaining = deadline - time.monotonic()
                if not retryable or remaining <= delay:
                    raise _unreachable(url, cause) from exc
                logger.info(
                    "PostgreSQL at %s not reachable yet (attempt %s: %s); retrying in %.2g s",
                    _target(url),
                    attempt,
                    cause,
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                return

    def head_revision(self) -> str:
        """The newest schema revision this studio ships.

        Returns:
            The Alembic head revision id (:data:`SCHEMA_HEAD`).
        """
        return SCHEMA_HEAD

    def current_revision(self) -> str | None:
        """The schema revision the database is at.

        Returns:
            The revision id, or ``None`` if the database has never been upgraded.

        Raises:
            StorageError: If the database cannot be read.
        """
        try:
            with self._engine.connect() as conn:
                return _stamped_revision(conn)
        except DBAPIError as exc:
            raise self._wrap(exc) from exc

    def upgrade(self) -> tuple[str | None, str]:
        """Apply every pending migration.

        The upgrade runs in one transaction that first takes a lock (an advisory lock on
        PostgreSQL, the write lock on SQLite), so when several studios start at once on a fresh
        database one applies the migrations and the others wait, then find the schema current.

        Returns:
            The revision before and after the upgrade.

        Raises:
            StorageError: If a migration fails (nothing is changed on PostgreSQL, whose DDL is
                transactional), or the database was made by a newer studio.
        """
        current = self.current_revision()
        if current == SCHEMA_HEAD:
            # The common start: nothing to apply, so Alembic (slow to import) is never loaded.
            return current, current
        from alembic import command
        from alembic.util.exc import CommandError

        config = alembic_config()
        with self._upgrade_lock:
            try:
                with self._engine.begin() as conn:
                    if self.dialect == "postgresql":
                        conn.execute(text(f"SET LOCAL lock_timeout = '{_MIGRATION_LOCK_TIMEOUT}'"))
                        conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
                    elif self.dialect == "sqlite":
                        _begin_immediate(conn)
                    before = _stamped_revision(conn)
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
                    after = _stamped_revision(conn)
            except CommandError as exc:
                msg = (
                    f"The database at {self.url_masked} has a schema this studio does not know "
                    f"({exc}); it was probably upgraded by a newer CodeTune Studio. Upgrade the "
                    "studio, or point it at another database."
                )
                raise StorageError(msg) from exc
            except DBAPIError as exc:
                lowered = str(exc.orig).lower()
                if "lock timeout" in lowered or (
                    self.dialect == "sqlite" and "database is locked" in lowered
                ):
                    msg = (
                        f"Another studio has been upgrading the schema of {self.url_masked} for "
                        f"over {_MIGRATION_LOCK_TIMEOUT}; wait for it to finish and start again."
                    )
                    raise StorageError(msg) from exc
                raise self._wrap(exc) from exc
        if after is None:  # pragma: no cover - upgrade to head always stamps a revision
            msg = f"Upgrading {self.url_masked} left no schema revision behind."
            raise StorageError(msg)
        if before != after:
            logger.info("Upgraded the schema of %s from %s to %s", self.url_masked, before, after)
        return before, after

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """Open a session that commits when the block succeeds and rolls back when it raises.

        Yields:
            A new session, closed when the block ends.

        Raises:
            StorageError: If the database rejects a statement or the commit, with a message a
                user can act on.
        """
        session = self._sessions()
        try:
            yield session
            session.commit()
        except DBAPIError as exc:
            session.rollback()
            raise self._wrap(exc) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def status(self, *, is_fallback: bool = False) -> DatabaseStatus:
        """Describe the database for ``db status``.

        Args:
            is_fallback: Whether this is the local store used because PostgreSQL was unreachable.

        Returns:
            Dialect, masked URL, schema revisions and row counts per table.

        Raises:
            StorageError: If the database cannot be read.
        """
        counts: dict[str, int] = {}
        try:
            with self._engine.connect() as conn:
                existing = set(inspect(conn).get_table_names())
                revision = _stamped_revision(conn) if _VERSION_TABLE in existing else None
                for table in Base.metadata.sorted_tables:
                    if table.name in existing:
                        count = conn.execute(select(func.count()).select_from(table)).scalar_one()
                        counts[table.name] = int(count)
        except DBAPIError as exc:
            raise self._wrap(exc) from exc
        return DatabaseStatus(
            dialect=self.dialect,
            url_masked=self.url_masked,
            revision=revision,
            head_revision=self.head_revision(),
            row_counts=counts,
            is_fallback=is_fallback,
        )

    def integrity_check(self) -> list[str]:
        """Ask the database whether its file is sound (SQLite's ``PRAGMA integrity_check``).

        Returns:
            The problems found; empty when the database is sound. PostgreSQL checks its own
            pages, so it always answers with an empty list.

        Raises:
            StorageError: If the database cannot be read at all (a damaged header, say).
        """
        if self.dialect != "sqlite":
            return []
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(text("PRAGMA integrity_check")).scalars().all()
        except DBAPIError as exc:
            raise self._wrap(exc) from exc
        problems = [str(row) for row in rows]
        return [] if problems == ["ok"] else problems

    def dispose(self) -> None:
        """Close every pooled connection. The object must not be used afterwards."""
        self._engine.dispose()

    def _wrap(self, exc: DBAPIError) -> StorageError:
        """Turn a driver error into a StorageError with a message a user can act on."""
        url = self._engine.url
        detail = _first_line(exc, _password(url))
        lowered = detail.lower()
        if self.dialect == "sqlite":
            if "database is locked" in lowered or "database is busy" in lowered:
                return StorageError(
                    f"The local database {url.database} is locked by another CodeTune window "
                    "or process; close the other one or try again in a moment."
                )
            if "malformed" in lowered or "not a database" in lowered:
                return StorageError(
                    f"The local database {url.database} is damaged ({detail}); restore a "
                    "backup, or move the file aside so the studio starts a new one."
                )
            if "readonly" in lowered or "read-only" in lowered:
                return StorageError(
                    f"The local database {url.database} is read-only; check the permissions "
                    "of the file and its folder."
                )
        elif exc.connection_invalidated or (
            isinstance(exc, OperationalError) and any(sign in lowered for sign in _CONNECTION_LOST)
        ):
            return StorageUnavailableError(
                f"Lost the connection to PostgreSQL at {_target(url)}: {detail}. "
                "Check the server and try again."
            )
        if isinstance(exc, IntegrityError):
            return StorageError(f"The database refused the change: {detail}")
        return StorageError(f"Database error on {self.url_masked}: {detail}")


def _begin_immediate(conn: Connection) -> None:
    """Take SQLite's write lock before reading the schema revision.

    Without it the Python driver starts no transaction before DDL, so two processes upgrading
    a fresh file both find it empty and race to create the same tables. With it the second
    waits here (up to the migration lock timeout) and then finds the schema at head. The DDL
    that follows runs inside this transaction: SQLite's DDL is transactional.
    """
    conn.exec_driver_sql(f"PRAGMA busy_timeout={_MIGRATION_LOCK_TIMEOUT_S * 1000}")
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")


def _unreachable(url: URL, cause: str) -> DatabaseUnreachableError:
    target = _target(url)
    message = f"Cannot reach PostgreSQL at {target}: {cause}. {_UNREACHABLE_FIX}."
    return DatabaseUnreachableError(message, target=target, cause=cause)


def _sqlite_engine(url: URL) -> Engine:
    path = url.database
    if path and path != ":memory:" and not path.startswith("file:"):
        folder = Path(path).expanduser().parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_private(Path(path).expanduser())
        except OSError as exc:
            msg = (
                f"Cannot create the folder {folder} for the SQLite database: "
                f"{exc.strerror or exc}. Choose another --data-dir or fix the permissions."
            )
            raise StorageUnavailableError(msg) from exc
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # WAL lets the window read while a training worker writes metrics.
            _switch_to_wal(cursor)
            # With WAL, NORMAL never corrupts the file; a power cut may only lose the last
            # commits, and it saves an fsync per commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    return engine


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried when it lost a race to switch a fresh file.

    Several studios opening a new file at once all try to switch it; one that read the header
    before another's switch waits for an exclusive lock that the WAL readers never release and
    fails as "database is locked". Asked again, it reads the header anew and finds WAL: a no-op.
    """
    for attempt in range(1, _WAL_SWITCH_TRIES + 1):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or attempt == _WAL_SWITCH_TRIES:
                raise
            logger.debug("switching %s to WAL lost a race (%s); asking again", cursor, exc)
        else:
            return


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (its -wal/-shm files follow it)."""
    if path.exists():
        return
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)


def _postgres_engine(url: URL, connect_timeout: float) -> Engine:
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_recycle=1800,
        # libpq counts whole seconds and treats anything below 2 as 2.
        connect_args={"connect_timeout": max(2, round(connect_timeout))},
    )
