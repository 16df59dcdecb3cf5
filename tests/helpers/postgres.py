"""A throwaway PostgreSQL cluster for the tests: one per session, a fresh database per test.

The server binaries come from the machine (Debian's ``postgresql`` package, which
``.ci/test`` installs when it is missing). The cluster lives in a temporary directory,
listens on 127.0.0.1 on a free port with its socket in that directory, runs with
``fsync=off`` (its data is thrown away) and is stopped when the session ends.

PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user
(``nobody`` where there is none) through ``setpriv``, which also gives the server a
parent-death signal: if pytest itself is killed, no server is left behind.

Where no server is installed the PostgreSQL tests skip, except under CI (``CI=true``),
where a missing server is a failure: CI must not pass by testing one database only.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

__all__ = ["PostgresCluster", "find_bindir", "running_cluster"]

_START_SECONDS = 60.0  # a cold start on a busy 2-core machine, with margin
_STOP_SECONDS = 30.0
SUPERUSER = "lrbot"


def find_bindir() -> Path | None:
    """The newest PostgreSQL server's ``bin`` directory, or None when there is none.

    ``LRBOT_PG_BINDIR`` names one explicitly; otherwise Debian's layout
    (``/usr/lib/postgresql/<major>/bin``), then an ``initdb`` on ``PATH``.
    """
    explicit = os.environ.get("LRBOT_PG_BINDIR")
    if explicit:
        return Path(explicit) if (Path(explicit) / "initdb").exists() else None

    def major(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/bin/initdb$", path)
        return int(match.group(1)) if match else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """A running cluster; ``database()`` makes a fresh database and gives its URL."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log_path = root / "postgres.log"
        self.port = _free_port()
        self._as_user: list[str] = []
        self._uid: int | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self.version = 0  # the server's, as 150004 for 15.4
        if os.geteuid() == 0:
            self._as_root()
        # Even unprivileged, setpriv gives the server a parent-death signal (SIGINT is a
        # fast shutdown), so a killed pytest leaves no server running.
        if shutil.which("setpriv"):
            self._as_user = ["setpriv", *self._as_user, "--pdeathsig=INT"]

    def _as_root(self) -> None:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
        self._uid = user.pw_uid
        self._as_user = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        # mkdtemp makes the directory 0700 and root's: the server's user must own it.
        os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self._as_user, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=_START_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            f"--pgdata={self.data}",
            f"--username={SUPERUSER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        self._run("mkdir", str(self.sockets))
        for attempt in range(3):
            self._launch()
            try:
                self._wait_ready()
                return
            except RuntimeError:
                # The free port was taken between the probe and the bind (other test runs
                # share this machine): try another one.
                if "already in use" not in self.log() or attempt == 2:
                    raise
                self.port = _free_port()

    def _launch(self) -> None:
        log = self.log_path.open("wb")
        if self._uid is not None:
            os.fchown(log.fileno(), self._uid, -1)
        self._server = subprocess.Popen(
            [
                *self._as_user,
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                # Not UTC, and not a whole hour: code that takes the session's zone for UTC
                # shows up as a wrong time in the tests, not in a deployment.
                "-c",
                "timezone=Pacific/Chatham",
            ],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: the terminal's Ctrl-C goes to pytest, whose teardown
            # stops the server in order, instead of racing it.
            start_new_session=True,
        )
        log.close()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_SECONDS
        while True:
            if self._server is None or self._server.poll() is not None:
                raise RuntimeError(f"postgres exited at start:\n{self.log()}")
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2) as conn:
                    self.version = conn.info.server_version
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres did not accept connections in {_START_SECONDS:.0f} s:\n"
                        f"{self.log()}"
                    ) from None
                time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A new empty database (a copy of ``template1``) and its SQLAlchemy URL; dropped
        afterwards, with any connection a test left open."""
        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as admin:
            # FILE_COPY (the default before 15): with fsync off a file copy beats
            # WAL-logging every page of the template.
            strategy = " STRATEGY FILE_COPY" if self.version >= 150000 else ""
            admin.execute(f"CREATE DATABASE {name}{strategy}")
        try:
            yield self.url(name)
        finally:
            with psycopg.connect(self.dsn("postgres"), autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Fast shutdown (SIGINT), waited for; SIGKILL only if it hangs past a deadline."""
        server, self._server = self._server, None
        if server is None or server.poll() is not None:
            return
        server.send_signal(signal.SIGINT)
        try:
            server.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            # The whole group: the postmaster's children go with it.
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(_STOP_SECONDS)


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """A started cluster, stopped and deleted on exit (also on Ctrl-C or a failure)."""
    bindir = find_bindir()
    if bindir is None:
        message = (
            "no PostgreSQL server found (/usr/lib/postgresql/*/bin/initdb): "
            "`bash .ci/test` installs it as root, or `apt-get install postgresql`"
        )
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    # Not under pytest's tmp_path: its base is private to the current user, and the
    # server's user must reach its own directory.
    root = Path(tempfile.mkdtemp(prefix="lrbot-pg-"))
    cluster = PostgresCluster(bindir, root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
