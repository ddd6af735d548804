"""The tables, their versions, and the two ways to open the database.

`open_database(where)` opens the autocall database (an SQLite file, or a PostgreSQL
database: daemon/store/url.py) with the schema created or migrated to `SCHEMA_VERSION`; a
current schema is only read. Its failures are `StoreError`s: `store_error` tells those that
may pass (`StoreUnavailable`, `StoreBusy`) from those that will not. `open_readonly(where)`
opens it for views that must never write nor take a write lock.

The models declare the tables and are never bound to a database: two databases open in one
process do not interfere, and every store function names the database it works on.

The SQL text everywhere in the store is the subset SQLite and PostgreSQL share, with `?`
placeholders; `execute`, `executemany`, `insert` and `read_snapshot` below hand it to the
database's `Dialect` (daemon/store/dialect.py), which says the rest its own way. The
migrations are the same on both backends.

Times are Unix epoch seconds (floating point). JSON columns hold what the API accepted, already
validated and normalised.
"""

from __future__ import annotations

import contextlib
import json
import logging

import peewee as pw

from daemon.store import postgres, sqlite
from daemon.store import url as url_mod
from daemon.store.dialect import (  # noqa: F401 - the errors, re-exported
    Dialect,
    StoreBusy,
    StoreError,
    StoreUnavailable,
    driver_error,
)
from daemon.store.states import DELETED, DIALING, DONE, PENDING, RUNNING

log = logging.getLogger("autocall.store")
_driver_errors = getattr(pw, "__exception_wrapper__")  # noqa: B009 - not in peewee's type stubs


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
    callback_url = pw.TextField(null=True)  # where its events go besides the configured webhooks
    finished_at = pw.FloatField(null=True)  # its last customer to call ended (store/outbox.py)
    retry_when = JSONField(null=True)  # recall causes (daemon/outcome.py RECALL_CAUSES); NULL: the default
    caller_id = pw.TextField(null=True)  # one of the configured caller ids; NULL: the trunk's pool


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
    priority = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])  # higher is called first (0-9)


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
    node = pw.TextField(null=True)  # the daemon that made it (dialer.node); NULL: before nodes had names
    trunk = pw.TextField(null=True)  # the [[trunks]] entry that carried it; NULL: the one dial string


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
    d = dialect_of(db)
    db.execute_sql(
        f"CREATE TABLE dnc_v2 (id {d.id_column}, queue_code TEXT NOT NULL,"
        f" ext_id TEXT NOT NULL, created_at {d.real_column} NOT NULL)"
    )
    db.execute_sql(
        "INSERT INTO dnc_v2 (queue_code, ext_id, created_at) SELECT q.code, d.ext_id, MIN(d.created_at)"
        " FROM dnc d JOIN queue q ON q.id = d.queue_id GROUP BY q.code, d.ext_id"
    )
    db.execute_sql("DROP TABLE dnc")
    db.execute_sql("ALTER TABLE dnc_v2 RENAME TO dnc")
    db.execute_sql(
        f"CREATE TABLE dnc_number (id {d.id_column}, number TEXT NOT NULL, created_at {d.real_column} NOT NULL)"
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
    _add_columns(db, "attempt", ("slot", "INTEGER"), ("step", "TEXT"))


def _v4(db: pw.Database):
    """Each attempt names the daemon that made it, so that a node reconciles only its own calls."""
    _add_columns(db, "attempt", ("node", "TEXT"))


def _v5(db: pw.Database):
    """Reads at ten million customers: counts per queue and state kept by the database
    (daemon/store/counts.py), and the indexes a page after a customer id walks (keyset
    pagination: docs/api.md "Reads"), with or without a state."""
    from daemon.store import counts  # counts uses this module's execute

    counts.create(db, dialect_of(db))
    # peewee's index of the queue_id foreign key becomes (queue_id, id): on SQLite it ended in
    # the row id already, on PostgreSQL it did not.
    db.execute_sql("DROP INDEX customer_queue_id")
    db.execute_sql("CREATE INDEX customer_queue_order ON customer(queue_id, id)")
    # The same for (queue_id, state).
    db.execute_sql("DROP INDEX customer_queue_state")
    db.execute_sql("CREATE INDEX customer_queue_state ON customer(queue_id, state, id)")


def _v6(db: pw.Database):
    """The node lease: each dialer's last heartbeat, by the database's clock (store/nodes.py)."""
    db.execute_sql(
        f"CREATE TABLE IF NOT EXISTS node (name TEXT PRIMARY KEY, beat_at {dialect_of(db).real_column} NOT NULL)"
    )


def _v7(db: pw.Database):
    """Results pushed to the platform: the outbox its triggers fill, the deliveries of each event
    (daemon/store/outbox.py), and each queue's own callback URL."""
    from daemon.store import outbox  # outbox uses this module's execute

    d = dialect_of(db)
    _add_columns(db, "queue", ("callback_url", "TEXT"), ("finished_at", d.real_column))
    outbox.create(db, d)


def _v8(db: pw.Database):
    """Each node's own word on what it does, beside its heartbeat: `autocall status` on a database
    with no state file beside it (PostgreSQL) shows every dialer's."""
    _add_columns(db, "node", ("status", "TEXT"))


def _v9(db: pw.Database):
    """The operator's web console (api/ui/): its accounts, their sessions, and the audit log of
    what they did (daemon/store/operators.py)."""
    from daemon.store import operators  # operators uses this module's execute

    operators.create(db, dialect_of(db))


def _v10(db: pw.Database):
    """Calling policy (issue 17): a queue's recall causes and caller id, a customer's priority,
    the trunk each attempt went out on, and the claim's index by priority."""
    _add_columns(db, "queue", ("retry_when", "TEXT"), ("caller_id", "TEXT"))
    _add_columns(db, "customer", ("priority", "INTEGER NOT NULL DEFAULT 0"))
    _add_columns(db, "attempt", ("trunk", "TEXT"))
    # The claim takes a queue's due customers level by level, highest priority first.
    db.execute_sql(
        f"CREATE INDEX customer_due_priority ON customer(queue_id, priority, next_call_at) WHERE state = '{PENDING}'"
    )


def _v11(db: pw.Database):
    """The wall-clock steps the schedule has followed (store/schedule.py), so that daemons of
    one host sharing a database move the waits once for a step they all see."""
    real = dialect_of(db).real_column
    db.execute_sql(f"CREATE TABLE wall_step (jump {real} NOT NULL, seen_at {real} NOT NULL)")


def _v12(db: pw.Database):
    """An idle dialer on PostgreSQL reads its running queues only once they changed
    (`Dialect.change_token`): the count its triggers keep. SQLite tells by itself."""
    for sql in dialect_of(db).change_triggers:
        execute(db, sql)  # their format('%I') through the dialect's placeholder escaping


def _add_columns(db: pw.Database, table: str, *columns: tuple[str, str]):
    """ALTER TABLE … ADD COLUMN for each (name, type) the table lacks: `_v1` builds a new
    database from the models as they are now, so it has them already."""
    have = {column.name for column in db.get_columns(table)}
    for name, kind in columns:
        if name not in have:
            db.execute_sql(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


# Each entry brings the schema from version i to i+1. Append; never edit a shipped one.
MIGRATIONS = (_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9, _v10, _v11, _v12)
SCHEMA_VERSION = len(MIGRATIONS)


def dialect_of(db: pw.Database) -> Dialect:
    """The Dialect of `db`, a database from `open_database` or `open_readonly`."""
    return postgres.DIALECT if isinstance(db, pw.PostgresqlDatabase) else sqlite.DIALECT


def _backend(location: url_mod.DatabaseUrl):
    """The module that opens `location`'s kind of database."""
    return postgres if location.backend == url_mod.POSTGRESQL else sqlite


_NO_TRANSACTION = "no transaction is active"  # peewee's rollback after SQLite's own


def store_error(error: pw.DatabaseError, what: str) -> StoreError:
    """`error` as the store's own: StoreBusy for a lock held past the busy timeout,
    StoreUnavailable for the other failures that may pass (a full disk, a server away),
    StoreError for what will not (not a database, corrupt, a password refused), as the
    backend that raised it tells them apart (`Dialect.error_class`)."""
    reason: BaseException = error
    while _NO_TRANSACTION in str(reason) and reason.__context__ is not None:
        reason = reason.__context__  # SQLite rolled back by itself (a full disk): its own error says why
    driver = type(driver_error(error)).__module__
    dialect = postgres.DIALECT if driver.startswith("psycopg") else sqlite.DIALECT
    return dialect.error_class(error, str(reason))(f"{what}: {reason}")


def database(where, *, busy_timeout: float = 30.0, one_thread: bool = False) -> pw.Database:
    """The database `where` names (as open_database takes it), set up as open_database does,
    not yet connected nor migrated; `one_thread`: for a database object only one OS thread
    ever uses (api/db.py gives each worker thread its own)."""
    location = url_mod.of(where)
    return _backend(location).database(location, busy_timeout=busy_timeout, one_thread=one_thread)


def open_database(where, *, busy_timeout: float = 30.0) -> pw.Database:
    """Open (creating if needed) the autocall database `where` (a DatabaseUrl, a URL, or the
    path of an SQLite file), migrated to SCHEMA_VERSION. A write lock held by another
    connection is waited for up to `busy_timeout` seconds."""
    location = url_mod.of(where)
    db = None
    try:
        db = _backend(location).connect(location, busy_timeout=busy_timeout)
        _migrate(db, location)
    except pw.DatabaseError as e:
        if db is not None:
            db.close()
        raise store_error(e, f"database {location}") from None
    return db


def open_existing(where, *, busy_timeout: float = 30.0) -> pw.Database:
    """open_database for a command that works on the services' database (`autocall users`,
    `webhooks`, `migrate-db`'s source): an SQLite file must exist already. Only the services
    make one; a command run with the wrong `--config`, or none, would otherwise make an empty
    database at that path, write there and say it did."""
    location = url_mod.of(where)
    if location.backend == url_mod.SQLITE and location.path is not None and not location.path.exists():
        raise StoreError(
            f"no database at {location.path} (the services make it when they first start): is this "
            "the config they run with? Give it with --config, e.g. --config /etc/autocall/autocall.toml"
        )
    return open_database(location, busy_timeout=busy_timeout)


def _migrate(db: pw.Database, where):
    """Bring the schema to SCHEMA_VERSION. A current schema is only read: no write lock is
    taken, so a start-up on a locked, read-only or full database goes on (and waits to write)."""
    if _version(db, where) == SCHEMA_VERSION:
        return
    with db.atomic():
        version = _version(db, where)  # another process may have migrated it meanwhile
        for number in range(version, SCHEMA_VERSION):
            log.info("migrating %s to schema version %d", where, number + 1)
            MIGRATIONS[number](db)
        if version != SCHEMA_VERSION:
            dialect_of(db).set_schema_version(db, SCHEMA_VERSION)


def _version(db: pw.Database, where) -> int:
    version = dialect_of(db).schema_version(db)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database {where} has schema version {version}; this autocall knows up to "
            f"{SCHEMA_VERSION}: upgrade autocall"
        )
    return version


def open_readonly(where) -> pw.Database:
    """The autocall database `where` opened read-only (SQLite's `mode=ro`, a PostgreSQL session
    whose transactions are all read-only): it can never write nor take a write lock, so it is
    safe while the services run. StoreError says why not."""
    location = url_mod.of(where)
    db, version = _backend(location).connect_readonly(location)
    if version == 0:
        db.close()
        raise StoreError(f"{location} is not an autocall database (no schema yet)")
    if version != SCHEMA_VERSION:
        db.close()
        raise StoreError(f"{location} has schema version {version}; this autocall reads version {SCHEMA_VERSION}")
    return db


def _adapt(db: pw.Database, sql: str) -> str:
    """`sql` with its `?` placeholders in the backend's parameter style."""
    return dialect_of(db).adapt(sql)


def execute(db: pw.Database, sql: str, params=()):
    """Run one statement of the store's portable SQL; returns the cursor."""
    return db.execute_sql(_adapt(db, sql), params)


def executemany(db: pw.Database, sql: str, rows):
    """Run one statement once per row of parameters."""
    if rows:
        with _driver_errors:  # raised as peewee's classes, as execute_sql's are
            db.cursor().executemany(_adapt(db, sql), rows)


def insert(db: pw.Database, sql: str, params) -> int:
    """Run an INSERT of one row; returns the new row's id."""
    return dialect_of(db).insert(db, _adapt(db, sql), params)


@contextlib.contextmanager
def read_snapshot(db: pw.Database):
    """A read transaction, so every read inside it sees the same moment; it writes nothing
    and takes no write lock (not the write transaction of `db.atomic()`)."""
    db.execute_sql(dialect_of(db).snapshot_begin)
    try:
        yield
    finally:
        db.rollback()


IN_LIST = 500  # values per IN (...) list, far under PostgreSQL's 65,535 parameters per statement


def in_parts(values: list):
    """`values` in slices of IN_LIST, for IN lists of any length."""
    for start in range(0, len(values), IN_LIST):
        yield values[start : start + IN_LIST]


def marks(values) -> str:
    """`?, ?, ?` for an IN list of `values`; `NULL` (matching nothing) for none, which both
    backends accept where an empty list would be an error."""
    return ", ".join("?" * len(values)) or "NULL"
