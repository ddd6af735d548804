"""The reads of the operator's web console (api/ui/) beside those of `reports.py`: a queue's
outcomes by hangup cause and by IVR result, calls per minute, its customers filtered and
searched a page at a time, one customer with every attempt, the daily cap's hits today.
Nothing here writes.
"""

from __future__ import annotations

import json

import peewee as pw

from daemon.store.queue_state import live_queue
from daemon.store.reports import ATTEMPT_COLUMNS, customer_counts
from daemon.store.schema import execute, read_snapshot
from daemon.store.states import DELETED


def outcomes(db: pw.Database, queue_id: int) -> dict[str, list[tuple[str, int]]]:
    """The queue's calls by hangup cause and its customers by IVR result, most first."""
    by_cause = execute(
        db,
        "SELECT COALESCE(hangup_cause, '-'), COUNT(*) FROM attempt WHERE queue_id = ? GROUP BY 1 ORDER BY 2 DESC, 1",
        (queue_id,),
    ).fetchall()
    by_result = execute(
        db,
        "SELECT result, COUNT(*) FROM customer WHERE queue_id = ? AND result IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1",
        (queue_id,),
    ).fetchall()
    return {"by_cause": [tuple(r) for r in by_cause], "by_result": [tuple(r) for r in by_result]}


def calls_per_minute(db: pw.Database, *, now: float, minutes: int, queue_id: int | None = None) -> dict[int, list[int]]:
    """Calls started in each of the last `minutes` minutes before `now`, oldest first, per
    live queue id (or only `queue_id`'s)."""
    since = now - 60 * minutes
    sql = "SELECT a.queue_id, a.started_at FROM attempt a JOIN queue q ON q.id = a.queue_id WHERE q.state != ?"
    params: list = [DELETED]
    if queue_id is not None:
        sql += " AND a.queue_id = ?"
        params.append(queue_id)
    per_queue: dict[int, list[int]] = {}
    for qid, started in execute(db, sql + " AND a.started_at > ?", (*params, since)):
        bucket = min(minutes - 1, int((started - since) // 60))
        per_queue.setdefault(qid, [0] * minutes)[bucket] += 1
    return per_queue


CUSTOMER_COLUMNS = ("ext_id", "state", "mobiles", "round", "last_cause", "result", "updated_at")


def customer_page(
    db: pw.Database, code: str, *, state: str | None, search: str | None, page: int, per_page: int
) -> dict:
    """Page `page` of the queue's customers (import order), of `state` if given, whose id starts
    with `search` (in any case) or one of whose numbers holds it; `total` counts what matched.
    QueueNotFound."""
    with read_snapshot(db):
        queue_id, _ = live_queue(db, code)
        where = "queue_id = ?"
        params: list[object] = [queue_id]
        if state:
            where += " AND state = ?"
            params.append(state)
        if search:
            pattern = _like_escaped(search)
            # LOWER on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
            where += " AND (LOWER(ext_id) LIKE LOWER(?) ESCAPE '\\' OR mobiles LIKE ? ESCAPE '\\')"
            params += [pattern + "%", "%" + pattern + "%"]
            total = execute(db, f"SELECT COUNT(*) FROM customer WHERE {where}", params).fetchone()[0]
        else:
            counts = customer_counts(db, queue_id)[queue_id]
            total = counts[state] if state else sum(counts.values())
        rows = execute(
            db,
            f"SELECT {', '.join(CUSTOMER_COLUMNS)} FROM customer WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
            (*params, per_page, (page - 1) * per_page),
        ).fetchall()
    customers = []
    for row in rows:
        customer = dict(zip(CUSTOMER_COLUMNS, row))
        customer["mobiles"] = json.loads(customer["mobiles"])
        customers.append(customer)
    return {"total": total, "page": page, "per_page": per_page, "customers": customers}


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def customer(db: pw.Database, code: str, ext_id: str) -> dict | None:
    """One customer of the live queue `code` with its fields and every attempt, oldest first;
    None if the queue has no such customer (QueueNotFound if there is no such queue)."""
    with read_snapshot(db):
        queue_id, _ = live_queue(db, code)
        row = execute(
            db,
            "SELECT id, ext_id, state, mobiles, fields, round, next_call_at, last_cause, result, created_at,"
            " updated_at FROM customer WHERE queue_id = ? AND ext_id = ?",
            (queue_id, ext_id),
        ).fetchone()
        if row is None:
            return None
        attempts = execute(
            db, f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempt WHERE customer_id = ? ORDER BY id", (row[0],)
        ).fetchall()
    keys = ("id", "ext_id", "state", "mobiles", "fields", "round", "next_call_at", "last_cause", "result")
    found = dict(zip(keys + ("created_at", "updated_at"), row))
    found["mobiles"], found["fields"] = json.loads(found["mobiles"]), json.loads(found["fields"])
    found["attempts"] = [dict(zip(ATTEMPT_COLUMNS, a)) for a in attempts]
    return found


def capped_today(db: pw.Database, *, day_start: float, cap: int) -> int:
    """Customers of live queues called `cap` times or more since `day_start` (the daily cap
    holds them back until tomorrow); 0 when there is no cap."""
    if cap <= 0:
        return 0
    return execute(
        db,
        "SELECT COUNT(*) FROM (SELECT a.customer_id FROM attempt a JOIN queue q ON q.id = a.queue_id"
        " WHERE q.state != ? AND a.started_at >= ? GROUP BY a.customer_id HAVING COUNT(*) >= ?) t",
        (DELETED, day_start, cap),
    ).fetchone()[0]
