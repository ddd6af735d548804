"""A real PostgreSQL server for the tests: one cluster per session, a fresh schema per test.

The cluster is made by `initdb` in a temporary directory and started by `pg_ctl` on a free
loopback port, its socket in that directory, with fsync off (it is thrown away). PostgreSQL
refuses to run as root, so under root it runs as the `postgres` user (Debian's package makes
it), else as `nobody`, the directory handed to that user. Connections log in over TCP with a
password (scram-sha-256), so every test on PostgreSQL goes through the password path.

Each test gets its own schema (`search_path` and `application_name` in the URL, one
millisecond to make) instead of a database of its own (fifty); at its end every connection
of that test is ended by the server, so a pool a test leaves open cannot pile up.

No PostgreSQL, no pass: if the server cannot be found or started the tests that need it
fail with the reason (`make test` installs Debian's `postgresql`; see the Makefile).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from daemon.store import schema
from daemon.store.url import POSTGRESQL, DatabaseUrl

USER = "autocall"
BACKENDS = ("sqlite", "postgresql")


def _bin(name: str) -> str:
    """The PostgreSQL program `name`: on PATH, else the newest of Debian's versioned dirs."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parent.parent.name))
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: `apt-get install postgresql` (the Makefile's SYSTEM_PACKAGES)"
        )
    return candidates[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A throw-away PostgreSQL server: `start()`, `url(name)` per test, `stop()`."""

    def __init__(self, *, durable: bool = False):
        # `durable`: a commit acknowledged survives a crash of the server (synchronous_commit on,
        # PostgreSQL's default); off, the usual test server is faster and loses its last commits.
        self.durable = durable
        # In /tmp, not $TMPDIR or pytest's 0700 base: the server's user must reach it, and the
        # socket's path must stay under 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="autocall-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.data = self.dir / "data"
        self.password = secrets.token_urlsafe(16)
        self.port = 0
        self.owner = None if os.geteuid() != 0 else _unprivileged_user()
        self._admin = None
        self._names = itertools.count(1)

    def _run(self, *argv, check=True):
        command = [*argv] if self.owner is None else ["runuser", "-u", self.owner, "--", *argv]
        return subprocess.run(command, cwd=self.dir, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> PgCluster:
        if self.owner is not None:
            os.chown(self.dir, pwd.getpwnam(self.owner).pw_uid, -1)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.owner is not None:
            os.chown(pwfile, pwd.getpwnam(self.owner).pw_uid, -1)
        try:
            self._run(
                _bin("initdb"),
                *("-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"),
                *("--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions"),
            )
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"initdb failed: {e.stderr or e.stdout}") from None
        for _ in range(3):  # a free port may be taken before the server binds it
            self.port = _free_port()
            started = self._pg_ctl_start()
            if started.returncode == 0:
                import psycopg

                with psycopg.connect(self.dsn("postgres"), password=self.password, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {USER}")
                return self
        raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{(self.dir / 'server.log').read_text()[-2000:]}")

    def _pg_ctl_start(self):
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
            f" -c synchronous_commit={'on' if self.durable else 'off'} -c full_page_writes=off -c max_connections=300"
        )
        log = self.dir / "server.log"
        return self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t", "30", "-o", options, "start", check=False
        )

    def restart(self, down: float = 0.0):
        """Crash the server (every connection cut; only a `durable` one keeps every commit), stay down
        `down` seconds, start it again on the same port."""
        if self._admin is not None:
            self._admin.close()
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        time.sleep(down)
        started = self._pg_ctl_start()
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}")

    def stop(self):
        if self._admin is not None:
            self._admin.close()
        if self.port:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def dump(self, location: DatabaseUrl, to: Path):
        """`pg_dump` of `location`'s schema into the file `to` (plain SQL), for a post-mortem."""
        name = location.dsn.rpartition("application_name=")[2]
        subprocess.run(
            [_bin("pg_dump"), "-n", name, "-f", str(to), self.dsn()],
            env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True,
            check=True,
            timeout=300,
        )

    def admin(self):
        """A psycopg connection as the superuser, in autocommit."""
        import psycopg

        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.dsn(), password=self.password, autocommit=True)
        return self._admin

    def dsn(self, database: str = USER, **params) -> str:
        query = "&".join(f"{key}={quote(value)}" for key, value in params.items())
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")

    def fresh(self) -> DatabaseUrl:
        """A new empty schema, and the URL (with its password) whose connections work in it."""
        name = f"t{next(self._names)}"
        self.admin().execute(f"CREATE SCHEMA {name}")
        dsn = self.dsn(options=f"-csearch_path={name}", application_name=name)
        return DatabaseUrl(POSTGRESQL, dsn=dsn, password=self.password)

    def end_connections(self, location: DatabaseUrl):
        """End every server connection made with `location` (a test's leftovers)."""
        name = location.dsn.rpartition("application_name=")[2]
        self.admin().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,)
        )


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root with neither a postgres nor a nobody user to run PostgreSQL as")


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PgCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """Where a fresh, empty store lives: an SQLite file in `tmp_path`, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield DatabaseUrl.sqlite(tmp_path / "store.sqlite3")
        return
    cluster = request.getfixturevalue("pg_cluster")
    location = cluster.fresh()
    yield location
    cluster.end_connections(location)


@pytest.fixture
def store_db(store_url):
    """The store opened (migrated) at `store_url`; closed afterwards, every pooled connection too."""
    db = schema.open_database(store_url)
    yield db
    close(db)


def close(db):
    if db.in_transaction():
        db.rollback()
    (db.close_all if hasattr(db, "close_all") else db.close)()
