"""Every change of a customer's state, one function per transition; with `commands.py` (the
API's import, block and delete) the only writer of `customer.state` (DESIGN §2, §3).

    new ──import──▶ pending ──claim_many──▶ calling ──finish──▶ pending (recall) | final
    pending ──claim_many──▶ failed (no live number)     calling ──abandon──▶ pending | failed
    pending ──block──▶ dnc        pending, calling ──delete_queue──▶ deleted
    success, failed ──import (re-arm)──▶ pending

The API's commands (`import_customers`, `block`, `delete_queue`) live in `commands.py` and
are re-exported here. The dialer's transitions (`claim_many`,
`mark_answered`, `finish`, `abandon`) run inside the caller's transaction, so the ledger can
write a batch of them in one; `claim_many`, `finish` and `abandon` refuse to run outside
one. None does I/O but SQL.
"""

from __future__ import annotations

import dataclasses
import json
import uuid as uuid_mod

import peewee as pw

from daemon import outcome
from daemon.store import dnc, people, queue_state
from daemon.store.commands import block, delete_queue, import_customers
from daemon.store.records import CallReport, Claim, QueueInfo
from daemon.store.schema import dialect_of, execute, executemany, marks
from daemon.store.states import ANSWERED, CALLING, DIALING, DNC, DONE, FAILED, PENDING, RUNNING

__all__ = [  # the API's commands, re-exported for the callers that know them from here
    "abandon",
    "block",
    "claim_many",
    "delete_queue",
    "finish",
    "import_customers",
    "mark_answered",
    "still_to_dial",
]

CANDIDATES = 8  # customers looked at per claim when some are over their daily cap
BUSY_RETRY = 1.0  # seconds a customer whose person is in another call waits before the next look


# --- the dialer's transitions (inside the caller's transaction) ---------------------------


def claim_many(
    db: pw.Database,
    queue: QueueInfo,
    limit: int,
    *,
    now: float,
    day_start: float,
    next_day: float,
    daily_cap: int,
    busy_retry: float = BUSY_RETRY,
    slots: list[int] | None = None,
    node: str | None = None,
) -> list[Claim]:
    """Take up to `limit` of the queue's due customers into calls: higher priority first, then
    in due order (`_due`).

    The queue must still be running and each customer still pending (a stop or DNC
    committed before this is honoured, and the id is looked up on the DNC list of the queue's
    code once more); no more are taken than leave the queue's customers in calls, made by any
    dialer, at most its `concurrent_call`. The person is the unit (`store.people`): one whose
    id or any number is in an open call, in any queue, stays pending and is looked at again
    `busy_retry` seconds later; one whose id had `daily_cap` calls since `day_start`, or
    whose numbers left in this round all had, moves to `next_day`; a number at its cap or on
    the DNC number list is skipped. One with no live number left ends `failed`, one whose live
    numbers are all on the DNC number list ends `dnc`. Each claim gets an attempt row with
    fresh uuids, made by `node`, and, when `slots` are given, the next one of them (the
    dialer's: free slots of the switch's hangup records, at least `limit`). On PostgreSQL a
    due customer another transaction holds is passed over, not waited for (`FOR UPDATE SKIP
    LOCKED`).
    """
    _require_transaction(db)
    claims: list[Claim] = []
    state, template, cap, retry_when, caller_id = execute(
        db, "SELECT state, template, concurrent_call, retry_when, caller_id FROM queue WHERE id = ?", (queue.id,)
    ).fetchone()
    if state != RUNNING:
        return claims
    # concurrent_call holds across every dialer on this database, not per dialer.
    in_calls = execute(db, "SELECT COUNT(*) FROM customer WHERE queue_id = ? AND state = ?", (queue.id, CALLING))
    limit = min(limit, cap - in_calls.fetchone()[0])
    if limit <= 0:
        return claims
    # The template as of this transaction: an import may have switched it since `queue` was read.
    queue = dataclasses.replace(queue, template=template)
    policy = (None if retry_when is None else tuple(json.loads(retry_when)), caller_id)
    rows = _due(db, queue.id, now, limit + CANDIDATES)
    if not rows:
        return claims
    # Each candidate's mobiles parsed once; the people behind them read in one statement.
    rows = [(cid, ext_id, json.loads(mobiles), *rest) for cid, ext_id, mobiles, *rest in rows]
    crowd = people.look_many(db, queue.code, [(row[1], row[2]) for row in rows], day_start)
    taken: list[_Taken] = []
    for row in rows:
        got = _take(db, crowd, row, now, day_start, next_day, daily_cap, busy_retry)
        if got is not None:
            taken.append(got)
            if len(taken) == limit:
                break
    return _open_attempts(db, queue, taken, now, slots, node, policy)


@dataclasses.dataclass(frozen=True)
class _Taken:
    """A candidate the claim takes into a call: its row's values and the number to dial."""

    customer_id: int
    ext_id: str
    fields: str
    round: int
    index: int
    number: str
    dead: list[str]


def still_to_dial(db: pw.Database, claims: list[Claim]) -> set[int]:
    """The attempt ids of `claims` that may be dialed now: the call still open, its customer
    still `calling` in a running queue, the id not on the DNC list of the queue's code, the
    number not on the DNC number list. The dialer reads this right before the originates go,
    so a stop, DNC or delete acknowledged after the claim committed is honoured too."""
    if not claims:
        return set()
    ids = [c.attempt_id for c in claims]
    rows = execute(
        db,
        "SELECT a.id FROM attempt a JOIN customer c ON c.id = a.customer_id JOIN queue q ON q.id = c.queue_id"
        f" WHERE a.id IN ({marks(ids)}) AND a.ended_at IS NULL AND c.state = ? AND q.state = ?"
        " AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.queue_code = q.code AND d.ext_id = c.ext_id)"
        " AND NOT EXISTS (SELECT 1 FROM dnc_number n WHERE n.number = a.number)",
        (*ids, CALLING, RUNNING),
    )
    return {row[0] for row in rows}


_DUE_LEVEL = f"SELECT MAX(priority) FROM customer WHERE queue_id = ? AND state = '{PENDING}'"
_DUE_ROWS = (
    "SELECT id, ext_id, mobiles, fields, number_index, round, dead_numbers FROM customer"
    f" WHERE queue_id = ? AND state = '{PENDING}' AND priority = ? AND next_call_at <= ?"
    " ORDER BY next_call_at, id LIMIT ?"
)


def _due(db, queue_id: int, now: float, want: int) -> list:
    """Up to `want` of the queue's due pending customers: the highest priority first, and within
    a priority the one due longest ago first (a first call is due from its import, a recall from
    its delay's end), then import order. Each priority level is one look in the index
    `customer_due_priority` (its highest level, then its due rows), so a claim reads only
    the rows it may take, whatever waits behind them; levels are few (0-9)."""
    rows: list = []
    level = None
    while len(rows) < want:
        if level is None:
            level = execute(db, _DUE_LEVEL, (queue_id,)).fetchone()[0]
        else:
            level = execute(db, _DUE_LEVEL + " AND priority < ?", (queue_id, level)).fetchone()[0]
        if level is None:
            break
        rows += execute(db, _DUE_ROWS + dialect_of(db).skip_locked, (queue_id, level, now, want - len(rows))).fetchall()
    return rows


def _take(db, crowd: people.Crowd, row, now, day_start, next_day, daily_cap, busy_retry) -> _Taken | None:
    """The candidate `row` taken into a call (and counted in `crowd`), or passed over: ended or
    put off as the person rules say (claim_many's docstring)."""
    cid, ext_id, mobiles, fields, index, rnd, dead = row
    dead = frozenset(json.loads(dead))
    if _next_number(mobiles, dead, index) is None:
        _end(db, cid, FAILED, "NO_LIVE_NUMBER", now)
        return None
    person = crowd.person(ext_id, mobiles)
    if person.on_dnc:  # `block` ended it already, unless the DNC came before a migration did
        _end(db, cid, DNC, None, now)
        return None
    # A number on the DNC number list is dead for every customer: kept with the dead ones, so
    # the recall rules skip it too.
    dead |= person.dnc_numbers
    first = _next_number(mobiles, dead, index)
    if first is None:
        _end(db, cid, DNC, "NUMBER_ON_DNC_LIST", now)
        return None
    if person.in_call:
        _postpone(db, cid, now + busy_retry, now)
        return None
    # Numbers at their cap are skipped forward only: going back would restart the round forever.
    capped = frozenset(n for n, calls in person.number_calls.items() if daily_cap and calls >= daily_cap)
    live = outcome.first_live_index(mobiles, dead | capped, first)
    if live is None or (daily_cap and person.calls_today >= daily_cap):
        _postpone(db, cid, next_day, now)
        return None
    crowd.took(ext_id, mobiles[live])
    return _Taken(cid, ext_id, fields, rnd, live, mobiles[live], sorted(dead))


def _open_attempts(db, queue: QueueInfo, taken: list[_Taken], now, slots, node, policy) -> list[Claim]:
    """Each taken customer `calling`, with its attempt row: two statements for the batch."""
    if not taken:
        return []
    executemany(
        db,
        "UPDATE customer SET state = ?, number_index = ?, dead_numbers = ?, updated_at = ? WHERE id = ?",
        [(CALLING, t.index, json.dumps(t.dead), now, t.customer_id) for t in taken],
    )
    uuids = [(str(uuid_mod.uuid4()), str(uuid_mod.uuid4())) for _ in taken]
    slot_of = [slots[i] if slots else None for i in range(len(taken))]
    values = [
        (t.customer_id, queue.id, t.round, t.number, call_uuid, job_uuid, DIALING, now, slot, node)
        for t, (call_uuid, job_uuid), slot in zip(taken, uuids, slot_of, strict=True)
    ]
    ids = dict(
        execute(
            db,
            "INSERT INTO attempt (customer_id, queue_id, round, number, uuid, job_uuid, state, started_at, keys,"
            " slot, node) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?)"] * len(values))
            + " RETURNING uuid, id",
            [v for row in values for v in row],
        ).fetchall()
    )
    return [
        Claim(
            ids[call_uuid],
            call_uuid,
            job_uuid,
            t.number,
            t.customer_id,
            t.ext_id,
            json.loads(t.fields),
            queue.id,
            queue.code,
            queue.template,
            queue.min_recall_duration,
            slot=slot,
            retry_when=policy[0],
            caller_id=policy[1],
        )
        for t, (call_uuid, job_uuid), slot in zip(taken, uuids, slot_of, strict=True)
    ]


def _next_number(mobiles: list[str], skipped: frozenset, index: int) -> int | None:
    """The round's next number not in `skipped`, else the first one from the start."""
    live = outcome.first_live_index(mobiles, skipped, index)
    return live if live is not None else outcome.first_live_index(mobiles, skipped)


def _end(db, customer_id: int, state: str, cause: str | None, now: float) -> None:
    execute(
        db,
        "UPDATE customer SET state = ?, last_cause = COALESCE(?, last_cause), updated_at = ? WHERE id = ?",
        (state, cause, now, customer_id),
    )


def _postpone(db, customer_id: int, until: float, now: float) -> None:
    execute(db, "UPDATE customer SET next_call_at = ?, updated_at = ? WHERE id = ?", (until, now, customer_id))


def mark_answered(db: pw.Database, attempt_id: int, at: float):
    """The call was answered at `at` (kept if it was already recorded, or closed)."""
    execute(
        db,
        "UPDATE attempt SET state = ?, answered_at = ? WHERE id = ? AND state = ?",
        (ANSWERED, at, attempt_id, DIALING),
    )


def mark_step(db: pw.Database, attempt_id: int, step: str, result: str | None):
    """The call's IVR entered `step` with `result` recorded so far (an open attempt only), so a
    call re-attached after a restart resumes there and a call that ends meanwhile keeps it."""
    execute(
        db,
        "UPDATE attempt SET step = ?, result = COALESCE(?, result) WHERE id = ? AND state != ?",
        (step, result, attempt_id, DONE),
    )


def finish(
    db: pw.Database, claim: Claim, report: CallReport, *, recall_delay: float, recall_delays=None
) -> tuple[str, str]:
    """Close the attempt and move the customer on by the recall rules (`outcome.next_state`,
    with the queue's `retry_when` and the per-cause `recall_delays`); a configuration error
    also stops the queue. Returns (attempt outcome, customer state). Idempotent: an attempt
    already closed is left as it is ("unchanged")."""
    _require_transaction(db)
    retry_when = outcome.retry_when_of(claim.retry_when)
    result = outcome.of_report(report, claim.min_talk, retry_when)
    cursor = execute(
        db,
        "UPDATE attempt SET state = ?, answered_at = COALESCE(?, answered_at), ended_at = ?,"
        " hangup_cause = ?, sip_status = ?, talk_seconds = ?, keys = ?, outcome = ?, result = ?,"
        " trunk = COALESCE(?, trunk) WHERE id = ? AND state != ?",
        (
            DONE,
            report.answered_at,
            report.ended_at,
            report.cause,
            report.sip_status,
            round(report.talk_seconds, 3),
            report.keys,
            result,
            report.result,
            report.trunk,
            claim.attempt_id,
            DONE,
        ),
    )
    if cursor.rowcount == 0:
        return result, "unchanged"
    state = _after_call(db, claim, report, result, recall_delay, recall_delays, retry_when)
    if result == outcome.CONFIG_ERROR:
        reason = report.stop_reason or (
            f"FreeSWITCH answered {report.cause} for {claim.number}: check the dial string and gateway"
        )
        queue_state.stop_by_dialer(db, claim.queue_id, claim.queue_code, reason, now=report.ended_at)
    return result, state


def _after_call(
    db, claim: Claim, report: CallReport, result: str, recall_delay: float, recall_delays, retry_when
) -> str:
    state, mobiles, index, rnd, dead, next_call, max_recall = execute(
        db,
        "SELECT c.state, c.mobiles, c.number_index, c.round, c.dead_numbers, c.next_call_at,"
        " q.max_recall_count FROM customer c JOIN queue q ON q.id = c.queue_id WHERE c.id = ?",
        (claim.customer_id,),
    ).fetchone()
    if state != CALLING:
        return state  # deleted while in the call: the result stays on the attempt
    on_dnc = dnc.is_listed(db, claim.queue_code, claim.ext_id)
    progress = outcome.Progress(tuple(json.loads(mobiles)), index, rnd, frozenset(json.loads(dead)))
    nxt = outcome.next_state(
        progress,
        claim.number,
        result,
        max_recall_count=max_recall,
        recall_delay=recall_delay,
        on_dnc=on_dnc,
        cause=report.cause,
        retry_when=retry_when,
        recall_delays=recall_delays,
    )
    if nxt.delay is not None:
        next_call = report.ended_at + nxt.delay
    execute(
        db,
        "UPDATE customer SET state = ?, number_index = ?, round = ?, dead_numbers = ?, next_call_at = ?,"
        " last_cause = ?, result = COALESCE(?, result), updated_at = ? WHERE id = ?",
        (
            nxt.state,
            nxt.number_index,
            nxt.round,
            json.dumps(sorted(nxt.dead_numbers)),
            next_call,
            report.cause,
            report.result,
            report.ended_at,
            claim.customer_id,
        ),
    )
    return nxt.state


def abandon(
    db: pw.Database,
    claim: Claim,
    *,
    cause: str,
    now: float,
    customer_state: str = PENDING,
    stop_reason: str | None = None,
):
    """Close a claimed attempt that was never dialed (a broken template or sound file).

    The customer goes back to `pending` (due at once, nothing counted) — `dnc` if a DNC for it
    came while it was claimed — or ends in `customer_state` with `cause`; `stop_reason` also
    stops the queue, loudly."""
    _require_transaction(db)
    if customer_state not in (PENDING, FAILED):
        raise ValueError(f"abandon leaves a customer pending or failed, not {customer_state!r}")
    if customer_state == PENDING and dnc.is_listed(db, claim.queue_code, claim.ext_id):
        customer_state = DNC
    closed = execute(
        db,
        "UPDATE attempt SET state = ?, ended_at = ?, hangup_cause = ?, outcome = ? WHERE id = ? AND state != ?",
        (DONE, now, cause[:500], outcome.NOT_DIALED, claim.attempt_id, DONE),
    ).rowcount
    if closed:  # else closed already: the customer may be `calling` again, under a newer attempt
        execute(
            db,
            "UPDATE customer SET state = ?, next_call_at = ?, last_cause = ?, updated_at = ?"
            " WHERE id = ? AND state = ?",
            (customer_state, now, cause[:500], now, claim.customer_id, CALLING),
        )
    if stop_reason:
        queue_state.stop_by_dialer(db, claim.queue_id, claim.queue_code, stop_reason, now=now)


def _require_transaction(db: pw.Database):
    if not db.in_transaction():
        raise RuntimeError("a dialer transition runs inside the caller's db.atomic()")
