"""The campaign's own look at the database, behind the product's back: an SQLite file or a
PostgreSQL schema, read with the driver alone (no store code, so a store bug cannot hide).

`rows(sql, *params)` runs one statement; `snapshot(*statements)` runs several in one read
transaction, a consistent view however the writers race. The SQL is the store's portable
kind with `?` placeholders. On PostgreSQL a connection cut by a server restart (a fault of the
campaign) is tried again for up to `RETRY_FOR` seconds: the campaign's reads must outlive it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import gevent

from daemon.store.url import DatabaseUrl

RETRY_FOR = 60.0  # seconds a PostgreSQL read is tried again while the server is away


class Reader:
    def __init__(self, where: Path | DatabaseUrl):
        self.where = where

    @property
    def postgresql(self) -> bool:
        return isinstance(self.where, DatabaseUrl)

    def rows(self, sql: str, *params) -> list:
        return self.snapshot((sql, params))[0]

    def snapshot(self, *statements) -> list[list]:
        """The rows of each statement (a string, or (sql, params)), all read at one moment."""
        statements = [(s, ()) if isinstance(s, str) else s for s in statements]
        if self.postgresql:
            return self._retried(lambda: self._pg(statements))
        conn = sqlite3.connect(self.where, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN")
            found = [conn.execute(sql, params).fetchall() for sql, params in statements]
            conn.execute("COMMIT")
            return found
        finally:
            conn.close()

    def _pg(self, statements) -> list[list]:
        import psycopg

        with psycopg.connect(self.where.dsn, password=self.where.password, autocommit=True, connect_timeout=5) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            found = [conn.execute(sql.replace("?", "%s"), params).fetchall() for sql, params in statements]
            conn.execute("COMMIT")
            return found

    @staticmethod
    def _retried(read):
        import psycopg

        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                return read()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                gevent.sleep(0.5)
