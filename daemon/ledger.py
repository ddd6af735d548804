"""The dialer's transactions on the store: claim the next customer, record a call, close it.

Each method is one short IMMEDIATE transaction with no I/O but SQLite. The dialer runs
them on one worker thread (`LedgerThread`), so a write lock held by the API process
stalls that thread, never the gevent loop that carries every call's audio commands.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import uuid as uuid_mod

import gevent.event
import gevent.threadpool
import peewee as pw

from daemon import outcome
from daemon.store import CALLING, DONE, FAILED, PENDING, RUNNING, STOPPED

log = logging.getLogger(__name__)

CANDIDATES = 8  # customers looked at per claim when some are over their daily cap


@dataclasses.dataclass(frozen=True)
class QueueInfo:
    id: int
    code: str
    template: str
    concurrent_call: int
    max_recall_count: int
    min_recall_duration: int


@dataclasses.dataclass(frozen=True)
class Claim:
    """Everything one call needs, taken from the store in the claim's transaction."""
    attempt_id: int
    uuid: str
    job_uuid: str
    number: str
    customer_id: int
    ext_id: str
    fields: dict
    queue_id: int
    queue_code: str
    template: str
    min_talk: int
    answered_at: float | None = None


@dataclasses.dataclass(frozen=True)
class CallReport:
    """What happened on the call, as FreeSWITCH and the IVR reported it."""
    answered_at: float | None
    ended_at: float
    talk_seconds: float
    cause: str | None
    sip_status: str | None = None
    keys: str = ""
    result: str | None = None
    interrupted: bool = False
    stop_reason: str | None = None  # the switch could not run our configuration: config_error, stop the queue


class Ledger:
    """The daemon's view of the store. `db` is a peewee database from store.open_database."""

    def __init__(self, db: pw.SqliteDatabase):
        self.db = db

    def running_queues(self) -> list[QueueInfo]:
        rows = self.db.execute_sql(
            "SELECT id, code, template, concurrent_call, max_recall_count, min_recall_duration"
            " FROM queue WHERE state = ? ORDER BY id", (RUNNING,)).fetchall()
        return [QueueInfo(*row) for row in rows]

    def claim(self, queue: QueueInfo, *, now: float, day_start: float, next_day: float,
              daily_cap: int) -> Claim | None:
        """The queue's next due customer taken into a call, or None (see claim_many)."""
        claims = self.claim_many(queue, 1, now=now, day_start=day_start, next_day=next_day, daily_cap=daily_cap)
        return claims[0] if claims else None

    def claim_many(self, queue: QueueInfo, limit: int, *, now: float, day_start: float, next_day: float,
                   daily_cap: int) -> list[Claim]:
        """Take up to `limit` of the queue's due customers into calls, in due order.

        In one transaction: the queue must still be running and each customer still
        pending (a stop or DNC committed before this is honoured); a customer at its daily
        cap is moved to `next_day`; each claim gets an attempt row with fresh uuids.
        """
        claims: list[Claim] = []
        with self.db.atomic():
            state = self.db.execute_sql("SELECT state FROM queue WHERE id = ?", (queue.id,)).fetchone()
            if state is None or state[0] != RUNNING:
                return claims
            rows = self.db.execute_sql(
                "SELECT id, ext_id, mobiles, fields, number_index, round, dead_numbers FROM customer"
                " WHERE queue_id = ? AND state = ? AND next_call_at <= ? ORDER BY next_call_at, id LIMIT ?",
                (queue.id, PENDING, now, limit + CANDIDATES)).fetchall()
            for row in rows:
                claim = self._take(queue, row, now, day_start, next_day, daily_cap)
                if claim is not None:
                    claims.append(claim)
                    if len(claims) == limit:
                        break
        return claims

    def _take(self, queue, row, now, day_start, next_day, daily_cap) -> Claim | None:
        cid, ext_id, mobiles, fields, index, rnd, dead = row
        if daily_cap and self._calls_since(cid, day_start) >= daily_cap:
            self.db.execute_sql("UPDATE customer SET next_call_at = ?, updated_at = ? WHERE id = ?",
                                (next_day, now, cid))
            return None
        mobiles, dead = json.loads(mobiles), frozenset(json.loads(dead))
        live = outcome.first_live_index(mobiles, dead, index)
        if live is None:
            live = outcome.first_live_index(mobiles, dead)
        if live is None:
            self.db.execute_sql(
                "UPDATE customer SET state = ?, last_cause = 'NO_LIVE_NUMBER', updated_at = ? WHERE id = ?",
                (FAILED, now, cid))
            return None
        self.db.execute_sql("UPDATE customer SET state = ?, number_index = ?, updated_at = ? WHERE id = ?",
                            (CALLING, live, now, cid))
        call_uuid, job_uuid = str(uuid_mod.uuid4()), str(uuid_mod.uuid4())
        cursor = self.db.execute_sql(
            "INSERT INTO attempt (customer_id, queue_id, round, number, uuid, job_uuid, state,"
            " started_at, keys) VALUES (?, ?, ?, ?, ?, ?, 'dialing', ?, '')",
            (cid, queue.id, rnd, mobiles[live], call_uuid, job_uuid, now))
        return Claim(cursor.lastrowid, call_uuid, job_uuid, mobiles[live], cid, ext_id,
                     json.loads(fields), queue.id, queue.code, queue.template, queue.min_recall_duration)

    def _calls_since(self, customer_id: int, since: float) -> int:
        skip = tuple(outcome.NOT_COUNTED)
        return self.db.execute_sql(
            "SELECT COUNT(*) FROM attempt WHERE customer_id = ? AND started_at >= ?"
            f" AND (outcome IS NULL OR outcome NOT IN ({','.join('?' * len(skip))}))",
            (customer_id, since, *skip)).fetchone()[0]

    def mark_answered(self, attempt_id: int, at: float):
        with self.db.atomic():
            self._answered(attempt_id, at)

    def _answered(self, attempt_id: int, at: float):
        self.db.execute_sql("UPDATE attempt SET state = 'answered', answered_at = ? WHERE id = ? AND state = 'dialing'",
                            (at, attempt_id))

    def record_many(self, answered: list, finished: list) -> list[tuple[str, str]]:
        """mark_answered for each (attempt_id, at) and finish for each (claim, report,
        recall_delay), in one transaction; returns finish's results in order."""
        with self.db.atomic():
            for attempt_id, at in answered:
                self._answered(attempt_id, at)
            return [self._finish(claim, report, delay) for claim, report, delay in finished]

    def finish(self, claim: Claim, report: CallReport, *, recall_delay: float) -> tuple[str, str]:
        """Close the attempt and move the customer on (DESIGN §3). Returns (attempt outcome,
        customer state). Idempotent: an attempt already closed is left as it is."""
        with self.db.atomic():
            return self._finish(claim, report, recall_delay)

    def _finish(self, claim: Claim, report: CallReport, recall_delay: float) -> tuple[str, str]:
        result = outcome.CONFIG_ERROR if report.stop_reason else outcome.classify(
            answered=report.answered_at is not None, talk_seconds=report.talk_seconds,
            cause=report.cause, min_talk=claim.min_talk, interrupted=report.interrupted)
        cursor = self.db.execute_sql(
            "UPDATE attempt SET state = ?, answered_at = COALESCE(?, answered_at), ended_at = ?,"
            " hangup_cause = ?, sip_status = ?, talk_seconds = ?, keys = ?, outcome = ?, result = ?"
            " WHERE id = ? AND state != ?",
            (DONE, report.answered_at, report.ended_at, report.cause, report.sip_status,
             round(report.talk_seconds, 3), report.keys, result, report.result, claim.attempt_id, DONE))
        if cursor.rowcount == 0:
            return result, "unchanged"
        return result, self._move_customer(claim, report, result, recall_delay)

    def _move_customer(self, claim: Claim, report: CallReport, result: str, recall_delay: float) -> str:
        row = self.db.execute_sql(
            "SELECT c.state, c.mobiles, c.number_index, c.round, c.dead_numbers, c.next_call_at, q.max_recall_count"
            " FROM customer c JOIN queue q ON q.id = c.queue_id WHERE c.id = ?", (claim.customer_id,)).fetchone()
        state, mobiles, index, rnd, dead, next_call, max_recall = row
        if state != CALLING:
            return state  # deleted while in the call: the result stays on the attempt
        on_dnc = self.db.execute_sql("SELECT 1 FROM dnc WHERE queue_id = ? AND ext_id = ?",
                                     (claim.queue_id, claim.ext_id)).fetchone() is not None
        progress = outcome.Progress(tuple(json.loads(mobiles)), index, rnd, frozenset(json.loads(dead)))
        nxt = outcome.next_state(progress, claim.number, result, max_recall_count=max_recall,
                                 recall_delay=recall_delay, on_dnc=on_dnc)
        if nxt.delay is not None:
            next_call = report.ended_at + nxt.delay
        self.db.execute_sql(
            "UPDATE customer SET state = ?, number_index = ?, round = ?, dead_numbers = ?, next_call_at = ?,"
            " last_cause = ?, result = COALESCE(?, result), updated_at = ? WHERE id = ?",
            (nxt.state, nxt.number_index, nxt.round, json.dumps(sorted(nxt.dead_numbers)), next_call,
             report.cause, report.result, report.ended_at, claim.customer_id))
        if result == outcome.CONFIG_ERROR:
            reason = report.stop_reason or (
                f"FreeSWITCH answered {report.cause} for {claim.number}: check the dial string and gateway")
            self.db.execute_sql("UPDATE queue SET state = ?, stop_reason = ?, updated_at = ? WHERE id = ? AND state = ?",
                                (STOPPED, reason, report.ended_at, claim.queue_id, RUNNING))
            log.error("queue %s stopped: %s", claim.queue_code, reason)
        return nxt.state

    def abandon(self, claim: Claim, *, cause: str, now: float, customer_state: str = PENDING,
                stop_reason: str | None = None):
        """Close a claimed attempt that was never dialed (a broken template or sound file).

        The customer goes back to `pending` (due at once, nothing counted) or ends in
        `customer_state` with `cause`; `stop_reason` also stops the queue, loudly."""
        with self.db.atomic():
            self.db.execute_sql(
                "UPDATE attempt SET state = ?, ended_at = ?, hangup_cause = ?, outcome = ? WHERE id = ? AND state != ?",
                (DONE, now, cause[:500], outcome.NOT_DIALED, claim.attempt_id, DONE))
            self.db.execute_sql(
                "UPDATE customer SET state = ?, next_call_at = ?, last_cause = ?, updated_at = ? WHERE id = ? AND state = ?",
                (customer_state, now, cause[:500], now, claim.customer_id, CALLING))
            if stop_reason:
                self.db.execute_sql(
                    "UPDATE queue SET state = ?, stop_reason = ?, updated_at = ? WHERE id = ? AND state = ?",
                    (STOPPED, stop_reason[:1000], now, claim.queue_id, RUNNING))
                log.error("queue %s stopped: %s", claim.queue_code, stop_reason)

    def open_attempts(self) -> list[Claim]:
        """Attempts not closed: calls the store thinks are live (for reconciliation)."""
        rows = self.db.execute_sql(
            "SELECT a.id, a.uuid, a.job_uuid, a.number, c.id, c.ext_id, c.fields, q.id, q.code, q.template,"
            " q.min_recall_duration, a.answered_at FROM attempt a JOIN customer c ON c.id = a.customer_id"
            " JOIN queue q ON q.id = a.queue_id WHERE a.state != ? ORDER BY a.id", (DONE,)).fetchall()
        return [Claim(*row[:6], json.loads(row[6]), *row[7:]) for row in rows]

    def counts(self) -> dict:
        """Customers per state over running and stopped queues (for logs and systemd STATUS)."""
        return dict(self.db.execute_sql(
            "SELECT c.state, COUNT(*) FROM customer c JOIN queue q ON q.id = c.queue_id"
            " WHERE q.state != 'deleted' GROUP BY c.state").fetchall())


class LedgerThread:
    """Runs Ledger methods on one OS thread; callers (greenlets) wait without blocking the loop.

    `mark_answered` and `finish` are gathered while the thread is busy and written
    together in one transaction per trip: at hundreds of calls a second, one trip per
    call is what would keep claims waiting.
    """

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.pool = gevent.threadpool.ThreadPool(1)
        self._answered: list = []
        self._finished: list = []
        self._pending = gevent.event.Event()
        self._writer = gevent.spawn(self._write_loop)

    def __getattr__(self, name):
        method = getattr(self.ledger, name)

        def run(*args, **kwargs):
            return self.pool.apply(method, args, kwargs)
        return run

    def mark_answered(self, attempt_id: int, at: float):
        """Record the answer soon; returns at once."""
        self._answered.append((attempt_id, at))
        self._pending.set()

    def finish(self, claim: Claim, report: CallReport, *, recall_delay: float) -> tuple[str, str]:
        """Ledger.finish, written with whatever else is waiting; returns its result."""
        done = gevent.event.AsyncResult()
        self._finished.append((claim, report, recall_delay, done))
        self._pending.set()
        return done.get()

    def _write_loop(self):
        while True:
            self._pending.wait()
            self._write_pending()

    def _write_pending(self):
        self._pending.clear()
        answered, self._answered = self._answered, []
        finished, self._finished = self._finished, []
        if not (answered or finished):
            return
        try:
            results = self.pool.apply(self.ledger.record_many, (answered, [item[:3] for item in finished]))
        except Exception as e:  # noqa: BLE001 - every waiter must hear of it
            log.exception("writing %d call results failed", len(finished))
            for *_, done in finished:
                done.set_exception(e)
            return
        for (*_, done), result in zip(finished, results):
            done.set(result)

    def close(self):
        self._writer.kill()
        self._write_pending()
        self.pool.apply(self.ledger.db.close)
        self.pool.kill()
