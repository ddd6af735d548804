"""The dialer's transactions, run where a write lock held by the API cannot freeze a call.

`Ledger` opens one short IMMEDIATE transaction per call of it and does the work with the
store's functions (`daemon.store.customers`, `daemon.store.reports`); SQLite's operational
errors come out as `StoreUnavailable` (`StoreBusy` for a lock held past the busy timeout).
`LedgerThread` runs those on one worker thread, so a lock held by the API process stalls that
thread, never the gevent loop that carries every call's audio commands. Its writes (answers,
call results, abandoned claims) are queued in order and written together, one transaction
per trip; while the database is unavailable they stay queued and are tried again until they
land, in order (docs/daemon.md, "The database unavailable").
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

import gevent
import gevent.event
import gevent.threadpool
import peewee as pw

from daemon.outage import DatabaseOutage
from daemon.store import customers, nodes, outbox, queue_state, reports, schedule
from daemon.store.records import CallReport, Claim, QueueInfo
from daemon.store.schema import StoreBusy, StoreUnavailable, dialect_of, store_error
from daemon.store.states import PENDING

__all__ = ["CallReport", "Claim", "Ledger", "LedgerThread", "QueueInfo", "StoreUnavailable"]

log = logging.getLogger("autocall.ledger")

RETRY_FIRST, RETRY_MAX = 0.25, 2.0  # seconds between tries of a write the database refused
# An IVR step, which nobody waits for, rides with the next write someone waits for (a call's
# result, a claim withdrawn) or goes by itself after this many seconds. At a few calls a second
# that saves most of a call's transactions; a daemon killed in that second replays one step when
# it re-attaches the call (docs/daemon.md, "The resume rule").
LAZY_WRITE = 1.0
# However still the store looks (Dialect.change_token), the running queues are read again this
# often: a change the token cannot see (a PostgreSQL restore run with triggers off) is picked
# up within this many seconds, not at the next restart.
QUEUES_REREAD = 60.0
# What `write_many` may run: the dialer's transitions that record what happened.
WRITES: dict[str, Callable] = {
    "mark_answered": customers.mark_answered,
    "finish": customers.finish,
    "abandon": customers.abandon,
    "mark_step": customers.mark_step,
    "follow_wall_step": schedule.follow_wall_step,
    "bring_due_down": schedule.bring_due_down,
    "beat": nodes.beat,
}


class Ledger:
    """The daemon's transactions on `db`, a database from store.schema.open_database, as the
    dialer `node` (None: the one dialer of its database)."""

    def __init__(self, db: pw.Database, node: str | None = None):
        self.db = db
        self.node = node
        self._queues_token: object = None  # the store's change token when the queues were last read
        self._queues_read_at = -QUEUES_REREAD  # and when, by `clock`
        self.clock = time.monotonic

    @contextlib.contextmanager
    def _sqlite(self, transaction: bool = True):
        """Run the block (in one transaction), SQLite's operational errors raised as
        StoreUnavailable. After any but a lock the connection is closed, so the next use opens
        the file afresh: SQLite keeps a connection that found the file read-only read-only."""
        try:
            with self.db.atomic() if transaction else contextlib.nullcontext():
                yield
        except pw.OperationalError as e:
            error = store_error(e, f"database {self.db.database}")
            if not isinstance(error, StoreBusy):
                with contextlib.suppress(pw.DatabaseError):
                    self.db.close()
            raise error from None

    def running_queues(self) -> list[QueueInfo]:
        with self._sqlite(transaction=False):
            return reports.running_queues(self.db)

    def changed_running_queues(self) -> list[QueueInfo] | None:
        """The running queues, or None when nothing that changes them was committed since this
        ledger last read them (Dialect.change_token): 3,000 idle queues are then not read again
        every second; they are read again after QUEUES_REREAD seconds whatever the token says."""
        with self._sqlite(transaction=False):
            token = dialect_of(self.db).change_token(self.db)  # before the read: a write after it is seen next time
            now = self.clock()
            if token is not None and token == self._queues_token and now - self._queues_read_at < QUEUES_REREAD:
                return None
            queues = reports.running_queues(self.db)
            self._queues_token, self._queues_read_at = token, now  # only once read: a failed read is tried again
            return queues

    def claim(self, queue: QueueInfo, *, now: float, day_start: float, next_day: float, daily_cap: int) -> Claim | None:
        """The queue's next due customer taken into a call, or None (see claim_many)."""
        claims = self.claim_many(queue, 1, now=now, day_start=day_start, next_day=next_day, daily_cap=daily_cap)
        return claims[0] if claims else None

    def claim_many(
        self,
        queue: QueueInfo,
        limit: int,
        *,
        now: float,
        day_start: float,
        next_day: float,
        daily_cap: int,
        slots: list[int] | None = None,
    ) -> list[Claim]:
        """customers.claim_many in one transaction: a stop or DNC committed before it is honoured."""
        with self._sqlite():
            return customers.claim_many(
                self.db,
                queue,
                limit,
                now=now,
                day_start=day_start,
                next_day=next_day,
                daily_cap=daily_cap,
                slots=slots,
                node=self.node,
            )

    def still_to_dial(self, claims: list[Claim]) -> set[int]:
        """customers.still_to_dial: which of a claimed batch may be dialed now."""
        with self._sqlite(transaction=False):
            return customers.still_to_dial(self.db, claims)

    def mark_answered(self, attempt_id: int, at: float):
        with self._sqlite():
            customers.mark_answered(self.db, attempt_id, at)

    def mark_step(self, attempt_id: int, step: str, result: str | None):
        with self._sqlite():
            customers.mark_step(self.db, attempt_id, step, result)

    def write_many(self, writes: list[tuple[str, tuple, dict]]) -> list:
        """Each (name, args, kwargs) of WRITES, in order, in one transaction; their results in order."""
        with self._sqlite():
            dialect = dialect_of(self.db)
            beats = dialect.every_commit_moves_token and all(name == "beat" for name, _, _ in writes)
            before = dialect.change_token(self.db) if beats else None
            results = [WRITES[name](self.db, *args, **kwargs) for name, args, kwargs in writes]
            if beats and before == self._queues_token and not any(results):
                # Heartbeats that took over nobody's calls: nothing the queues show changed, so
                # the token moves on with them, taken before the commit, so that another
                # connection's commit after it is still seen.
                self._queues_token = dialect.change_token(self.db)
            return results

    def finish(self, claim: Claim, report: CallReport, *, recall_delay: float, recall_delays=None) -> tuple[str, str]:
        """customers.finish in one transaction: (attempt outcome, customer state)."""
        with self._sqlite():
            return customers.finish(self.db, claim, report, recall_delay=recall_delay, recall_delays=recall_delays)

    def abandon(
        self, claim: Claim, *, cause: str, now: float, customer_state: str = PENDING, stop_reason: str | None = None
    ):
        """customers.abandon in one transaction: close an attempt that was never dialed."""
        with self._sqlite():
            customers.abandon(
                self.db, claim, cause=cause, now=now, customer_state=customer_state, stop_reason=stop_reason
            )

    def follow_wall_step(self, *, expected: float, jump: float, wall: float) -> int:
        """schedule.follow_wall_step in one transaction."""
        with self._sqlite():
            return schedule.follow_wall_step(self.db, expected=expected, jump=jump, wall=wall)

    def bring_due_down(self, *, wall: float, jump: float = 0.0) -> int:
        """schedule.bring_due_down in one transaction."""
        with self._sqlite():
            return schedule.bring_due_down(self.db, wall=wall, jump=jump)

    def beat(self, *, grace: float, recall_delay: float, status: str | None = None) -> dict[str, int]:
        """nodes.beat for this node, in one transaction (nothing for the one dialer with no name)."""
        if self.node is None:
            return {}
        with self._sqlite():
            return nodes.beat(self.db, self.node, grace=grace, recall_delay=recall_delay, status=status)

    def set_waiting(self, queue_id: int, code: str, reason: str | None, *, now: float):
        """queue_state.set_waiting in one transaction: why the running queue is held back (None: it is not)."""
        with self._sqlite():
            queue_state.set_waiting(self.db, queue_id, code, reason, now=now)

    def tally_pending(self, queue_id: int, check):
        """`check.tally` (an ivr.FieldCheck, `template.speakable`) over the queue's pending customers: read and
        counted here, off the loop that carries the calls."""
        with self._sqlite(transaction=False):
            return check.tally(reports.pending_fields(self.db, queue_id))

    def stop_queue(self, queue_id: int, code: str, reason: str, *, now: float):
        """queue_state.stop_by_dialer in one transaction."""
        with self._sqlite():
            queue_state.stop_by_dialer(self.db, queue_id, code, reason, now=now)

    def open_attempts(self, *, named_only: bool = False) -> list[Claim]:
        """The calls this node left open (every open call when it has no name); `named_only`
        leaves out those made before attempts named their node (any node may follow those)."""
        with self._sqlite(transaction=False):
            return reports.open_attempts(self.db, self.node, with_unnamed=not named_only)

    def unowned(self, uuids: list[str]) -> set[str]:
        """reports.unowned: the channels of `uuids` no open attempt of any node has."""
        with self._sqlite(transaction=False):
            return reports.unowned(self.db, uuids)

    def backlog(self) -> outbox.Backlog:
        """outbox.backlog: the webhooks' deliveries waiting, failing, dead (the metrics read it)."""
        with self._sqlite(transaction=False):
            return outbox.backlog(self.db)

    def counts(self) -> dict:
        with self._sqlite(transaction=False):
            return reports.state_totals(self.db)


@dataclasses.dataclass
class _Write:
    name: str  # a key of WRITES
    args: tuple
    kwargs: dict
    closes: int | None = None  # the attempt it closes (finish, abandon)
    done: gevent.event.AsyncResult = dataclasses.field(default_factory=gevent.event.AsyncResult)


class LedgerThread:
    """Runs Ledger methods on one OS thread; callers (greenlets) wait without blocking the loop.

    `mark_answered`, `mark_step`, `finish` and `abandon` are queued and written together in one
    transaction per trip: at hundreds of calls a second, one trip per call is what would keep
    claims waiting. A caller of `finish` or `abandon` waits until its write landed, or, while
    the database is unavailable (`outage`), only until it is safely queued: then `finish`
    returns None and the write lands later, in order, however long the outage lasts. Nobody
    waits for an IVR step: it waits for the next trip, at most `LAZY_WRITE` seconds.
    """

    def __init__(
        self, ledger: Ledger, outage: DatabaseOutage | None = None, *, sleep=gevent.sleep, on_write=lambda seconds: None
    ):
        self.ledger = ledger
        self.on_write = on_write  # hears how long each write transaction that committed took
        self.outage = outage or DatabaseOutage()
        self.sleep = sleep
        self.pool = gevent.threadpool.ThreadPool(1)
        self._queue: list[_Write] = []  # not yet written, in arrival order
        self._pending = gevent.event.Event()
        self._empty = gevent.event.Event()
        self._empty.set()
        self._lazy: gevent.Greenlet | None = None  # the timer that sends lazy writes by themselves
        self._writer = gevent.spawn(self._write_loop)

    def __getattr__(self, name):
        method = getattr(self.ledger, name)

        def run(*args, **kwargs):
            return self._run(method, *args, **kwargs)

        return run

    def _run(self, fn, *args, **kwargs):
        """`fn` on the ledger thread; what it raises is raised here (gevent's pool would also
        print every exception, the weather of an outage included, as a crash)."""
        value, error = self.pool.apply(_capture, (fn, args, kwargs))
        if error is not None:
            raise error
        return value

    def mark_answered(self, attempt_id: int, at: float):
        """Record the answer soon (`autocall status` and a node taking over read it); returns at once."""
        self._put(_Write("mark_answered", (attempt_id, at), {}))

    def mark_step(self, attempt_id: int, step: str, result: str | None):
        """Record the IVR step within LAZY_WRITE seconds, at once when it carries a result (a
        daemon killed then must not lose `promise_to_pay`); returns at once."""
        self._put(_Write("mark_step", (attempt_id, step, result), {}), lazy=result is None)

    def finish(
        self, claim: Claim, report: CallReport, *, recall_delay: float, recall_delays=None
    ) -> tuple[str, str] | None:
        """Ledger.finish, written with whatever else is waiting: its result, or None when the
        database is unavailable and the write waits in memory."""
        kwargs = {"recall_delay": recall_delay, "recall_delays": recall_delays}
        return self._put(_Write("finish", (claim, report), kwargs, claim.attempt_id)).get()

    def abandon(self, claim: Claim, **kwargs):
        """Ledger.abandon, queued with the other writes (returns as finish does)."""
        self._put(_Write("abandon", (claim,), kwargs, claim.attempt_id)).get()

    def open_attempts(self, *, named_only: bool = False) -> list[Claim]:
        """Ledger.open_attempts as the writes waiting in memory will leave them: less the attempts
        they close (over, whatever the file says until the write lands), with the answer and the
        IVR step they record (a re-attached call resumes at its last step)."""

        def unwritten():  # on the ledger thread, so no batch lands between the read and the filter
            claims, waiting = self.ledger.open_attempts(named_only=named_only), list(self._queue)
            closing = {w.closes for w in waiting}
            answered = {w.args[0]: w.args[1] for w in waiting if w.name == "mark_answered"}
            steps = {w.args[0]: w.args[1:] for w in waiting if w.name == "mark_step"}
            return [_with_waiting(c, answered, steps) for c in claims if c.attempt_id not in closing]

        return self._run(unwritten)

    def _put(self, write: _Write, lazy: bool = False) -> gevent.event.AsyncResult:
        self._queue.append(write)
        self.outage.waiting = len(self._queue)
        self._empty.clear()
        if not lazy:
            self._pending.set()
        elif self._lazy is None:
            self._lazy = gevent.spawn_later(LAZY_WRITE, self._pending.set)
        if self.outage.active:
            write.done.set(None)  # nobody waits out an outage: the write lands when it ends
        return write.done

    def follow_wall_step(self, *, expected: float, jump: float, wall: float) -> int | None:
        """Ledger.follow_wall_step, queued behind the results read before the step (their times
        are of the old reckoning, which the step moves); returns as finish does."""
        write = _Write("follow_wall_step", (), {"expected": expected, "jump": jump, "wall": wall})
        return self._put(write).get()

    def bring_due_down(self, *, wall: float, jump: float = 0.0) -> int | None:
        """Ledger.bring_due_down, queued with the other writes; returns as finish does."""
        return self._put(_Write("bring_due_down", (), {"wall": wall, "jump": jump})).get()

    def beat(self, *, grace: float, recall_delay: float, status: str | None = None) -> dict[str, int] | None:
        """Ledger.beat, queued with the other writes; returns as finish does."""
        if self.ledger.node is None:
            return {}
        write = _Write("beat", (self.ledger.node,), {"grace": grace, "recall_delay": recall_delay, "status": status})
        return self._put(write).get()

    def _write_loop(self):
        delay, solo = RETRY_FIRST, 0
        while True:
            self._pending.wait()
            self._pending.clear()
            if self._lazy is not None:  # this trip takes the lazy writes too
                self._lazy.kill(block=False)
                self._lazy = None
            while self._queue:
                batch = self._queue[:1] if solo else list(self._queue)
                started = time.monotonic()
                try:
                    results = self._run(self.ledger.write_many, [(w.name, w.args, w.kwargs) for w in batch])
                except StoreUnavailable as e:
                    self.outage.failed(e)
                    for write in batch:
                        if not write.done.ready():
                            write.done.set(None)
                    self.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                except Exception as e:  # noqa: BLE001 - a bug: its waiter must hear of it
                    if len(batch) > 1:  # write them one by one, so only the bad one fails
                        solo = len(batch)
                        continue
                    log.exception("writing %s of attempt %s failed", batch[0].name, batch[0].closes)
                    self._settle(batch, [e])
                    solo = max(0, solo - 1)
                    continue
                self.on_write(time.monotonic() - started)
                delay, solo = RETRY_FIRST, max(0, solo - 1)
                self.outage.landed(self._settle(batch, results))

    def _settle(self, batch: list[_Write], results: list) -> int:
        """Take `batch` off the queue and tell its waiters; returns how many had stopped waiting
        (their writes waited out an outage in memory)."""
        del self._queue[: len(batch)]  # only ever appended to meanwhile
        self.outage.waiting = len(self._queue)
        if not self._queue:
            self._empty.set()
        waited = 0
        for write, result in zip(batch, results):
            if write.done.ready():
                waited += 1
            elif isinstance(result, Exception):
                write.done.set_exception(result)
            else:
                write.done.set(result)
        return waited

    def close(self, timeout: float = 10.0) -> int:
        """Write what waits (giving an unavailable database up to `timeout` seconds), then close
        the database. Returns how many writes were left unwritten."""
        self._pending.set()  # lazy writes too, now
        self._empty.wait(timeout)
        self._writer.kill()
        left = len(self._queue)
        self.pool.apply(self.ledger.db.close)
        self.pool.kill()
        return left


def _with_waiting(claim: Claim, answered: dict, steps: dict) -> Claim:
    changes: dict = {}
    if claim.answered_at is None and claim.attempt_id in answered:
        changes["answered_at"] = answered[claim.attempt_id]
    if claim.attempt_id in steps:
        step, result = steps[claim.attempt_id]
        changes.update(step=step, result=result if result is not None else claim.result)
    return dataclasses.replace(claim, **changes) if changes else claim


def _capture(fn, args, kwargs):
    try:
        return fn(*args, **kwargs), None
    except Exception as e:  # noqa: BLE001 - handed to the caller, who raises it
        return None, e
