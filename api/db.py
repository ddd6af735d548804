"""The API's SQLite work, run off the gevent hub.

The hub serves every connection; a statement run on it stops them all while it waits (for
the write lock another process holds, say, or through a long export). So no statement of
a request runs there:

- `Workers.read(fn, *args)` runs `fn(db, *args)` on one of `readers` threads: the report
  reads, `/healthz`, each page of a CSV export.
- `Workers.write(fn, *args)` runs it on the one writer thread. The API's own writes queue
  there in order instead of racing for SQLite's lock (its busy handler sleeps and retries, so
  racing writers wait longer than the lock is held). The store's chunked commands hand it one
  transaction at a time (their `run=` argument), so a stop sent during a big import is written
  between two chunks.
- `Workers.compute(fn, *args)` runs CPU work that needs no database (reading and checking a
  large body) on a thread of its own, so the hub keeps answering meanwhile.

Budget: a read or write waits at most `lock_timeout` seconds in all, first for a free thread,
then for the database (SQLite's busy timeout is set to what is left when the job starts).
Past it, or when the disk is full, the file read-only or failing, the job raises
`DatabaseUnavailable` with a sentence for the client and a Retry-After; the transaction it
was in is rolled back, so that job wrote nothing (the app answers 503: docs/api.md).

Connections: an SQLite connection is used only on the thread that opened it, and nothing
of a worker thread's database work may wait on a gevent lock (a native thread blocked on one
can miss its wake-up: two workers connecting at once hung that way). So each worker thread
has a peewee database object of its own, made by `open_one` for the same file with
`one_thread=True` (store.schema.database): no lock of peewee's, no connection state shared
with any other thread, and sqlite3's own check that no other thread uses it. `fn` gets that
object as `db`. It connects on its thread's first job and stays open while the thread
lives (the pools never retire idle threads); after an error that may mean the file changed
under it (read-only, I/O error), or on PostgreSQL after any that is weather (the server
restarted: the connection is dead, and peewee would hand it back as open), it is closed, and
the next job opens a fresh one. The hub holds none.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable

import gevent
import gevent.monkey
import gevent.threadpool
import peewee as pw

from daemon.errors import Unavailable
from daemon.store.dialect import driver_error
from daemon.store.schema import StoreBusy, StoreUnavailable, dialect_of, store_error

# One: under the GIL more threads would check bodies no faster, and the template loader that
# checks consult (daemon.ivr.TemplateLoader) is not made for several threads at once.
COMPUTE_THREADS = 1


class DatabaseUnavailable(Unavailable):
    """The database cannot do this now; `reason` says why, `retry_after` when to try again (s)."""

    def __init__(self, reason: str, retry_after: int):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class _QueueWait(Exception):
    """No thread came free within the budget (raised by gevent.Timeout)."""


class Workers:
    """The threads that run the API's database work (see the module docstring)."""

    def __init__(self, open_one: Callable[[], pw.Database], *, readers: int = 4, lock_timeout: float = 5.0):
        self.open_one = open_one
        self.lock_timeout = lock_timeout
        self._databases: dict[int, pw.Database] = {}  # OS thread id -> that thread's own
        self._readers = gevent.threadpool.ThreadPool(readers)
        self._writer = gevent.threadpool.ThreadPool(1)
        self._compute = gevent.threadpool.ThreadPool(COMPUTE_THREADS)

    def read(self, fn, *args, **kwargs):
        """`fn(db, *args, **kwargs)` on a reader thread, `db` that thread's own, connected."""
        return self._submit(self._readers, "read", fn, args, kwargs)

    def write(self, fn, *args, **kwargs):
        """`fn(db, *args, **kwargs)` on the writer thread, after the writes sent before it."""
        return self._submit(self._writer, "write", fn, args, kwargs)

    def compute(self, fn, *args, **kwargs):
        """`fn(*args, **kwargs)` on a thread, for CPU work that uses no database."""
        return _outcome(self._compute.apply(_caught, (fn, args, kwargs)))

    def close(self):
        """Stop the threads (their connections close as the threads end)."""
        for pool in (self._readers, self._writer, self._compute):
            pool.kill()

    def _submit(self, pool, kind: str, fn, args, kwargs):
        deadline = time.monotonic() + self.lock_timeout
        try:
            with gevent.Timeout(self.lock_timeout, _QueueWait):
                result = pool.spawn(self._job, deadline, fn, args, kwargs)
        except _QueueWait:
            raise self._busy(f"every database {kind} thread stayed busy") from None
        return _outcome(result.get())

    def _job(self, deadline: float, fn, args, kwargs):
        return _caught(self._run, (deadline, fn, args, kwargs), {})

    def _run(self, deadline: float, fn, args, kwargs):
        """On a worker thread: open its connection if needed, give SQLite what is left of
        the budget, run `fn`; a database error that is weather becomes DatabaseUnavailable."""
        db = self._databases.get(_thread_id())
        if db is None:
            db = self._databases[_thread_id()] = self.open_one()
        try:
            db.connect(reuse_if_open=True)
            left = max(1, int((deadline - time.monotonic()) * 1000))
            dialect_of(db).set_lock_wait(db, left)
            return fn(db, *args, **kwargs)
        except pw.DatabaseError as e:
            unavailable = self._unavailable(e)
            if unavailable is None:
                raise
            if _reopen_after(e) and not db.is_closed():
                db.close()  # the pool (PostgreSQL) drops a connection the server cut, and connects anew
            raise unavailable from e

    def _busy(self, what: str) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"the database is busy: {what} for {self.lock_timeout:g} s (another process may hold its "
            "write lock, e.g. an open transaction in the sqlite3 shell)",
            retry_after=max(1, math.ceil(self.lock_timeout)),
        )

    def _unavailable(self, error: pw.DatabaseError) -> DatabaseUnavailable | None:
        code = _weather_code(error)
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return self._busy("its write lock was not free")
        if code is not None:
            return DatabaseUnavailable(_REASONS[code], retry_after=30)
        if isinstance(driver_error(error), sqlite3.Error):
            return None  # SQLite's other errors are not weather (a missing table: a bug)
        kind = store_error(error, "database")  # another backend's: as its dialect tells them apart
        if isinstance(kind, StoreBusy):
            return self._busy("a lock it needs was not free")
        return DatabaseUnavailable(str(kind), retry_after=30) if isinstance(kind, StoreUnavailable) else None


_thread_id = gevent.monkey.get_original("_thread", "get_ident")  # the OS thread's, not the greenlet's


def _caught(fn, args, kwargs) -> tuple:
    """(value, None) or (None, the exception): a task never raises in the pool, which would
    print it as a crash, though QueueNotFound or Invalid are answers the view turns into replies."""
    try:
        return fn(*args, **kwargs), None
    except Exception as e:  # noqa: BLE001 - handed back to the waiting greenlet, raised there
        return None, e


def _outcome(pair: tuple):
    value, error = pair
    if error is not None:
        raise error
    return value


_REASONS = {
    sqlite3.SQLITE_FULL: "the disk holding the database is full (free some space)",
    sqlite3.SQLITE_READONLY: "the database cannot be written: its file or file system is read-only, "
    "or the file was moved or replaced while autocall-api had it open",
    sqlite3.SQLITE_IOERR: "the disk failed reading or writing the database (I/O error)",
    sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened (missing, or its directory is not accessible)",
    sqlite3.SQLITE_PERM: "the operating system refused access to the database file",
}
_WEATHER = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, *_REASONS}
# After these the connection may be stuck to a file that changed under it: open a new one.
_REOPEN = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}


def _weather_code(error: BaseException) -> int | None:
    """The primary SQLite result code behind a peewee error when it is weather (busy, full,
    read-only, I/O), else None. peewee wraps sqlite3's error as its first argument; an error
    while rolling back has the one that caused it as its context."""
    seen: BaseException | None = error
    while seen is not None:
        for candidate in (seen, *seen.args):
            code = getattr(candidate, "sqlite_errorcode", None)
            if isinstance(code, int) and code & 0xFF in _WEATHER:
                return code & 0xFF
        seen = seen.__context__
    return None


def _reopen_after(error: pw.DatabaseError) -> bool:
    """SQLite's errors of a file that may have changed under the connection, and any weather
    of another backend's (a server restarted or out of reach: its connection is gone)."""
    if not isinstance(driver_error(error), sqlite3.Error):
        return True
    return _weather_code(error) in _REOPEN
