"""Customers per queue and state, kept in the table `queue_count` by triggers on `customer`.

`GET /queue/<code>` and every page of `/customers` report counts per state; counting them
with COUNT(*) walks one index entry per customer, about a second for a queue of ten million
(docs/performance.md, "Issue 14: reads"). So the database keeps them itself: a trigger on
every INSERT, DELETE and change of `state` (or `queue_id`) of a customer row adds and takes
one, inside the statement's own transaction. A count is right whatever writes the row (the
dialer's transitions, the API's commands, a migration, an operator's UPDATE in the sqlite3
shell) and is read in one short look-up. Each backend writes its triggers its own way
(`Dialect.count_triggers`); the table and its refill are the same on both.

A row may hold 0 (every customer left that state); a state with no row counts 0 too.
"""

from __future__ import annotations

import peewee as pw

from daemon.store.dialect import Dialect

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


def refill(db: pw.Database):
    """Count every queue's customers again, from the rows (after writes made with the
    triggers dropped, as bench/reads_bench.py builds its database); inside a transaction."""
    db.execute_sql("DELETE FROM queue_count")
    db.execute_sql(_REFILL)
