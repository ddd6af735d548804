"""Customers per queue and state, kept in the table `queue_count`.

`GET /queue/<code>` and every page of `/customers` report counts per state; counting them
with COUNT(*) walks one index entry per customer, about a second for a queue of ten million
(docs/performance.md, "Issue 14: reads"). So the store keeps them, inside the transaction of
each change:

- a change of a customer's `state` (or `queue_id`), and a deleted customer row, by triggers
  on `customer` (`Dialect.count_triggers`): right whatever makes the change, the dialer's
  transitions, the API's commands or an operator's UPDATE in the sqlite3 shell;
- new customers by the statement after the import's INSERT (`add`, one per chunk): a
  trigger per inserted row made SQLite's bulk insert several times slower (a statement
  journal per row), where an UPDATE's trigger costs nothing measurable.

A row may hold 0 (every customer left that state); a state with no row counts 0 too.
Whatever inserts customers by other means (bench/reads_db.py, bench/queued_db.py's raw
build) calls `refill` after.
"""

from __future__ import annotations

import peewee as pw

from daemon.store.dialect import Dialect
from daemon.store.schema import execute

TABLE = (
    "CREATE TABLE queue_count (queue_id INTEGER NOT NULL, state TEXT NOT NULL,"
    " n INTEGER NOT NULL, PRIMARY KEY (queue_id, state))"
)
_REFILL = "INSERT INTO queue_count (queue_id, state, n) SELECT queue_id, state, COUNT(*) FROM customer GROUP BY 1, 2"


def create(db: pw.Database, dialect: Dialect):
    """The table, filled from the customers there are, and the triggers that keep it (schema 5)."""
    db.execute_sql(TABLE)
    db.execute_sql(_REFILL)
    for sql in dialect.count_triggers:
        db.execute_sql(sql)


def add(db: pw.Database, queue_id: int, state: str, n: int):
    """`n` new customers of the queue in `state`, inside the transaction that inserted them."""
    if n:
        execute(
            db,
            "INSERT INTO queue_count (queue_id, state, n) VALUES (?, ?, ?)"
            " ON CONFLICT (queue_id, state) DO UPDATE SET n = queue_count.n + excluded.n",
            (queue_id, state, n),
        )


def refill(db: pw.Database):
    """Count every queue's customers again from the rows; inside a transaction."""
    db.execute_sql("DELETE FROM queue_count")
    db.execute_sql(_REFILL)
