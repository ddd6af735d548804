"""Every read of the store: the API's reports, the dialer's lists, the live view of
`autocall status` and the demo's results. Nothing here writes.

Counts per customer state are computed in one place, `customer_counts`, and always carry
every state, zero included.
"""

from __future__ import annotations

import dataclasses
import json

import peewee as pw

from daemon import outcome
from daemon.store.queue_state import live_queue
from daemon.store.records import Claim, QueueInfo
from daemon.store.schema import execute, read_snapshot
from daemon.store.states import CUSTOMER_STATES, DELETED, DONE, FINAL_STATES, PENDING, RUNNING

# --- the dialer's lists -------------------------------------------------------------------


def running_queues(db: pw.Database) -> list[QueueInfo]:
    """Queues the dialer may call for, oldest first, each with the time its first pending
    customer is due (one look per queue in the partial index `customer_due`, whose predicate
    the literal state matches on both backends: the dialer asks no queue before that)."""
    rows = execute(
        db,
        "SELECT q.id, q.code, q.template, q.concurrent_call, q.max_recall_count, q.min_recall_duration,"
        " q.stop_reason, (SELECT MIN(c.next_call_at) FROM customer c"
        f" WHERE c.queue_id = q.id AND c.state = '{PENDING}') FROM queue q WHERE q.state = ? ORDER BY q.id",
        (RUNNING,),
    ).fetchall()
    return [QueueInfo(*row) for row in rows]


def pending_fields(db: pw.Database, queue_id: int) -> list[dict]:
    """The fields of every pending customer of the queue (what its template must be able to say)."""
    rows = execute(db, "SELECT fields FROM customer WHERE queue_id = ? AND state = ?", (queue_id, PENDING))
    return [json.loads(fields) for (fields,) in rows]


def unowned(db: pw.Database, uuids: list[str]) -> set[str]:
    """Those of the channel `uuids` that no open attempt has, whichever node made it: their attempt
    is closed, or there never was one. A call another node still carries is not among them."""
    owned: set[str] = set()
    for start in range(0, len(uuids), 500):  # within every backend's limit on parameters
        chunk = uuids[start : start + 500]
        sql = f"SELECT uuid FROM attempt WHERE state != ? AND uuid IN ({', '.join('?' * len(chunk))})"
        owned.update(uuid for (uuid,) in execute(db, sql, [DONE, *chunk]).fetchall())
    return set(uuids) - owned


def open_attempts(db: pw.Database, node: str | None = None, *, with_unnamed: bool = True) -> list[Claim]:
    """Attempts not closed: calls the store thinks are live (for reconciliation). With `node`,
    only those that daemon made, and (`with_unnamed`) those made before attempts named their node."""
    sql = (
        "SELECT a.id, a.uuid, a.job_uuid, a.number, c.id, c.ext_id, c.fields, q.id, q.code, q.template,"
        " q.min_recall_duration, a.answered_at, a.slot, a.step, a.result, q.retry_when, q.caller_id FROM attempt a"
        " JOIN customer c ON c.id = a.customer_id JOIN queue q ON q.id = a.queue_id WHERE a.state != ?"
    )
    params: list = [DONE]
    if node is not None:
        sql += " AND (a.node = ? OR a.node IS NULL)" if with_unnamed else " AND a.node = ?"
        params.append(node)
    rows = execute(db, sql + " ORDER BY a.id", params).fetchall()
    return [
        Claim(
            attempt_id,
            uuid,
            job_uuid,
            number,
            customer_id,
            ext_id,
            json.loads(fields),
            queue_id,
            code,
            template,
            min_talk,
            answered_at,
            slot,
            step,
            result,
            None if retry_when is None else tuple(json.loads(retry_when)),
            caller_id,
        )
        for (
            attempt_id,
            uuid,
            job_uuid,
            number,
            customer_id,
            ext_id,
            fields,
            queue_id,
            code,
            template,
            min_talk,
            answered_at,
            slot,
            step,
            result,
            retry_when,
            caller_id,
        ) in rows
    ]


# --- counts -------------------------------------------------------------------------------


def customer_counts(db: pw.Database, queue_id: int | None = None) -> dict[int, dict[str, int]]:
    """Customers per state of every live queue (or of the one with `queue_id`), by queue id;
    an empty queue counts zero everywhere. Read from `queue_count` (daemon/store/counts.py):
    one look-up per queue and state, whatever the queue's size."""
    sql = "SELECT q.id, k.state, k.n FROM queue q LEFT JOIN queue_count k ON k.queue_id = q.id WHERE q.state != ?"
    params: list = [DELETED]
    if queue_id is not None:
        sql += " AND q.id = ?"
        params.append(queue_id)
    counts: dict[int, dict[str, int]] = {}
    for qid, state, n in execute(db, sql + " ORDER BY q.id", params):
        per_state = counts.setdefault(qid, dict.fromkeys(CUSTOMER_STATES, 0))
        if state is not None:
            per_state[state] = n
    return counts


def state_totals(db: pw.Database) -> dict[str, int]:
    """Customers per state over every live queue (for logs and systemd STATUS)."""
    totals = dict.fromkeys(CUSTOMER_STATES, 0)
    for per_state in customer_counts(db).values():
        for state, n in per_state.items():
            totals[state] += n
    return totals


# --- the API's reports --------------------------------------------------------------------

ATTEMPT_COLUMNS = (
    "number",
    "uuid",
    "round",
    "state",
    "started_at",
    "answered_at",
    "ended_at",
    "hangup_cause",
    "sip_status",
    "talk_seconds",
    "keys",
    "outcome",
    "result",
    "trunk",
)
_QUEUE_COLUMNS = (
    "code",
    "template",
    "state",
    "stop_reason",
    "concurrent_call",
    "max_recall_count",
    "min_recall_duration",
    "retry_when",
    "caller_id",
    "created_at",
    "updated_at",
)


def queue_summary(db: pw.Database, code: str) -> dict:
    """The live queue's settings, state and customer counts per state; QueueNotFound if none."""
    queue_id, _ = live_queue(db, code)
    row = execute(db, f"SELECT {', '.join(_QUEUE_COLUMNS)} FROM queue WHERE id = ?", (queue_id,)).fetchone()
    queue = dict(zip(_QUEUE_COLUMNS, row))
    queue["retry_when"] = list(outcome.retry_when_of(queue["retry_when"] and json.loads(queue["retry_when"])))
    counts = customer_counts(db, queue_id)[queue_id]
    return {
        "queue_code": queue.pop("code"),
        **queue,
        "total": sum(counts.values()),
        "finished": sum(counts[s] for s in FINAL_STATES),
        "counts": counts,
    }


def attempt_page(db: pw.Database, queue_id: int, after: int, limit: int) -> list[tuple]:
    """Up to `limit` calls of the queue with an attempt id above `after`, oldest first, each
    as (attempt id, customer ext_id, *ATTEMPT_COLUMNS): one short read, so an export of any
    size is a series of them."""
    columns = ", ".join(f"a.{name}" for name in ATTEMPT_COLUMNS)
    return execute(
        db,
        f"SELECT a.id, c.ext_id, {columns} FROM attempt a JOIN customer c ON c.id = a.customer_id"
        " WHERE a.queue_id = ? AND a.id > ? ORDER BY a.id LIMIT ?",
        (queue_id, after, limit),
    ).fetchall()


# --- the live view (`autocall status`, the demo) -------------------------------------------


@dataclasses.dataclass(frozen=True)
class CallOutcome:
    """One finished call, as the live view lists it."""

    ended_at: float
    customer: str
    number: str
    cause: str
    talk_seconds: float
    keys: str
    outcome: str
    result: str | None


@dataclasses.dataclass(frozen=True)
class QueueStatus:
    """A snapshot of one live queue. `counts` has every customer state, zero included."""

    code: str
    template: str
    state: str
    stop_reason: str | None
    concurrent_call: int
    counts: dict[str, int]
    dialed: int  # attempts ever made for this queue
    due_now: int  # pending customers whose next call may start now
    due_later: int  # pending customers waiting for a recall
    calls_last_minute: int  # attempts started in the 60 s before the snapshot
    recent: tuple[CallOutcome, ...]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(self.counts[s] for s in FINAL_STATES)

    @property
    def done(self) -> bool:
        """Every customer of the queue is in a final state."""
        return self.finished == self.total


def queue_statuses(db: pw.Database, *, now: float, queue: str | None = None, recent: int = 5) -> list[QueueStatus]:
    """Every live queue (or only the one named `queue`), oldest first, from one snapshot."""
    with read_snapshot(db):
        sql = "SELECT id, code, template, state, stop_reason, concurrent_call FROM queue WHERE state != ?"
        params: list = [DELETED]
        if queue is not None:
            sql += " AND code = ?"
            params.append(queue)
        rows = execute(db, sql + " ORDER BY id", params).fetchall()
        counts = customer_counts(db) if rows else {}
        return [_queue_status(db, row, counts[row[0]], now, recent) for row in rows]


def _queue_status(db, row, counts: dict[str, int], now: float, recent: int) -> QueueStatus:
    queue_id, code, template, state, stop_reason, concurrent_call = row
    due_now = execute(
        db,
        "SELECT COUNT(*) FROM customer WHERE queue_id = ? AND state = ? AND next_call_at <= ?",
        (queue_id, PENDING, now),
    ).fetchone()[0]
    dialed, last_minute = execute(
        db,
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN started_at > ? THEN 1 ELSE 0 END), 0) FROM attempt WHERE queue_id = ?",
        (now - 60.0, queue_id),
    ).fetchone()
    outcomes = execute(
        db,
        "SELECT a.ended_at, c.ext_id, a.number, COALESCE(a.hangup_cause, ''), COALESCE(a.talk_seconds, 0),"
        " a.keys, COALESCE(a.outcome, ''), a.result FROM attempt a JOIN customer c ON c.id = a.customer_id"
        " WHERE a.queue_id = ? AND a.state = ? ORDER BY a.ended_at DESC, a.id DESC LIMIT ?",
        (queue_id, DONE, recent),
    ).fetchall()
    return QueueStatus(
        code=code,
        template=template,
        state=state,
        stop_reason=stop_reason,
        concurrent_call=concurrent_call,
        counts=counts,
        dialed=dialed,
        due_now=due_now,
        due_later=counts[PENDING] - due_now,
        calls_last_minute=last_minute,
        recent=tuple(CallOutcome(*o) for o in outcomes),
    )


# The demo's breakdowns beside the counts per state: (what is counted, from which table).
_TALLIES = {
    "calls_by_outcome": ("COALESCE(t.outcome, t.state)", "attempt"),
    "calls_by_cause": ("COALESCE(t.hangup_cause, '-')", "attempt"),
    "customers_by_result": ("COALESCE(t.result, '(none)')", "customer"),
}


def tallies(db: pw.Database) -> dict[str, dict[str, dict[str, int]]]:
    """Over the live queues: calls by outcome and by hangup cause, customers by state and by
    IVR result, each as {row: {queue code: count}} with no zero cells (the demo's results)."""
    with read_snapshot(db):
        codes = dict(execute(db, "SELECT id, code FROM queue WHERE state != ?", (DELETED,)).fetchall())
        by_state: dict[str, dict[str, int]] = {}
        for queue_id, per_state in customer_counts(db).items():
            for state, n in per_state.items():
                if n:
                    by_state.setdefault(state, {})[codes[queue_id]] = n
        tables = {"customers_by_state": by_state}
        for name, (counted, table) in _TALLIES.items():
            cells = tables[name] = {}
            for code, row, n in execute(
                db,
                f"SELECT q.code, {counted}, COUNT(*) FROM {table} t"
                " JOIN queue q ON q.id = t.queue_id WHERE q.state != ?"
                " GROUP BY q.code, 2",
                (DELETED,),
            ):
                cells.setdefault(row, {})[code] = n
    return tables
