"""The dialer's transactions, run where a write lock held by the API cannot freeze a call.

`Ledger` opens one short IMMEDIATE transaction per call of it and does the work with the
store's functions (`daemon.store.customers`, `daemon.store.reports`). `LedgerThread` runs
those on one worker thread, so a lock held by the API process stalls that thread, never the
gevent loop that carries every call's audio commands; answers and call results that arrive
while it is busy are written together in one transaction.
"""

from __future__ import annotations

import logging

import gevent.event
import gevent.threadpool
import peewee as pw

from daemon.store import customers, reports, schedule
from daemon.store.records import CallReport, Claim, QueueInfo
from daemon.store.states import PENDING

__all__ = ["CallReport", "Claim", "Ledger", "LedgerThread", "QueueInfo"]

log = logging.getLogger("autocall.ledger")


class Ledger:
    """The daemon's transactions on `db`, a database from store.schema.open_database, as the
    dialer `node` (None: the one dialer of its database)."""

    def __init__(self, db: pw.Database, node: str | None = None):
        self.db = db
        self.node = node

    def running_queues(self) -> list[QueueInfo]:
        return reports.running_queues(self.db)

    def claim(self, queue: QueueInfo, *, now: float, day_start: float, next_day: float, daily_cap: int) -> Claim | None:
        """The queue's next due customer taken into a call, or None (see claim_many)."""
        claims = self.claim_many(queue, 1, now=now, day_start=day_start, next_day=next_day, daily_cap=daily_cap)
        return claims[0] if claims else None

    def claim_many(
        self, queue: QueueInfo, limit: int, *, now: float, day_start: float, next_day: float, daily_cap: int
    ) -> list[Claim]:
        """customers.claim_many in one transaction: a stop or DNC committed before it is honoured."""
        with self.db.atomic():
            return customers.claim_many(
                self.db,
                queue,
                limit,
                now=now,
                day_start=day_start,
                next_day=next_day,
                daily_cap=daily_cap,
                node=self.node,
            )

    def mark_answered(self, attempt_id: int, at: float):
        with self.db.atomic():
            customers.mark_answered(self.db, attempt_id, at)

    def record_many(self, answered: list, finished: list) -> list[tuple[str, str]]:
        """mark_answered for each (attempt_id, at) and finish for each (claim, report,
        recall_delay), in one transaction; returns finish's results in order."""
        with self.db.atomic():
            for attempt_id, at in answered:
                customers.mark_answered(self.db, attempt_id, at)
            return [customers.finish(self.db, claim, report, recall_delay=delay) for claim, report, delay in finished]

    def finish(self, claim: Claim, report: CallReport, *, recall_delay: float) -> tuple[str, str]:
        """customers.finish in one transaction: (attempt outcome, customer state)."""
        with self.db.atomic():
            return customers.finish(self.db, claim, report, recall_delay=recall_delay)

    def abandon(
        self, claim: Claim, *, cause: str, now: float, customer_state: str = PENDING, stop_reason: str | None = None
    ):
        """customers.abandon in one transaction: close an attempt that was never dialed."""
        with self.db.atomic():
            customers.abandon(
                self.db, claim, cause=cause, now=now, customer_state=customer_state, stop_reason=stop_reason
            )

    def follow_wall_step(self, *, expected: float, jump: float, wall: float) -> int:
        """schedule.follow_wall_step in one transaction."""
        with self.db.atomic():
            return schedule.follow_wall_step(self.db, expected=expected, jump=jump, wall=wall)

    def open_attempts(self) -> list[Claim]:
        """The calls this node left open (every open call when it has no name)."""
        return reports.open_attempts(self.db, self.node)

    def counts(self) -> dict:
        return reports.state_totals(self.db)


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

    def follow_wall_step(self, *, expected: float, jump: float, wall: float) -> int:
        """Ledger.follow_wall_step, after the results read before the step (their times are
        of the old reckoning, which the step moves)."""
        self._write_pending()
        return self.pool.apply(self.ledger.follow_wall_step, (), {"expected": expected, "jump": jump, "wall": wall})

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
