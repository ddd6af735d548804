"""Moving an installation to another database (`autocall migrate-db`): every row of every
table, ids kept, from one store into an empty one, in one transaction on each side.

The source is read in one snapshot, so the copy is of one moment even if something writes
meanwhile; but what is written after that moment is not copied, so the services are stopped
first (docs/scale-out.md). The destination gets the current schema (`open_database` made it)
and must hold no row yet: a copy half made is rolled back whole, and a second run is refused
rather than mixing two installations.
"""

from __future__ import annotations

import peewee as pw

from daemon.store import counts
from daemon.store.dialect import StoreError
from daemon.store.schema import MODELS, dialect_of, execute, executemany, read_snapshot

# Parents before children: a customer names its queue, an attempt its customer and queue; the
# outbox's events and their deliveries (store/outbox.py) go along, so none waiting is lost; so do
# the console's accounts and audit log (store/operators.py), not its sessions: everyone logs in anew.
TABLES = tuple(model._meta.table_name for model in MODELS) + ("outbox", "delivery", "ui_user", "ui_audit")
CHUNK = 5000  # rows read and written per round trip


class DestinationNotEmpty(StoreError):
    """The database to copy into already holds rows."""


def copy_store(source: pw.Database, dest: pw.Database, *, progress=lambda table, done, total: None) -> dict:
    """Copy every row of `source` into the empty `dest`; returns {table: rows copied}.
    `progress(table, done, total)` hears of each chunk written."""
    held = {table: _count(dest, table) for table in TABLES}
    if any(held.values()):
        listed = ", ".join(f"{n} in {t}" for t, n in held.items() if n)
        raise DestinationNotEmpty(f"the destination database already holds rows ({listed}); copy into an empty one")
    copied: dict[str, int] = {}
    with read_snapshot(source), dest.atomic():
        for table in TABLES:
            copied[table] = _copy_table(source, dest, table, progress)
            dialect_of(dest).continue_ids(dest, table)
        counts.refill(dest)  # rows written here count themselves only through the import
        for table in TABLES:
            if _count(dest, table) != copied[table]:
                raise StoreError(f"{table}: {copied[table]} rows copied but {_count(dest, table)} arrived")
    return copied


def _copy_table(source, dest, table: str, progress) -> int:
    total = _count(source, table)
    cursor = execute(source, f"SELECT * FROM {table} ORDER BY id")
    columns = [c[0] for c in cursor.description]
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    done = 0
    while rows := cursor.fetchmany(CHUNK):
        executemany(dest, insert, rows)
        done += len(rows)
        progress(table, done, total)
    return done


def _count(db, table: str) -> int:
    return execute(db, f"SELECT COUNT(*) FROM {table}").fetchone()[0]
