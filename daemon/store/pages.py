"""A queue's customers a page at a time, each with its attempts (`GET /queue/<code>/customers`).

Pages follow import order (the customer row id). A page after a cursor (`after`: the last id
of the page before) is a walk down an index from that id, as quick at the end of a queue of
ten million as at its start (keyset pagination, docs/api.md "Reads"). Nothing here writes.
"""

from __future__ import annotations

import json

import peewee as pw

from daemon.store.queue_state import live_queue
from daemon.store.reports import ATTEMPT_COLUMNS, customer_counts
from daemon.store.schema import execute, marks, read_snapshot
from daemon.store.states import PENDING

_CUSTOMER_COLUMNS = "id, ext_id, state, mobiles, fields, round, next_call_at, last_cause, result"


def list_customers(
    db: pw.Database, code: str, *, state: str | None, page: int = 1, per_page: int, after: int | None = None
) -> dict:
    """One page of the queue's customers (by import order), each with its attempts.

    With `after` (a customer row id, the `next` of the page before) the page is the
    `per_page` customers after it: a walk down one index, as fast at the end of ten million as
    at the start. Without it, page number `page`; one past the middle is read from the end
    (`total` is exact in the same snapshot), so the first and the last pages are both quick
    and only the middle ones skip millions of rows. `next` is the id to pass as `after` for
    the page that follows (None on the last). Every read sees one moment (`read_snapshot`)."""
    with read_snapshot(db):
        queue_id, _ = live_queue(db, code)
        counts = customer_counts(db, queue_id)[queue_id]
        total = counts[state] if state else sum(counts.values())
        where = "queue_id = ?"
        params: list[object] = [queue_id]
        if state:
            where += " AND state = ?"
            params.append(state)
        if after is not None:
            rows = _rows_after(db, where, params, after, per_page)
            more = len(rows) > per_page
            del rows[per_page:]
        else:
            offset = (page - 1) * per_page
            rows = _rows_at(db, where, params, offset, per_page, total)
            more = offset + len(rows) < total
        attempts = _attempts_of(db, [row[0] for row in rows])
    data = {"page": page, "per_page": per_page, "total": total}
    if after is not None:
        del data["page"]
    return {
        **data,
        "customers": [_customer_dict(row, attempts[row[0]]) for row in rows],
        "next": rows[-1][0] if more and rows else None,
    }


def _rows_after(db, where: str, params: list, after: int, per_page: int) -> list:
    return execute(
        db,
        f"SELECT {_CUSTOMER_COLUMNS} FROM customer WHERE {where} AND id > ? ORDER BY id LIMIT ?",
        (*params, after, per_page + 1),
    ).fetchall()


def _rows_at(db, where: str, params: list, offset: int, per_page: int, total: int) -> list:
    if offset >= total:
        return []
    if 2 * offset <= total:
        return execute(
            db,
            f"SELECT {_CUSTOMER_COLUMNS} FROM customer WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
            (*params, per_page, offset),
        ).fetchall()
    # Nearer the end: skip the rows after this page instead of those before it.
    after_page = total - offset - per_page
    limit = per_page + min(0, after_page)
    rows = execute(
        db,
        f"SELECT {_CUSTOMER_COLUMNS} FROM customer WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
        (*params, limit, max(0, after_page)),
    ).fetchall()
    rows.reverse()
    return rows


def _attempts_of(db, customer_ids: list[int]) -> dict[int, list]:
    attempts: dict[int, list] = {customer_id: [] for customer_id in customer_ids}
    if customer_ids:
        for customer_id, *values in execute(
            db,
            f"SELECT customer_id, {', '.join(ATTEMPT_COLUMNS)} FROM attempt"
            f" WHERE customer_id IN ({marks(customer_ids)}) ORDER BY id",
            customer_ids,
        ):
            attempts[customer_id].append(dict(zip(ATTEMPT_COLUMNS, values)))
    return attempts


def _customer_dict(row, attempts: list[dict]) -> dict:
    _, ext_id, state, mobiles, fields, rnd, next_call_at, last_cause, result = row
    return {
        "id": ext_id,
        "state": state,
        "mobiles": json.loads(mobiles),
        "fields": json.loads(fields),
        "round": rnd,
        "next_call_at": next_call_at if state == PENDING else None,
        "last_cause": last_cause,
        "result": result,
        "attempts": attempts,
    }
