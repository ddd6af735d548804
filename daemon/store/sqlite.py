"""The SQLite backend: the embedded default, one file the API and the dialer share.

`connect(path)` opens the file with WAL, foreign keys and a busy timeout, every write
transaction taken with BEGIN IMMEDIATE (so two writers queue up on the busy timeout instead
of failing on a lock upgrade). `connect_readonly(path)` opens it with SQLite's `mode=ro`, for
views that must never write nor take a write lock. The schema version is
`PRAGMA user_version`.
"""

from __future__ import annotations

from pathlib import Path

import peewee as pw

from daemon import dbfile
from daemon.store.dialect import Dialect, StoreBusy, StoreError, StoreUnavailable
from daemon.store.url import DatabaseUrl


class SqliteDialect(Dialect):
    name = "sqlite"
    id_column = "INTEGER NOT NULL PRIMARY KEY"
    real_column = "REAL"
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    count_triggers = (
        "CREATE TRIGGER customer_count_delete AFTER DELETE ON customer BEGIN"
        " UPDATE queue_count SET n = n - 1 WHERE queue_id = OLD.queue_id AND state = OLD.state; END",
        "CREATE TRIGGER customer_count_update AFTER UPDATE OF state, queue_id ON customer"
        " WHEN OLD.state IS NOT NEW.state OR OLD.queue_id IS NOT NEW.queue_id BEGIN"
        " UPDATE queue_count SET n = n - 1 WHERE queue_id = OLD.queue_id AND state = OLD.state;"
        " INSERT INTO queue_count (queue_id, state, n) VALUES (NEW.queue_id, NEW.state, 1)"
        " ON CONFLICT (queue_id, state) DO UPDATE SET n = n + 1; END",
    )

    def insert(self, db, sql, params) -> int:
        return db.execute_sql(sql, params).lastrowid

    def set_lock_wait(self, db, ms: int):
        db.execute_sql(f"PRAGMA busy_timeout = {int(ms)}")

    def schema_version(self, db) -> int:
        return db.execute_sql("PRAGMA user_version").fetchone()[0]

    def set_schema_version(self, db, version: int):
        db.execute_sql(f"PRAGMA user_version = {int(version)}")

    every_commit_moves_token = True

    def change_token(self, db) -> object:
        # `data_version` moves when another connection, of any process, commits; this
        # connection's own writes show in its `total_changes`. The connection itself is part of
        # the token: one opened afresh (after an error) starts both counts anew.
        connection = db.connection()
        return connection, db.execute_sql("PRAGMA data_version").fetchone()[0], connection.total_changes

    def error_class(self, error, reason: str) -> type[StoreError]:
        if not isinstance(error, pw.OperationalError):
            return StoreError  # not a database, corrupt, a constraint: trying again will not help
        # SQLite's OperationalError: locked, read-only, full, an I/O error, cannot open.
        return StoreBusy if "locked" in reason or "busy" in reason else StoreUnavailable


DIALECT = SqliteDialect()


def connect(location: DatabaseUrl, *, busy_timeout: float) -> pw.SqliteDatabase:
    """The file `location` names (made with its modes if missing, daemon.dbfile), connected."""
    path = Path(location.path or "")
    dbfile.create(path)  # directory and file with their modes, or one clear error
    db = database(location, busy_timeout=busy_timeout)
    db.connect(reuse_if_open=True)
    return db


def database(location: DatabaseUrl, *, busy_timeout: float, one_thread: bool = False) -> pw.SqliteDatabase:
    """The file `location` names as `connect` sets it up, not yet connected. `one_thread`: for a
    database object only one OS thread ever uses (api/db.py gives each worker thread its own):
    no lock of peewee's, and sqlite3 refuses any other thread."""
    return pw.SqliteDatabase(
        str(Path(location.path or "")),
        timeout=busy_timeout,
        lock_type="IMMEDIATE",
        check_same_thread=one_thread,
        thread_safe=not one_thread,
        pragmas={
            "journal_mode": "wal",
            "foreign_keys": 1,
            "synchronous": "normal",
            "busy_timeout": int(busy_timeout * 1000),
        },
    )


def connect_readonly(location: DatabaseUrl) -> tuple[pw.SqliteDatabase, int]:
    """The file `location` names opened with `mode=ro`, and its schema version."""
    path = Path(location.path or "")
    if not path.is_file():
        raise StoreError(f"no database at {path}")
    db = pw.SqliteDatabase(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
    try:
        return db, DIALECT.schema_version(db)
    except pw.DatabaseError as e:
        db.close()
        raise StoreError(f"{path}: cannot read it as an SQLite database: {e}") from None
