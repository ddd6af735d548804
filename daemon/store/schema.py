"""The tables, their versions, and the two ways to open the file.

`open_database(path)` returns a peewee database with WAL, foreign keys and a busy timeout,
every write transaction taken with BEGIN IMMEDIATE (so two writers queue up on the busy
timeout instead of failing on a lock upgrade), and the schema created or migrated to
`SCHEMA_VERSION` (kept in `PRAGMA user_version`); a current schema is only read. Its failures
are `StoreError`s: `store_error` tells those that may pass (`StoreUnavailable`, `StoreBusy`)
from those that will not. `open_readonly(path)` opens it with
SQLite's `mode=ro` for views that must never write or take a write lock.

The models declare the tables and are never bound to a database: two databases open in one
process do not interfere, and every store function names the database it works on.

Everything that knows the backend is SQLite lives in this module: the PRAGMAs, the version
counter, the placeholder, the id of an inserted row and how a read snapshot begins. The SQL text elsewhere in the store
is the subset SQLite and PostgreSQL share, with `?` placeholders that `execute` and
`executemany` adapt to the backend's parameter style.

Times are Unix epoch seconds (REAL). JSON columns hold what the API accepted, already
validated and normalised.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import peewee as pw

from daemon import dbfile
from daemon.errors import AutocallError, Unavailable
from daemon.store.states import DELETED, DIALING, DONE, PENDING, RUNNING

log = logging.getLogger("autocall.store")


class StoreError(AutocallError):
    """The database file cannot be used (newer schema, unreadable, not autocall's, ...)."""


class StoreUnavailable(StoreError, Unavailable):
    """The database cannot be written (or read) right now: locked past the busy timeout, read-only,
    a full disk, an I/O error, a file SQLite cannot open. Trying again later may work."""


class StoreBusy(StoreUnavailable):
    """Another connection holds the database's write lock past the busy timeout: retry later."""


_NO_TRANSACTION = "no transaction is active"  # peewee's rollback after SQLite's own


def store_error(error: pw.DatabaseError, what: str) -> StoreError:
    """`error` as the store's own: StoreBusy for a lock held past the busy timeout,
    StoreUnavailable for the other operational failures (SQLite's OperationalError: read-only,
    full, I/O error, cannot open), StoreError for a file that is not a sound database."""
    reason: BaseException = error
    while _NO_TRANSACTION in str(reason) and reason.__context__ is not None:
        reason = reason.__context__  # SQLite rolled back by itself (a full disk): its own error says why
    text = f"{what}: {reason}"
    if not isinstance(error, pw.OperationalError):
        return StoreError(text)  # not a database, corrupt, a constraint: trying again will not help
    locked = "locked" in str(reason) or "busy" in str(reason)
    return StoreBusy(text) if locked else StoreUnavailable(text)


class JSONField(pw.TextField):
    def db_value(self, value):
        return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(pw.Model):
    class Meta:
        legacy_table_names = False


class Queue(BaseModel):
    code = pw.TextField()
    template = pw.TextField()
    concurrent_call = pw.IntegerField()
    max_recall_count = pw.IntegerField()
    min_recall_duration = pw.IntegerField()
    state = pw.TextField(default=RUNNING)
    # Why the dialer stopped this queue by itself (e.g. a gateway that does not exist); on a
    # running queue, why it holds it back (a template that cannot be loaded).
    stop_reason = pw.TextField(null=True)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()


class Customer(BaseModel):
    queue = pw.ForeignKeyField(Queue, backref="customers", on_delete="CASCADE")
    ext_id = pw.TextField()  # the id the collections platform gave
    mobiles = JSONField()  # normalised numbers, in calling order
    fields = JSONField()  # template variables
    state = pw.TextField(default=PENDING)
    round = pw.IntegerField(default=0)  # rounds already finished without success
    number_index = pw.IntegerField(default=0)  # next entry of `mobiles` in this round
    dead_numbers = JSONField(default=list)  # numbers the network called dead; skipped
    next_call_at = pw.FloatField()
    last_cause = pw.TextField(null=True)
    result = pw.TextField(null=True)  # named IVR result (e.g. promise_to_pay)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()


class Attempt(BaseModel):
    customer = pw.ForeignKeyField(Customer, backref="attempts", on_delete="CASCADE")
    queue = pw.ForeignKeyField(Queue, on_delete="CASCADE")
    round = pw.IntegerField()
    number = pw.TextField()
    uuid = pw.TextField(unique=True)  # FreeSWITCH channel uuid (origination_uuid)
    job_uuid = pw.TextField()
    state = pw.TextField(default=DIALING)
    started_at = pw.FloatField()
    answered_at = pw.FloatField(null=True)
    ended_at = pw.FloatField(null=True)
    hangup_cause = pw.TextField(null=True)
    sip_status = pw.TextField(null=True)
    talk_seconds = pw.FloatField(null=True)
    keys = pw.TextField(default="")
    outcome = pw.TextField(null=True)  # success / retry / dead_number / config_error / ...
    result = pw.TextField(null=True)  # named IVR result of this call (so far, while it is open)
    slot = pw.IntegerField(null=True)  # where the switch keeps this call's hangup record (daemon/hangup.py)
    step = pw.TextField(null=True)  # the IVR step the call is in (a re-attached call resumes there)


class Dnc(BaseModel):
    """A customer id the platform said not to call in a queue. Keyed by the queue's code, not
    its row, so it outlives a delete and re-import of the queue and may come before the queue."""

    queue_code = pw.TextField()
    ext_id = pw.TextField()
    created_at = pw.FloatField()


class DncNumber(BaseModel):
    """A number never to be dialled again, whichever customer or queue holds it."""

    number = pw.TextField()  # national form (daemon.phone)
    created_at = pw.FloatField()


MODELS = (Queue, Customer, Attempt, Dnc, DncNumber)


class _DncV1(BaseModel):
    """The `dnc` table as schema version 1 made it (per queue row); only `_v1` uses it."""

    queue = pw.ForeignKeyField(Queue, on_delete="CASCADE")
    ext_id = pw.TextField()
    created_at = pw.FloatField()

    class Meta:
        table_name = "dnc"


def _v1(db: pw.Database):
    for model in (Queue, Customer, Attempt, _DncV1):
        pw.SchemaManager(model, database=db).create_all(safe=False)
    for sql in (
        # One live queue per code; a deleted queue's code can be imported again.
        f"CREATE UNIQUE INDEX queue_live_code ON queue(code) WHERE state != '{DELETED}'",
        "CREATE UNIQUE INDEX customer_queue_ext ON customer(queue_id, ext_id)",
        # The dialer's claim: next due pending customer of a queue.
        f"CREATE INDEX customer_due ON customer(queue_id, next_call_at) WHERE state = '{PENDING}'",
        "CREATE INDEX customer_queue_state ON customer(queue_id, state)",
        "CREATE INDEX attempt_customer_started ON attempt(customer_id, started_at)",
        "CREATE INDEX attempt_queue ON attempt(queue_id, id)",
        # Reconciliation after a crash looks only at calls not yet closed.
        f"CREATE INDEX attempt_open ON attempt(state) WHERE state != '{DONE}'",
        "CREATE UNIQUE INDEX dnc_queue_ext ON dnc(queue_id, ext_id)",
    ):
        db.execute_sql(sql)


def _v2(db: pw.Database):
    """The person is the unit of safety: DNC by queue code (kept across delete and re-import),
    a DNC list of numbers, and the indexes the claim's checks on a person need."""
    db.execute_sql(
        "CREATE TABLE dnc_v2 (id INTEGER NOT NULL PRIMARY KEY, queue_code TEXT NOT NULL,"
        " ext_id TEXT NOT NULL, created_at REAL NOT NULL)"
    )
    db.execute_sql(
        "INSERT INTO dnc_v2 (queue_code, ext_id, created_at) SELECT q.code, d.ext_id, MIN(d.created_at)"
        " FROM dnc d JOIN queue q ON q.id = d.queue_id GROUP BY q.code, d.ext_id"
    )
    db.execute_sql("DROP TABLE dnc")
    db.execute_sql("ALTER TABLE dnc_v2 RENAME TO dnc")
    db.execute_sql(
        "CREATE TABLE dnc_number (id INTEGER NOT NULL PRIMARY KEY, number TEXT NOT NULL, created_at REAL NOT NULL)"
    )
    for sql in (
        "CREATE UNIQUE INDEX dnc_code_ext ON dnc(queue_code, ext_id)",
        "CREATE UNIQUE INDEX dnc_number_number ON dnc_number(number)",
        # One person across queues: the same id in any queue, the same number in any call.
        "CREATE INDEX customer_ext ON customer(ext_id)",
        "CREATE INDEX attempt_number_started ON attempt(number, started_at)",
        # Open calls by number. `ended_at IS NULL` says open as `state != 'done'` does (both are
        # set by the one statement that closes an attempt) without a bound parameter matched
        # against the index: SQLite re-prepares such a statement on every execution.
        "CREATE INDEX attempt_open_number ON attempt(number) WHERE ended_at IS NULL",
    ):
        db.execute_sql(sql)


def _v3(db: pw.Database):
    """Recovering a call's real result: the slot of the record the switch's hangup hook writes,
    and the IVR step the call is in (with its result so far, in `result`)."""
    have = {row[1] for row in db.execute_sql("PRAGMA table_info(attempt)")}
    for column, kind in (("slot", "INTEGER"), ("step", "TEXT")):
        if column not in have:  # a new file has them already: _v1 creates the tables from the models
            db.execute_sql(f"ALTER TABLE attempt ADD COLUMN {column} {kind}")


# Each entry brings the schema from version i to i+1. Append; never edit a shipped one.
MIGRATIONS = (_v1, _v2, _v3)
SCHEMA_VERSION = len(MIGRATIONS)


def open_database(path: str | Path, *, busy_timeout: float = 30.0) -> pw.SqliteDatabase:
    """Open (creating if needed) the autocall database at `path`, migrated to SCHEMA_VERSION."""
    path = Path(path)
    dbfile.create(path)  # directory and file with their modes, or one clear error
    db = database(path, busy_timeout=busy_timeout)
    try:
        db.connect(reuse_if_open=True)
        _migrate(db, path)
    except pw.DatabaseError as e:
        db.close()
        raise store_error(e, f"database {path}") from None
    return db


def database(path: str | Path, *, busy_timeout: float = 30.0, one_thread: bool = False) -> pw.SqliteDatabase:
    """The database at `path` as open_database sets it up, not yet connected nor migrated.
    `one_thread`: for a database object only one OS thread ever uses (api/db.py gives each
    worker thread its own): no lock of peewee's, and sqlite3 refuses any other thread."""
    return pw.SqliteDatabase(
        str(path),
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


def _migrate(db: pw.SqliteDatabase, path: Path):
    """Bring the schema to SCHEMA_VERSION. A current schema is only read: no write lock is
    taken, so a start-up on a locked, read-only or full database goes on (and waits to write)."""
    if _version(db, path) == SCHEMA_VERSION:
        return
    with db.atomic():
        version = _version(db, path)  # another process may have migrated it meanwhile
        for number in range(version, SCHEMA_VERSION):
            log.info("migrating %s to schema version %d", path, number + 1)
            MIGRATIONS[number](db)
        if version != SCHEMA_VERSION:
            db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _version(db: pw.SqliteDatabase, path: Path) -> int:
    version = db.execute_sql("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database {path} has schema version {version}; this autocall knows up to "
            f"{SCHEMA_VERSION}: upgrade autocall"
        )
    return version


def open_readonly(path: str | Path) -> pw.SqliteDatabase:
    """The autocall database at `path` opened read-only (SQLite's `mode=ro`): it can never write
    nor take a write lock, so it is safe while the services run. StoreError says why not."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"no database at {path}")
    db = pw.SqliteDatabase(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
    try:
        version = db.execute_sql("PRAGMA user_version").fetchone()[0]
    except pw.DatabaseError as e:
        db.close()
        raise StoreError(f"{path}: cannot read it as an SQLite database: {e}") from None
    if version == 0:
        db.close()
        raise StoreError(f"{path} is not an autocall database (no schema yet)")
    if version != SCHEMA_VERSION:
        db.close()
        raise StoreError(f"{path} has schema version {version}; this autocall reads version {SCHEMA_VERSION}")
    return db


def _adapt(db: pw.Database, sql: str) -> str:
    """`sql` with its `?` placeholders in the backend's parameter style."""
    return sql if db.param == "?" else sql.replace("?", db.param)


def execute(db: pw.Database, sql: str, params=()):
    """Run one statement of the store's portable SQL; returns the cursor."""
    return db.execute_sql(_adapt(db, sql), params)


def executemany(db: pw.Database, sql: str, rows):
    """Run one statement once per row of parameters."""
    if rows:
        db.cursor().executemany(_adapt(db, sql), rows)


def insert(db: pw.Database, sql: str, params) -> int:
    """Run an INSERT of one row; returns the new row's id."""
    # SQLite reports it on the cursor; PostgreSQL will append RETURNING id here.
    return execute(db, sql, params).lastrowid


@contextlib.contextmanager
def read_snapshot(db: pw.Database):
    """A read transaction, so every read inside it sees the same moment; it writes nothing
    and takes no write lock (a plain BEGIN, not the IMMEDIATE of `db.atomic()`)."""
    db.execute_sql("BEGIN")
    try:
        yield
    finally:
        db.rollback()


def marks(values) -> str:
    """`?, ?, ?` for an IN list of `values`."""
    return ", ".join("?" * len(values))
