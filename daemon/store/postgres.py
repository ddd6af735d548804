"""The PostgreSQL backend: one database several processes share, through psycopg 3.

`connect(url)` returns a pooled peewee database: a process keeps up to POOL_SIZE connections
open and a `close()` hands one back, so the API's connection per request costs no new login.
Write transactions run one at a time across every process, as SQLite's BEGIN IMMEDIATE makes
them: each takes one transaction-scoped advisory lock right after BEGIN, so every check the
store makes inside a transaction (the queue still running, the customer still pending, nobody
in a call to that number) still holds when it commits. A wait for a lock longer than the busy
timeout fails (`lock_timeout`), as SQLite's busy timeout does. Reads outside a
transaction take no lock; `read_snapshot` is REPEATABLE READ, READ ONLY.

Floating-point columns are DOUBLE PRECISION (epoch seconds need more than REAL's 24 bits).
The schema version is the one row of `autocall_schema`. The password comes with the URL
object (daemon/store/url.py), never in the DSN, so no error or log line can carry it.
"""

from __future__ import annotations

from typing import Any

import peewee as pw
from playhouse.pool import PooledPostgresqlDatabase

from daemon.store.dialect import Dialect, StoreBusy, StoreError, StoreUnavailable, driver_error
from daemon.store.url import DatabaseUrl

POOL_SIZE = 20  # connections one process keeps at most (the server's max_connections is shared)
CONNECT_TIMEOUT = 10  # seconds to reach the server before "unavailable"
WRITE_LOCK = 0x6175_746F_6361_6C6C  # pg_advisory_xact_lock's key for the store's write transactions
# SQLSTATEs that mean "not now": a lock waited for too long (or a deadlock, a serialisation
# failure), and what may pass: connection lost, out of resources, shutting down or starting up,
# a read-only server (a standby), a full disk, an I/O error.
_BUSY_STATES = ("55P03", "40001", "40P01")
_UNAVAILABLE_STATES = ("08", "53", "57P", "25006", "58")


class PostgresDialect(Dialect):
    name = "postgresql"
    id_column = "SERIAL PRIMARY KEY"
    real_column = "DOUBLE PRECISION"
    now_sql = "EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION"
    snapshot_begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    # One row per (queue, state) taken by every writer is no new contention here: write
    # transactions run one at a time anyway (WRITE_LOCK, the module docstring).
    count_triggers = (
        "CREATE FUNCTION customer_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " UPDATE queue_count SET n = n - 1 WHERE queue_id = OLD.queue_id AND state = OLD.state;"
        " IF TG_OP = 'UPDATE' THEN"
        " INSERT INTO queue_count (queue_id, state, n) VALUES (NEW.queue_id, NEW.state, 1)"
        " ON CONFLICT (queue_id, state) DO UPDATE SET n = queue_count.n + 1;"
        " END IF;"
        " RETURN NULL; END $$",
        "CREATE TRIGGER customer_count_delete AFTER DELETE ON customer FOR EACH ROW EXECUTE FUNCTION customer_count()",
        "CREATE TRIGGER customer_count_update AFTER UPDATE OF state, queue_id ON customer FOR EACH ROW"
        " WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.queue_id IS DISTINCT FROM NEW.queue_id)"
        " EXECUTE FUNCTION customer_count()",
    )

    # change_token: a count each transaction that wrote `customer` or `queue` moves as it
    # commits, so a reader sees it move together with the write and not before. A statement
    # trigger marks the transaction (once: a local setting remembers it, undone with a savepoint
    # rolled back; a million-row copy is a million statements) with a row in `store_change_due`,
    # whose deferred trigger moves the count at COMMIT: the one row is locked for that instant
    # only, so a writer outside autocall's WRITE_LOCK (psql left in a transaction) holds up
    # nobody's claim. Names are schema-qualified from TG_TABLE_SCHEMA: a session whose
    # search_path lacks the schema (pg_dump's output sets it to '') writes as before.
    change_triggers = (
        "CREATE TABLE store_change (n BIGINT NOT NULL)",
        "INSERT INTO store_change (n) VALUES (0)",
        "CREATE TABLE store_change_due (due BOOLEAN NOT NULL)",
        "CREATE FUNCTION store_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF current_setting('autocall.changed', true) IS DISTINCT FROM 'y' THEN"
        " EXECUTE format('INSERT INTO %I.store_change_due (due) VALUES (true)', TG_TABLE_SCHEMA);"
        " PERFORM set_config('autocall.changed', 'y', true);"
        " END IF; RETURN NULL; END $$",
        "CREATE FUNCTION store_change_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " EXECUTE format('UPDATE %I.store_change SET n = n + 1', TG_TABLE_SCHEMA);"
        " EXECUTE format('DELETE FROM %I.store_change_due', TG_TABLE_SCHEMA);"
        " RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER store_change_commit AFTER INSERT ON store_change_due"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION store_change_commit()",
        "CREATE TRIGGER customer_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON customer"
        " FOR EACH STATEMENT EXECUTE FUNCTION store_changed()",
        "CREATE TRIGGER queue_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON queue"
        " FOR EACH STATEMENT EXECUTE FUNCTION store_changed()",
        # The count triggers' function (schema 5) named queue_count unqualified too: it now
        # runs with the schema it was made in as its search_path.
        "DO $$ BEGIN EXECUTE format('ALTER FUNCTION customer_count() SET search_path = %I', current_schema()); END $$",
    )

    def change_token(self, db) -> object | None:
        row = db.execute_sql("SELECT n FROM store_change").fetchone()
        return None if row is None else row[0]  # the row deleted by hand: read every time

    def adapt(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def insert(self, db, sql, params) -> int:
        return db.execute_sql(sql + " RETURNING id", params).fetchone()[0]

    def schema_version(self, db) -> int:
        if db.execute_sql("SELECT to_regclass('autocall_schema')").fetchone()[0] is None:
            return 0
        row = db.execute_sql("SELECT version FROM autocall_schema").fetchone()
        return 0 if row is None else row[0]

    def set_schema_version(self, db, version: int):
        db.execute_sql("CREATE TABLE IF NOT EXISTS autocall_schema (version INTEGER NOT NULL)")
        db.execute_sql("DELETE FROM autocall_schema")
        db.execute_sql("INSERT INTO autocall_schema (version) VALUES (%s)", (int(version),))

    def set_lock_wait(self, db, ms: int):
        db.execute_sql(f"SET lock_timeout = {int(ms)}")

    def after_bulk_write(self, db, table: str):
        # Until autovacuum gets to it (a minute or more), the planner takes a fresh import for a
        # handful of rows and walks every pending customer for each IN list of a DNC or import.
        db.execute_sql(f"ANALYZE {table}")

    def continue_ids(self, db, table: str):
        db.execute_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL)"
            f" FROM {table}"
        )

    def error_class(self, error, reason: str) -> type[StoreError]:
        state = getattr(driver_error(error), "sqlstate", None)
        if state is not None:
            if state.startswith(_BUSY_STATES):
                return StoreBusy
            return StoreUnavailable if state.startswith(_UNAVAILABLE_STATES) else StoreError
        # No SQLSTATE: the client could not reach or keep the server, unless it said who we are is wrong.
        refused = "authentication" in reason or "does not exist" in reason or "no password" in reason
        reached = isinstance(error, pw.OperationalError | pw.InterfaceError)
        return StoreError if refused or not reached else StoreUnavailable


DIALECT = PostgresDialect()


class _Session(pw.PostgresqlDatabase):
    """A new connection's settings, then the write lock at the start of every transaction."""

    def init(self, database, **kwargs):
        self._settings = [f"SET lock_timeout = {int(kwargs.pop('lock_timeout_ms', 30_000))}"]
        if kwargs.pop("readonly", False):
            self._settings.append("SET default_transaction_read_only = on")
        super().init(database, **kwargs)

    def _connect(self):
        conn = super()._connect()
        for statement in self._settings:
            conn.execute(statement)
        return conn

    def begin(self, isolation_level=None):
        super().begin(isolation_level)
        try:
            self.execute_sql("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        except Exception:
            self.rollback()  # peewee has not counted this transaction yet: end it here
            raise


class PostgresStore(PooledPostgresqlDatabase, _Session):
    """The store's database on PostgreSQL (connections pooled per process)."""


def connect(location: DatabaseUrl, *, busy_timeout: float, readonly: bool = False) -> PostgresStore:
    """A pooled database for `location`, one connection open (StoreBusy/StoreError if not)."""
    db = database(location, busy_timeout=busy_timeout, readonly=readonly)
    db.connect(reuse_if_open=True)
    return db


def database(
    location: DatabaseUrl, *, busy_timeout: float, readonly: bool = False, one_thread: bool = False
) -> PostgresStore:
    """`location` as `connect` sets it up, not yet connected; `one_thread`: a pool of one
    connection, for a database object only one OS thread uses (api/db.py)."""
    params: dict[str, Any] = {"password": location.password} if location.password else {}
    if "connect_timeout=" not in location.dsn:
        params["connect_timeout"] = CONNECT_TIMEOUT
    db = PostgresStore(
        location.dsn,
        max_connections=1 if one_thread else POOL_SIZE,
        timeout=busy_timeout,  # how long a thread waits for a free connection of the pool
        stale_timeout=600,
        field_types={"FLOAT": DIALECT.real_column},
        prefer_psycopg3=True,
        lock_timeout_ms=int(busy_timeout * 1000),
        readonly=readonly,
        **params,
    )
    return db


def connect_readonly(location: DatabaseUrl) -> tuple[PostgresStore, int]:
    """`location` opened so that no transaction can write, and its schema version."""
    try:
        db = connect(location, busy_timeout=5.0, readonly=True)
    except pw.DatabaseError as e:
        raise StoreError(f"database {location}: {e}") from None
    try:
        return db, DIALECT.schema_version(db)
    except pw.DatabaseError as e:
        db.close()
        raise StoreError(f"{location}: cannot read the autocall schema: {e}") from None
