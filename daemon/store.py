"""The SQLite file shared by the API and the dialer: models, opening, schema versions.

`open_database(path)` returns a peewee database with WAL, foreign keys and a busy
timeout, every write transaction taken with BEGIN IMMEDIATE (so two writers queue up on
the busy timeout instead of failing on a lock upgrade), the models bound to it, and the
schema created or migrated to `SCHEMA_VERSION` (kept in `PRAGMA user_version`).

Times are Unix epoch seconds (REAL). JSON columns hold what the API accepted, already
validated and normalised.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import peewee as pw

from daemon import dbfile
from daemon.errors import AutocallError

log = logging.getLogger(__name__)

# Queue states.
RUNNING, STOPPED, DELETED = "running", "stopped", "deleted"
# Customer states. A customer ends in exactly one of FINAL_STATES.
PENDING, CALLING = "pending", "calling"
SUCCESS, FAILED, DNC = "success", "failed", "dnc"
FINAL_STATES = (SUCCESS, FAILED, DNC, DELETED)
CUSTOMER_STATES = (PENDING, CALLING) + FINAL_STATES
# Attempt states: dialing (originate sent), answered, done (every column final).
DIALING, ANSWERED, DONE = "dialing", "answered", "done"


class StoreError(AutocallError):
    """The database file cannot be used (newer schema, unreadable, ...)."""


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
    # Why the dialer stopped this queue by itself (e.g. a gateway that does not exist).
    stop_reason = pw.TextField(null=True)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()


class Customer(BaseModel):
    queue = pw.ForeignKeyField(Queue, backref="customers", on_delete="CASCADE")
    ext_id = pw.TextField()                     # the id the collections platform gave
    mobiles = JSONField()                       # normalised numbers, in calling order
    fields = JSONField()                        # template variables
    state = pw.TextField(default=PENDING)
    round = pw.IntegerField(default=0)          # rounds already finished without success
    number_index = pw.IntegerField(default=0)   # next entry of `mobiles` in this round
    dead_numbers = JSONField(default=list)      # numbers the network called dead; skipped
    next_call_at = pw.FloatField()
    last_cause = pw.TextField(null=True)
    result = pw.TextField(null=True)            # named IVR result (e.g. promise_to_pay)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()


class Attempt(BaseModel):
    customer = pw.ForeignKeyField(Customer, backref="attempts", on_delete="CASCADE")
    queue = pw.ForeignKeyField(Queue, on_delete="CASCADE")
    round = pw.IntegerField()
    number = pw.TextField()
    uuid = pw.TextField(unique=True)            # FreeSWITCH channel uuid (origination_uuid)
    job_uuid = pw.TextField()
    state = pw.TextField(default=DIALING)
    started_at = pw.FloatField()
    answered_at = pw.FloatField(null=True)
    ended_at = pw.FloatField(null=True)
    hangup_cause = pw.TextField(null=True)
    sip_status = pw.TextField(null=True)
    talk_seconds = pw.FloatField(null=True)
    keys = pw.TextField(default="")
    outcome = pw.TextField(null=True)           # success / retry / dead_number / config_error / ...
    result = pw.TextField(null=True)            # named IVR result of this call


class Dnc(BaseModel):
    queue = pw.ForeignKeyField(Queue, on_delete="CASCADE")
    ext_id = pw.TextField()
    created_at = pw.FloatField()


MODELS = (Queue, Customer, Attempt, Dnc)


def _v1(db: pw.Database):
    db.create_tables(MODELS, safe=False)
    for sql in (
        # One live queue per code; a deleted queue's code can be imported again.
        "CREATE UNIQUE INDEX queue_live_code ON queue(code) WHERE state != 'deleted'",
        "CREATE UNIQUE INDEX customer_queue_ext ON customer(queue_id, ext_id)",
        # The dialer's claim: next due pending customer of a queue.
        "CREATE INDEX customer_due ON customer(queue_id, next_call_at) WHERE state = 'pending'",
        "CREATE INDEX customer_queue_state ON customer(queue_id, state)",
        "CREATE INDEX attempt_customer_started ON attempt(customer_id, started_at)",
        "CREATE INDEX attempt_queue ON attempt(queue_id, id)",
        # Reconciliation after a crash looks only at calls not yet closed.
        "CREATE INDEX attempt_open ON attempt(state) WHERE state != 'done'",
        "CREATE UNIQUE INDEX dnc_queue_ext ON dnc(queue_id, ext_id)",
    ):
        db.execute_sql(sql)


# Each entry brings the schema from version i to i+1. Append; never edit a shipped one.
MIGRATIONS = (_v1,)
SCHEMA_VERSION = len(MIGRATIONS)


def open_database(path: str | Path, *, busy_timeout: float = 30.0) -> pw.SqliteDatabase:
    """Open (creating if needed) the autocall database at `path`, migrated to SCHEMA_VERSION."""
    path = Path(path)
    dbfile.create(path)  # directory and file with their modes, or one clear error
    db = pw.SqliteDatabase(
        str(path),
        timeout=busy_timeout,
        lock_type="IMMEDIATE",
        check_same_thread=False,
        pragmas={
            "journal_mode": "wal",
            "foreign_keys": 1,
            "synchronous": "normal",
            "busy_timeout": int(busy_timeout * 1000),
        },
    )
    db.bind(MODELS)
    try:
        db.connect(reuse_if_open=True)
        _migrate(db, path)
    except pw.DatabaseError as e:
        raise StoreError(f"database {path}: {e}") from None
    return db


def _migrate(db: pw.SqliteDatabase, path: Path):
    with db.atomic():
        version = db.execute_sql("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {path} has schema version {version}; this autocall knows up to "
                f"{SCHEMA_VERSION}: upgrade autocall")
        for number in range(version, SCHEMA_VERSION):
            log.info("migrating %s to schema version %d", path, number + 1)
            MIGRATIONS[number](db)
        if version != SCHEMA_VERSION:
            db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
