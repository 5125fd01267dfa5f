"""A private PostgreSQL cluster a test may stop and restart at will.

The shared server on 5432 is used by everyone's tests and must never be restarted, so the
scenarios that restart PostgreSQL start their own: ``initdb`` into a fresh folder owned by the
``postgres`` user, a free port, the socket in the same folder, trust authentication. Starting
and stopping go through ``pg_ctl`` as ``postgres`` (the server refuses to run as root).

:func:`private_cluster` stops the cluster and removes its folder however the test ends. Where
it cannot run (not root, no PostgreSQL binaries, no ``runuser``) it skips, saying why; under
``CI=true`` it fails instead, as the shared PostgreSQL fixture does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

POSTGRES_ROOT = Path("/usr/lib/postgresql")
#: The database the scenarios use inside the private cluster.
DATABASE = "codetune"
_CTL_TIMEOUT_S = 120


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has initdb and pg_ctl."""
    if not POSTGRES_ROOT.is_dir():
        return None
    versions = sorted(
        (p for p in POSTGRES_ROOT.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
    )
    for version in reversed(versions):
        bindir = version / "bin"
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def why_unavailable() -> str | None:
    """Why no private cluster can be started here, or ``None`` when one can."""
    if os.geteuid() != 0:
        return "a private PostgreSQL cluster needs root (to run initdb and pg_ctl as postgres)"
    if find_bindir() is None:
        return f"no PostgreSQL server binaries (initdb, pg_ctl) under {POSTGRES_ROOT}"
    if shutil.which("runuser") is None:
        return "runuser is missing (util-linux)"
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no postgres system user"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PrivateCluster:
    """One running PostgreSQL cluster in its own folder, on its own port."""

    bindir: Path
    folder: Path
    port: int

    @property
    def data_dir(self) -> Path:
        """The cluster's data folder (``initdb -D``)."""
        return self.folder / "data"

    def url(self, database: str = DATABASE) -> str:
        """A SQLAlchemy URL for ``database`` on this cluster (trust auth: no password)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _as_postgres(self, *args: str) -> None:
        completed = subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=_CTL_TIMEOUT_S,
            check=False,
        )
        if completed.returncode != 0:
            command = " ".join(args)
            msg = f"{command} failed ({completed.returncode}): {completed.stderr.strip()}"
            raise RuntimeError(msg)

    def _ctl(self, *args: str) -> None:
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-w", *args)

    def init(self) -> None:
        """Create the cluster (trust auth, no fsync wait: it lives for one test)."""
        self._as_postgres(
            str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
            "--auth=trust", "--no-sync", "--no-instructions",
        )  # fmt: skip

    def _server_args(self) -> tuple[str, ...]:
        # The log file matters beyond reading it: without one the server inherits pg_ctl's
        # output pipe and the caller waits for an end of file that never comes.
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        return ("-l", str(self.folder / "server.log"), "-o", options)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._ctl(*self._server_args(), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions and disconnect everyone)."""
        self._ctl("-m", mode, "stop")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every client is disconnected, the server comes back."""
        self._ctl(*self._server_args(), "-m", "fast", "restart")

    def is_running(self) -> bool:
        """Whether the server's postmaster is up."""
        return (self.data_dir / "postmaster.pid").exists()

    def create_database(self, name: str = DATABASE) -> str:
        """Create an empty database and return its URL."""
        import sqlalchemy as sa

        admin = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A started private cluster, stopped and removed afterwards even when the test fails."""
    reason = why_unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            # CI must run the restart scenarios; a skip there would hide them.
            pytest.fail(f"{reason} (CI is set: the PostgreSQL restart scenarios must not skip)")
        pytest.skip(reason)
    bindir = find_bindir()
    assert bindir is not None
    # Not pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="codetune-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    cluster = PrivateCluster(bindir=bindir, folder=folder, port=_free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        try:
            if cluster.is_running():
                cluster.stop("immediate")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
