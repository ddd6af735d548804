"""What the five commands of the API do to the store, and the reads behind the report endpoints.

Every command is a few short IMMEDIATE transactions with no I/O inside. Semantics are
DESIGN §2; the decisions it leaves open are written in docs/api.md.
"""
from __future__ import annotations

import dataclasses
import json
import time

import peewee as pw

from daemon.errors import AutocallError
from daemon.store import (
    CALLING, CUSTOMER_STATES, DELETED, DNC, FINAL_STATES, PENDING, RUNNING, STOPPED,
    Attempt, Customer, Queue,
)


class QueueNotFound(AutocallError):
    """No live queue has that code."""


class QueueRunning(AutocallError):
    """The command needs a stopped queue."""


@dataclasses.dataclass(frozen=True)
class NewCustomer:
    ext_id: str
    mobiles: list[str]
    fields: dict


@dataclasses.dataclass(frozen=True)
class ImportRequest:
    queue_code: str
    template: str
    settings: dict          # only the optional queue fields the request gave
    customers: list[NewCustomer]


@dataclasses.dataclass
class ImportResult:
    success: list[str] = dataclasses.field(default_factory=list)
    rejected: list[dict] = dataclasses.field(default_factory=list)   # {"id", "reason"}


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def live_queue(code: str) -> Queue:
    """The queue with this code that is not deleted, or QueueNotFound."""
    queue = Queue.get_or_none((Queue.code == code) & (Queue.state != DELETED))
    if queue is None:
        raise QueueNotFound(code)
    return queue


def import_customers(db: pw.Database, request: ImportRequest, defaults, *,
                     chunk: int = 2000, now=time.time) -> ImportResult:
    """Create or merge the queue, then add or refresh its customers `chunk` at a time.

    A new queue starts `running`. An existing one takes the template and the settings
    the request gave and keeps its state. Per customer: new → pending; pending → data
    refreshed; finished → armed again for a new round; in a call or on the DNC list →
    rejected with the reason.
    """
    with db.atomic():
        queue_id = _upsert_queue(request, defaults, now())
    result = ImportResult()
    customers = request.customers
    for start in range(0, len(customers), chunk):
        with db.atomic():
            _import_chunk(db, queue_id, customers[start:start + chunk], result, now())
    return result


def _upsert_queue(request: ImportRequest, defaults, at: float) -> int:
    queue = Queue.get_or_none((Queue.code == request.queue_code) & (Queue.state != DELETED))
    if queue is None:
        values = dataclasses.asdict(defaults) | request.settings
        return Queue.insert(code=request.queue_code, template=request.template, state=RUNNING,
                            created_at=at, updated_at=at, **values).execute()
    Queue.update(template=request.template, updated_at=at, **request.settings).where(
        Queue.id == queue.id).execute()
    return queue.id


def _import_chunk(db, queue_id: int, chunk: list[NewCustomer], result: ImportResult, at: float):
    queue_state = db.execute_sql("SELECT state FROM queue WHERE id = ?", (queue_id,)).fetchone()[0]
    if queue_state == DELETED:
        result.rejected.extend({"id": c.ext_id, "reason": "the queue was deleted during the import"}
                               for c in chunk)
        return
    ids = [c.ext_id for c in chunk]
    marks = ",".join("?" * len(ids))
    existing = {ext_id: (row_id, state) for ext_id, row_id, state in db.execute_sql(
        f"SELECT ext_id, id, state FROM customer WHERE queue_id = ? AND ext_id IN ({marks})",
        [queue_id, *ids])}
    blocked = set()
    if db.execute_sql("SELECT 1 FROM dnc WHERE queue_id = ? LIMIT 1", (queue_id,)).fetchone():
        blocked = {row[0] for row in db.execute_sql(
            f"SELECT ext_id FROM dnc WHERE queue_id = ? AND ext_id IN ({marks})", [queue_id, *ids])}
    inserts, refreshes, rearms = [], [], []
    for c in chunk:
        # Numbers are digits only (daemon.phone), so their JSON needs no escaping.
        mobiles, fields = '["' + '","'.join(c.mobiles) + '"]', _dumps(c.fields)
        if c.ext_id in blocked:
            result.rejected.append({"id": c.ext_id, "reason": "on this queue's DNC list"})
            continue
        row_id, state = existing.get(c.ext_id, (None, None))
        if row_id is None:
            inserts.append((queue_id, c.ext_id, mobiles, fields, at, at, at))
        elif state == CALLING:
            result.rejected.append({"id": c.ext_id, "reason": "in a call right now; send it again later"})
            continue
        elif state == PENDING:
            # New numbers start the round's number list over; the same ones keep its place.
            refreshes.append((mobiles, fields, at, row_id))
        else:
            rearms.append((mobiles, fields, at, at, row_id))
        result.success.append(c.ext_id)
    cursor = db.cursor()
    cursor.executemany(
        "INSERT INTO customer (queue_id, ext_id, mobiles, fields, state, round, number_index,"
        " dead_numbers, next_call_at, created_at, updated_at)"
        f" VALUES (?, ?, ?, ?, '{PENDING}', 0, 0, '[]', ?, ?, ?)", inserts)
    cursor.executemany(
        "UPDATE customer SET number_index = CASE WHEN mobiles = ?1 THEN number_index ELSE 0 END,"
        " dead_numbers = CASE WHEN mobiles = ?1 THEN dead_numbers ELSE '[]' END,"
        " mobiles = ?1, fields = ?2, updated_at = ?3 WHERE id = ?4", refreshes)
    cursor.executemany(
        f"UPDATE customer SET mobiles = ?, fields = ?, state = '{PENDING}', round = 0,"
        " number_index = 0, dead_numbers = '[]', next_call_at = ?, last_cause = NULL,"
        " result = NULL, updated_at = ? WHERE id = ?", rearms)


def add_dnc(db: pw.Database, code: str, ext_ids: list[str], *, chunk: int = 2000, now=time.time):
    """Block these ids on the queue: pending ones are never dialed; later imports are refused.

    Customers in a call finish that call; the dialer sees the DNC row before any recall.
    Finished customers keep their result.
    """
    with db.atomic():
        queue_id = live_queue(code).id
    for start in range(0, len(ext_ids), chunk):
        part = ext_ids[start:start + chunk]
        at = now()
        with db.atomic():
            db.cursor().executemany(
                "INSERT OR IGNORE INTO dnc (queue_id, ext_id, created_at) VALUES (?, ?, ?)",
                [(queue_id, ext_id, at) for ext_id in part])
            Customer.update(state=DNC, updated_at=at).where(
                (Customer.queue == queue_id) & (Customer.ext_id.in_(part))
                & (Customer.state == PENDING)).execute()


def set_running(db: pw.Database, code: str, running: bool, *, now=time.time):
    """Stop or start the queue. After a stop commits, the dialer originates none of its calls."""
    with db.atomic():
        queue = live_queue(code)
        Queue.update(state=RUNNING if running else STOPPED, stop_reason=None,
                     updated_at=now()).where(Queue.id == queue.id).execute()


def delete_queue(db: pw.Database, code: str, *, now=time.time):
    """Withdraw a stopped queue: unfinished customers end `deleted`, results stay for reports."""
    at = now()
    with db.atomic():
        queue = live_queue(code)
        if queue.state != STOPPED:
            raise QueueRunning(code)
        Customer.update(state=DELETED, updated_at=at).where(
            (Customer.queue == queue.id) & (Customer.state.in_((PENDING, CALLING)))).execute()
        Queue.update(state=DELETED, updated_at=at).where(Queue.id == queue.id).execute()


def queue_summary(code: str) -> dict:
    queue = live_queue(code)
    counts = dict.fromkeys(CUSTOMER_STATES, 0)
    for state, n in (Customer.select(Customer.state, pw.fn.COUNT(Customer.id))
                     .where(Customer.queue == queue.id).group_by(Customer.state).tuples()):
        counts[state] = n
    return {
        "queue_code": queue.code,
        "template": queue.template,
        "state": queue.state,
        "stop_reason": queue.stop_reason,
        "concurrent_call": queue.concurrent_call,
        "max_recall_count": queue.max_recall_count,
        "min_recall_duration": queue.min_recall_duration,
        "created_at": queue.created_at,
        "updated_at": queue.updated_at,
        "total": sum(counts.values()),
        "finished": sum(counts[s] for s in FINAL_STATES),
        "counts": counts,
    }


def list_customers(code: str, *, state: str | None, page: int, per_page: int) -> dict:
    """One page of the queue's customers (by import order), each with its attempts."""
    queue = live_queue(code)
    query = Customer.select().where(Customer.queue == queue.id)
    if state:
        query = query.where(Customer.state == state)
    total = query.count()
    customers = list(query.order_by(Customer.id).paginate(page, per_page))
    attempts: dict[int, list] = {c.id: [] for c in customers}
    if customers:
        for a in Attempt.select().where(Attempt.customer.in_(list(attempts))).order_by(Attempt.id):
            attempts[a.customer_id].append(attempt_dict(a))
    return {
        "page": page,
        "per_page": per_page,
        "total": total,
        "customers": [customer_dict(c, attempts[c.id]) for c in customers],
    }


def customer_dict(c: Customer, attempts: list[dict]) -> dict:
    return {
        "id": c.ext_id,
        "state": c.state,
        "mobiles": c.mobiles,
        "fields": c.fields,
        "round": c.round,
        "next_call_at": c.next_call_at if c.state == PENDING else None,
        "last_cause": c.last_cause,
        "result": c.result,
        "attempts": attempts,
    }


ATTEMPT_COLUMNS = ("number", "uuid", "round", "state", "started_at", "answered_at", "ended_at",
                   "hangup_cause", "sip_status", "talk_seconds", "keys", "outcome", "result")


def attempt_dict(a: Attempt) -> dict:
    return {name: getattr(a, name) for name in ATTEMPT_COLUMNS}


def iter_attempts(code: str, *, batch: int = 1000):
    """Yield (customer ext_id, Attempt) for every call of the queue, oldest first, in batches."""
    queue = live_queue(code)
    last = 0
    while True:
        rows = list(Attempt.select(Attempt, Customer.ext_id).join(Customer)
                    .where((Attempt.queue == queue.id) & (Attempt.id > last))
                    .order_by(Attempt.id).limit(batch))
        if not rows:
            return
        for a in rows:
            yield a.customer.ext_id, a
        last = rows[-1].id
