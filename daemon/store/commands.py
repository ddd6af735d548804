"""The API's commands on customers: import (new → pending, refresh, re-arm), block (pending →
dnc) and delete (pending, calling → deleted). With `customers.py` (the dialer's transitions),
the only writers of `customer.state` (DESIGN §2; the diagram is in customers.py).

Each is a series of short transactions, chunked where the input is large, so the dialer is
never locked out for long. `run(step, *args)` runs each one as `step(db, *args)`: by default
at once on `db`; the API passes its writer thread (api/db.py), which runs it on that thread's
own connection to the same file, and serves other writes between two chunks. None does I/O
but SQL.
"""

from __future__ import annotations

import time
from itertools import chain

import msgspec
import peewee as pw

from daemon import values
from daemon.store import counts, dnc, outbox, queue_state
from daemon.store.dnc import at_once
from daemon.store.records import ImportRequest, ImportResult, NewCustomer
from daemon.store.schema import dialect_of, execute, executemany, in_parts, marks
from daemon.store.states import CALLING, DELETED, DNC, PENDING, STOPPED

BULK = 5000  # customers in one import from which the backend is told the table changed a lot

# A customer's fields as JSON, five times as fast as the standard library's encoder (which
# builds itself anew on each call); the same text but for a float's exponent ("1e16", not "1e+16").
_dumps = msgspec.json.Encoder().encode


def import_customers(
    db: pw.Database, request: ImportRequest, defaults, *, chunk: int = 2000, now=time.time, run=None
) -> ImportResult:
    """Create or merge the queue, then add or refresh its customers `chunk` at a time.

    A new queue starts `running`. An existing one takes the template and the settings
    the request gave and keeps its state. Per customer: new → pending; pending → data
    refreshed; finished → armed again for a new round; in a call or on the DNC list →
    rejected with the reason. Numbers on the DNC number list are dropped (a warning);
    a customer left with none is rejected.
    """
    run = run or at_once(db)
    queue_id = run(_open_queue, request, defaults, now)
    result = ImportResult()
    customers = request.customers
    for start in range(0, len(customers), chunk):
        run(_import_chunk, queue_id, customers[start : start + chunk], result, now)
        if start == 0 and len(customers) >= BULK:
            # PostgreSQL's planner, told nothing of the rows the first chunk added, takes the
            # next chunks' lookups by id for a walk through the whole queue: each chunk then
            # costs more than the last (20,000 customers took 13 s).
            run(_after_bulk_write)
    if len(customers) >= BULK:
        run(_after_bulk_write)
    return result


def _after_bulk_write(db):
    dialect_of(db).after_bulk_write(db, "customer")


def _open_queue(db, request: ImportRequest, defaults, now) -> int:
    with db.atomic():
        return queue_state.upsert(db, request, defaults, now())


ROWS_PER_INSERT = 50  # new customers per INSERT: the write of 100,000 took 0.54 s, 0.71 s one row each
_INSERT = (
    "INSERT INTO customer (queue_id, ext_id, mobiles, fields, state, round, number_index,"
    " dead_numbers, next_call_at, created_at, updated_at, priority) VALUES "
)
_NEW_ROW = "(?, ?, ?, ?, ?, 0, 0, '[]', ?, ?, ?, ?)"
_INSERT_ONE, _INSERT_MANY = _INSERT + _NEW_ROW, _INSERT + ", ".join([_NEW_ROW] * ROWS_PER_INSERT)
# New numbers start the round's number list over; the same ones keep its place.
_REFRESH = (
    "UPDATE customer SET number_index = CASE WHEN mobiles = ? THEN number_index ELSE 0 END,"
    " dead_numbers = CASE WHEN mobiles = ? THEN dead_numbers ELSE '[]' END,"
    " mobiles = ?, fields = ?, priority = ?, updated_at = ? WHERE id = ?"
)
_REARM = (
    "UPDATE customer SET mobiles = ?, fields = ?, priority = ?, state = ?, round = 0, number_index = 0,"
    " dead_numbers = '[]', next_call_at = ?, last_cause = NULL, result = NULL, updated_at = ? WHERE id = ?"
)


def _import_chunk(db, queue_id: int, chunk: list[NewCustomer], result: ImportResult, now):
    with db.atomic():
        _import_rows(db, queue_id, chunk, result, now())


def _import_rows(db, queue_id: int, chunk: list[NewCustomer], result: ImportResult, at: float):
    if queue_state.state_of(db, queue_id) == DELETED:
        result.rejected.extend({"id": c.ext_id, "reason": "the queue was deleted during the import"} for c in chunk)
        return
    ids = [c.ext_id for c in chunk]
    existing = {
        ext_id: (row_id, state)
        for part in in_parts(ids)
        for ext_id, row_id, state in execute(
            db,
            f"SELECT ext_id, id, state FROM customer WHERE queue_id = ? AND ext_id IN ({marks(part)})",
            [queue_id, *part],
        )
    }
    blocked = dnc.listed_ids(db, queue_state.code_of(db, queue_id), ids)
    barred = _barred_numbers(db, chunk)
    inserts, refreshes, rearms = [], [], []
    for c in chunk:
        if c.ext_id in blocked:
            result.rejected.append({"id": c.ext_id, "reason": "on this queue's DNC list"})
            continue
        numbers = [n for n in c.mobiles if n not in barred] if barred else c.mobiles
        if not numbers:
            result.rejected.append({"id": c.ext_id, "reason": "every mobile is on the DNC number list"})
            continue
        if barred:
            result.warnings.extend(
                {"id": c.ext_id, "reason": f"mobile dropped: {n} is on the DNC number list"}
                for n in c.mobiles
                if n in barred
            )
        # Numbers are digits only (daemon.phone), so their JSON needs no escaping.
        mobiles, fields = '["' + '","'.join(numbers) + '"]', _dumps(c.fields).decode()
        row_id, state = existing.get(c.ext_id, (None, None))
        if row_id is None and (problem := values.new_id_problem(c.ext_id)):
            result.rejected.append({"id": c.ext_id, "reason": problem})
            continue
        if row_id is None:
            inserts.append((queue_id, c.ext_id, mobiles, fields, PENDING, at, at, at, c.priority))
        elif state == CALLING:
            result.rejected.append({"id": c.ext_id, "reason": "in a call right now; send it again later"})
            continue
        elif state == PENDING:
            refreshes.append((mobiles, mobiles, mobiles, fields, c.priority, at, row_id))
        else:
            rearms.append((mobiles, fields, c.priority, PENDING, at, at, row_id))
        result.success.append(c.ext_id)
    _insert(db, inserts)
    counts.add(db, queue_id, PENDING, len(inserts))  # changes of state count themselves (store/counts.py)
    executemany(db, _REFRESH, refreshes)
    executemany(db, _REARM, rearms)
    if inserts or rearms:
        outbox.rearm(db, queue_id)  # customers to call again: its next end is a new queue.finished


def _insert(db, rows: list[tuple]):
    """INSERT the customer rows `rows`, ROWS_PER_INSERT to a statement."""
    whole = len(rows) - len(rows) % ROWS_PER_INSERT
    groups = range(0, whole, ROWS_PER_INSERT)
    executemany(db, _INSERT_MANY, [tuple(chain.from_iterable(rows[i : i + ROWS_PER_INSERT])) for i in groups])
    executemany(db, _INSERT_ONE, rows[whole:])


def _barred_numbers(db, chunk: list[NewCustomer]) -> set[str]:
    if execute(db, "SELECT 1 FROM dnc_number LIMIT 1").fetchone() is None:
        return set()  # the usual case: nobody ever sent a number
    return dnc.listed_numbers(db, {n for c in chunk for n in c.mobiles})


def block(db: pw.Database, code: str, ext_ids: list[str], *, chunk: int = 2000, now=time.time, run=None) -> bool:
    """Put these ids on the DNC list of queue `code`: pending ones end `dnc` and are never
    dialed; later imports of them into a queue of this code are refused, after a delete and
    re-import too. Returns whether a live queue has this code; when none has, the ids are
    kept all the same, for the queue when it comes.

    Customers in a call finish that call (`finish` sees the DNC row before any recall).
    Finished customers keep their result.
    """
    run = run or at_once(db)
    live = False
    for start in range(0, len(ext_ids), chunk):
        live |= run(_block_chunk, code, ext_ids[start : start + chunk], now())
    return live


def _block_chunk(db, code: str, part: list[str], at: float) -> bool:
    with db.atomic():
        dnc.add_ids(db, code, part, at)
        # The queue is looked up in each chunk: an import may create it meanwhile.
        queue_id = queue_state.live_queue_id(db, code)
        if queue_id is None:
            return False
        for ids in in_parts(part):
            execute(
                db,
                f"UPDATE customer SET state = ?, updated_at = ? WHERE queue_id = ? AND state = ?"
                f" AND ext_id IN ({marks(ids)})",
                (DNC, at, queue_id, PENDING, *ids),
            )
        return True


def delete_queue(db: pw.Database, code: str, *, now=time.time):
    """Withdraw a stopped queue (else QueueRunning): unfinished customers end `deleted`,
    results stay for reports."""
    at = now()
    with db.atomic():
        queue_id, state = queue_state.live_queue(db, code)
        if state != STOPPED:
            raise queue_state.QueueRunning(code)
        execute(
            db,
            "UPDATE customer SET state = ?, updated_at = ? WHERE queue_id = ? AND state IN (?, ?)",
            (DELETED, at, queue_id, PENDING, CALLING),
        )
        queue_state.mark_deleted(db, queue_id, now=at)
