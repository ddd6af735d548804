"""What differs between the two backends, named once: `Dialect`, and the store's errors.

The store's SQL text is the subset SQLite and PostgreSQL share, written with `?`
placeholders. Whatever cannot be said that way is a method or attribute of a `Dialect`:
`daemon/store/sqlite.py` and `daemon/store/postgres.py` each hold one, beside the code that
opens that backend's database. Nothing else in the store knows which backend it is on.
"""

from __future__ import annotations

import peewee as pw

from daemon.errors import AutocallError, Unavailable


class StoreError(AutocallError):
    """The database cannot be used (newer schema, unreadable, not autocall's, a password refused, ...)."""


class StoreUnavailable(StoreError, Unavailable):
    """The database cannot be written (or read) right now: locked past the busy timeout, read-only,
    a full disk, an I/O error, a file SQLite cannot open, a server that does not answer or is
    starting up. Trying again later may work."""


class StoreBusy(StoreUnavailable):
    """Another connection holds the database's write lock past the busy timeout: retry later."""


def driver_error(error: pw.DatabaseError) -> BaseException | None:
    """The driver's own exception behind peewee's `error` (its first argument, or the one it
    was raised from), or None."""
    for candidate in (error.args[0] if error.args else None, error.__context__):
        if isinstance(candidate, BaseException) and not isinstance(candidate, pw.PeeweeException):
            return candidate
    return None


class Dialect:
    """The SQL one backend says its own way. Instances hold no state."""

    name = ""
    id_column = ""  # DDL of an integer primary key the database numbers itself
    real_column = ""  # DDL of a floating-point column that holds epoch seconds to the microsecond

    def adapt(self, sql: str) -> str:
        """`sql` with its `?` placeholders in the driver's parameter style."""
        return sql

    def insert(self, db: pw.Database, sql: str, params) -> int:
        """Run an INSERT of one row into a table with an `id` column; returns the new id."""
        raise NotImplementedError

    now_sql = ""  # an SQL expression: the database's own clock, in epoch seconds
    snapshot_begin = "BEGIN"  # starts a read-only transaction whose every read sees one moment
    # Ends the claim's SELECT of due customers: rows another transaction holds are passed over.
    skip_locked = ""
    # DDL of the triggers that keep `queue_count` (daemon/store/counts.py) as customer rows
    # change state or queue, or are deleted.
    count_triggers: tuple[str, ...] = ()

    def schema_version(self, db: pw.Database) -> int:
        """The version the migrations have reached (0: none ran)."""
        raise NotImplementedError

    def set_schema_version(self, db: pw.Database, version: int):
        raise NotImplementedError

    def set_lock_wait(self, db: pw.Database, ms: int):
        """From now on, on this connection, a lock is waited for at most `ms` milliseconds."""
        raise NotImplementedError

    # DDL of schema 12: what makes change_token's value, where the backend needs any.
    change_triggers: tuple[str, ...] = ()
    # Whether change_token moves with every commit, a heartbeat's too (SQLite), or only with
    # the writes to `customer` and `queue` (PostgreSQL's change_triggers).
    every_commit_moves_token = False

    def change_token(self, db: pw.Database) -> object | None:
        """A value that stays equal (==) for as long as nothing that could change the running
        queues (`customer`, `queue`) is committed by anyone, this connection included; None
        where the backend cannot tell (read every time)."""
        return None

    def after_bulk_write(self, db: pw.Database, table: str):
        """Let the planner know `table` just grew or changed a lot (an import of thousands)."""

    def continue_ids(self, db: pw.Database, table: str):
        """After rows were written into `table` with their own ids, make the next id the
        database gives one past the largest (SQLite does that by itself)."""

    def error_class(self, error: pw.DatabaseError, reason: str) -> type[StoreError]:
        """StoreBusy, StoreUnavailable or StoreError for `error` (`reason`: its text, or that of
        the error behind it): a lock, something that may pass, or something that will not."""
        raise NotImplementedError
