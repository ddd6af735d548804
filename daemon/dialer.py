"""Who to call next and how fast: the dialer's loop.

`Dialer.run()` turns `step(now)` until `stop()`, waiting between turns for the time it
returns, a call's end or the connection's death. A turn keeps the link up (`daemon/link.py`;
after each connect, `daemon/reconcile.py` recovers the calls the store thinks are live), then
claims due customers within the limits (per-queue `concurrent_call`, global channel limit,
CPS token bucket, calling window, daily cap) and gives each claim its own `Call` greenlet.
On stop it drains: no new calls, calls in progress get `drain_timeout` to finish, the rest
are hung up and recorded as interrupted.

While the database is unavailable (`DatabaseOutage`: a claim or a write failed for a reason that
may pass) no customer is claimed; calls in progress go on and the ledger keeps their results
until they can be written. Once those are written (or, with none waiting, a claim lands
again: tried every DB_RECHECK seconds) dialing resumes.

The clock rule: `now` is monotonic (pacing, rechecks, backoff, the watchdog); wall time
(`clock`) is only for the calling window, the day and what is stored.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import gevent
import gevent.event

from daemon import ivr, outcome, reconcile
from daemon.call import Call, CallSettings, Detached
from daemon.config import Config, DialerConfig
from daemon.last_look import UNCONFIRMED, UNREADABLE, LastLook
from daemon.lease import NodeLease
from daemon.ledger import CallReport, Claim, QueueInfo, StoreUnavailable
from daemon.link import Link
from daemon.metrics import DialerMetrics
from daemon.outage import DatabaseOutage
from daemon.pacing import bucket_for
from daemon.playable import TemplateCheck, Unprepared, prepare
from daemon.template_gate import TemplateGate
from daemon.trunks import TrunkPool
from daemon.wallclock import WallClock

log = logging.getLogger("autocall.dialer")
calls_log = logging.getLogger("autocall.calls")

QUEUE_REFRESH = 1.0  # seconds between looks at whether the queues changed (an import, a start: the API)
IDLE_RECHECK = 1.0  # a queue with nobody due is asked again after this long
CLAIM_BATCH = 32  # customers claimed per transaction (one worker-thread trip each)
TRUNK_RECHECK = 0.1  # seconds before asking again when every trunk is full or out of CPS tokens
NO_TRUNK_FREE = "NO_TRUNK_FREE"  # a claim no trunk could take by the time it was dialed (not_dialed)
DB_RECHECK = 1.0  # seconds between claims tried while the database is unavailable and nothing waits
# After a failed claim, its leftovers are looked for twice, UNSURE_RESWEEP seconds apart: a COMMIT
# can still be landing (a standby's acknowledgement) when the database answers again.
UNSURE_SWEEPS, UNSURE_RESWEEP = 2, 5.0
# The loop never waits longer than 30 s by itself, nor on SQLite's (database.busy_timeout, 30 s):
# not coming round for this long means it is stuck (the systemd watchdog asks).
STALL_LIMIT = 90.0


@dataclasses.dataclass
class _Active:
    call: Call
    greenlet: gevent.Greenlet | None = None


class Dialer:
    """The dialing loop. `connect()` returns a connected ESL client (a new one each time);
    `clock` is wall time, `monotonic` the clock of every wait; `outage` is shared with the
    ledger, which keeps its count of writes waiting; `metrics` hears of originates and call ends."""

    def __init__(
        self,
        config: Config,
        ledger,
        templates: ivr.TemplateLoader,
        connect,
        *,
        clock=time.time,
        monotonic=time.monotonic,
        outage: DatabaseOutage | None = None,
        metrics: DialerMetrics | None = None,
    ):
        self.ledger, self.templates, self.monotonic = ledger, templates, monotonic
        self.metrics = metrics or DialerMetrics(config.dialer.node)
        self.wall = WallClock(ledger, clock, monotonic)
        self.clock = self.wall.now  # every wall reading of the daemon's goes through it
        self.outage = outage or DatabaseOutage(monotonic=monotonic, clock=clock)
        self._probe_at = float("-inf")  # monotonic time of the next claim tried in an outage
        self._unsure_sweeps = 0  # sweeps owed since a claim failed: its COMMIT may have landed all the same
        self._sweep_at = float("-inf")  # monotonic time the next of them may run
        self.link = Link(connect, config.esl.heartbeat_timeout)
        self.calls: dict[int, _Active] = {}
        self.per_queue: dict[int, int] = {}
        self.queues: list[QueueInfo] = []
        self._queues_at = float("-inf")
        self._idle_until: dict[int, float] = {}
        self._rr = 0
        self._wake = gevent.event.Event()
        self._stopping = gevent.event.Event()
        self.ready = gevent.event.Event()  # set once connected and reconciled
        self.last_tick = monotonic()  # the loop came round (wedged() reads it)
        self.template_check = TemplateCheck()
        self.gate = TemplateGate(templates, ledger, self.clock)
        self.lease = NodeLease(ledger)
        self.look = LastLook(ledger, self.outage, lambda: self.window.is_open(self.clock()))
        self.trunks: TrunkPool | None = None
        self.apply_config(config)

    # --- settings ---

    def apply_config(self, config: Config):
        """Take the pacing settings of `config` (start-up and SIGHUP)."""
        d: DialerConfig = config.dialer
        self.dialer_config = d
        self.window = config.calling_window()
        self.bucket = bucket_for(d.cps, self.monotonic())
        self.call_settings = CallSettings(
            dial_string=d.dial_string,
            caller_id=d.caller_id,
            originate_timeout=d.originate_timeout,
            max_call_seconds=d.max_call_seconds,
            destinations=dict(d.transfer_destinations),
            caller_ids=config.caller_ids,
        )
        self._apply_trunks(config)
        self._wake.set()

    def _apply_trunks(self, config: Config):
        """Without [[trunks]] every call takes dialer.dial_string, as always; with them, the pool
        (kept across a SIGHUP, so calls in progress stay counted on their trunks)."""
        d, now = config.dialer, self.monotonic()
        if not config.trunks:
            self.trunks = None
        elif self.trunks is None:
            self.trunks = TrunkPool(
                config.trunks,
                config.fallback_trunk(),
                down_after=d.trunk_down_after,
                down_for=d.trunk_down_for,
                now=now,
            )
        else:
            self.trunks.configure(
                config.trunks,
                config.fallback_trunk(),
                down_after=d.trunk_down_after,
                down_for=d.trunk_down_for,
                now=now,
            )

    # --- the loop ---

    def run(self):
        """Dial until stop(), then drain. Raises ConfigError when FreeSWITCH keeps refusing
        the ESL password (link.AUTH_TRIES times in a row): retrying cannot fix that."""
        while not self._stopping.is_set():
            pause = self.step(self.monotonic())
            self._wake.clear()
            waits = [self._wake, self._stopping] + ([self.link.client.dead] if self.link.up else [])
            gevent.wait(waits, count=1, timeout=pause)
        self._drain()

    def step(self, now: float) -> float:
        """One turn at monotonic `now`: if the link is down, one try to connect (and reconcile);
        else start as many calls as the limits allow. Returns the seconds until the next turn
        is due; a call's end comes sooner (run() also waits for it)."""
        self.last_tick = now
        wall = self.clock()
        self.wall.tick(now, wall)
        if not self.link.up:
            return self._connect(now)
        d = self.dialer_config
        self.lease.tick(now, grace=d.lease_grace, recall_delay=d.recall_delay, status=self.describe)
        pause = self._dial_some(now, wall)
        return pause if self.link.up else 0.0  # lost while dialing: reconnect at once

    def describe(self) -> str:
        """One line on what the dialer does now (systemd's STATUS=, `autocall status`)."""
        if self.outage.active:
            return self.outage.describe(self.window.tz)  # the zone `autocall status` shows times in
        if not self.healthy():
            return "FreeSWITCH event socket down or silent; reconnecting"
        calls = f"{len(self.calls)} calls in progress"
        return calls if self.trunks is None else f"{calls}; {self.trunks.describe(self.monotonic())}"

    def stop(self):
        """Stop dialing and drain (SIGTERM). Safe from a signal handler."""
        self._stopping.set()

    def healthy(self, now: float | None = None) -> bool:
        """Connected, reader alive, heartbeats fresh (the systemd watchdog asks)."""
        return self.link.healthy(self.monotonic() if now is None else now)

    def wedged(self, now: float | None = None) -> bool:
        """The loop has not come round for STALL_LIMIT seconds (the systemd watchdog asks).
        Reconnecting to an absent FreeSWITCH comes round at every try: not wedged."""
        if self._stopping.is_set():
            return False  # draining; TimeoutStopSec is the limit now
        now = self.monotonic() if now is None else now
        return now - self.last_tick > STALL_LIMIT

    def _connect(self, now: float) -> float:
        self.ready.clear()
        if self.link.wait(now) == 0:
            self._forget_calls()  # also those a reconciliation cut short had re-attached
            if self.link.open(now, then=lambda client: self._recover(client, now)) is not None:
                self.ready.set()
                return 0.0
        return self.link.wait(now)

    def _forget_calls(self):
        """After a connection loss every Call greenlet detaches; wait for them to go."""
        greenlets = [a.greenlet for a in self.calls.values() if a.greenlet]
        gevent.joinall(greenlets, timeout=5)
        gevent.killall([g for g in greenlets if not g.dead], timeout=5)
        self.calls.clear()
        self.per_queue.clear()
        if self.trunks is not None:
            self.trunks.forget_calls()  # the calls re-attached after reconciliation count again

    def _recover(self, client, now: float):
        """Reconcile the store's live calls with the switch's channels, then ask it about the
        templates' files (start-up and after every reconnect). A database that cannot be read
        raises StoreUnavailable: the link tries again later."""
        try:
            open_attempts = self.ledger.open_attempts()
        except StoreUnavailable as e:
            self.outage.failed(e)
            raise
        reconcile.apply(
            client,
            open_attempts,
            self.clock(),
            follow=self._follow,
            close=lambda claim, report: self._record(claim, report, reattached=True),
            unowned=self.ledger.unowned,
        )
        log.info("reconciled %d open calls with FreeSWITCH; dialing", len(open_attempts))
        # Maybe another switch, or this one restarted: what it could read before says nothing now.
        self.template_check.forget()
        self.template_check.check_all(client, self.templates, now)

    def _follow(self, item: reconcile.Reattach, heard: list):
        claim, client = item.claim, self.link.client
        assert client is not None  # reconciliation runs on the client just connected
        if item.newly_answered:
            self.ledger.mark_answered(claim.attempt_id, item.answered_at)
        try:
            script = prepare(claim, self.templates, self._unplayable)
        except Unprepared as e:
            log.error("call %s: cannot play template %s again (%s); hanging up", claim.uuid, claim.template, e)
            script = None
        call = Call(
            claim,
            client,
            script,
            self.call_settings,
            self.clock,
            monotonic=self.monotonic,
            answered_at=item.answered_at,
            parked=item.parked,
            reattached=True,
            trunks=self.trunks,
            trunk=self.trunks.adopt(claim.number) if self.trunks else None,
        )
        for event in heard:  # what came while reconciliation listed the channels
            call.on_event(event)
        client.subscribe_channel(claim.uuid, call.on_event)
        self._launch(call, originate=False)

    def _unplayable(self, template: ivr.Template) -> list[str]:
        return self.template_check.unplayable(self.link.client, template, self.monotonic())

    # --- dialing ---

    def _dial_some(self, now: float, wall: float) -> float:
        """Start as many calls as the limits allow now; return how long to sleep."""
        if self.outage.active and (self.outage.waiting or now < self._probe_at):
            return DB_RECHECK  # the results that wait land first; then a claim may try
        try:
            if self._unsure_sweeps and now >= self._sweep_at:  # whatever the window: it dials nobody
                if not self._close_unsure_claims():
                    return 0.0  # the event socket went down meanwhile: reconnect (and reconcile) first
                self._unsure_sweeps -= 1
                self._sweep_at = now + UNSURE_RESWEEP
            if not self.window.is_open(wall):
                return min(self.window.next_open(wall) - wall, 30.0)
            return self._claim_some(now, wall)
        except StoreUnavailable as e:
            self.outage.failed(e)
            self._unsure_sweeps, self._sweep_at = UNSURE_SWEEPS, now
            self._probe_at = now + DB_RECHECK
            return DB_RECHECK

    def _close_unsure_claims(self) -> bool:
        """Close the attempts a failed claim may have committed all the same (PostgreSQL's answer
        to a COMMIT lost with its connection): open attempts named for this node that no call of
        ours has (an unnamed one, made before attempts named their node, may be another node's
        live call). Only a call we hold is ever dialed, so those never were; left open they
        would keep their customers `calling`, and their places in concurrent_call, until a
        restart. False, closing nothing, when the event socket went down during the read: the
        calls it detached are open too, and held by nobody until reconciled."""
        client = self.link.client
        open_attempts = self.ledger.open_attempts(named_only=True)
        if not self.link.up or self.link.client is not client:
            return False
        for claim in open_attempts:
            if claim.attempt_id not in self.calls:
                log.warning(
                    "attempt %s (customer %r of %r) was claimed by a claim whose answer was lost; "
                    "never dialed: closed, the customer keeps its place",
                    claim.attempt_id,
                    claim.ext_id,
                    claim.queue_code,
                )
                self.ledger.abandon(claim, cause=UNCONFIRMED, now=self.clock())
        return True

    def _claim_some(self, now: float, wall: float) -> float:
        if now - self._queues_at >= QUEUE_REFRESH:
            queues = self.ledger.changed_running_queues()
            self.queues, self._queues_at = self.queues if queues is None else queues, now
        while len(self.calls) < self.dialer_config.channel_limit and not self._stopping.is_set():
            if not self.window.is_open(wall):  # a claim that waited for the lock took us past its end
                break
            if not self.link.up:  # lost while a claim waited: what we claimed now would only detach
                break
            queue = self._next_queue(now, wall)
            if queue is None:
                break
            if not self.gate.ready(queue):
                self._idle_until[queue.id] = now + IDLE_RECHECK
                continue
            room = min(
                self.dialer_config.channel_limit - len(self.calls),
                queue.concurrent_call - self.per_queue.get(queue.id, 0),
                CLAIM_BATCH,
                CLAIM_BATCH if self.trunks is None else self.trunks.room(now),
            )
            if room <= 0:
                return TRUNK_RECHECK  # every trunk full or out of tokens: a call's end wakes us sooner
            tokens = self.bucket.take_up_to(room, now)
            if not tokens:
                return self.bucket.wait(now)
            asked_at = time.monotonic()
            claims = self.ledger.claim_many(
                queue,
                tokens,
                now=wall,
                day_start=self.window.day_start(wall),
                next_day=self.window.next_day_open(wall),
                daily_cap=self.dialer_config.daily_cap,
                slots=self._free_slots(tokens),
            )
            now, wall = self.monotonic(), self.clock()
            if claims:
                self.outage.landed()  # a claim wrote: the database takes writes again
            if len(claims) < tokens:
                self.bucket.give_back(tokens - len(claims))
                self._idle_until[queue.id] = now + IDLE_RECHECK
            ready, unspeakable = [], None
            for claim in claims:
                try:
                    ready.append((claim, prepare(claim, self.templates, self._unplayable)))
                except Unprepared as e:
                    self._unprepared(claim, e)
                    if e.unspeakable is not None:
                        unspeakable = e.unspeakable
            self._start(ready, asked_at=asked_at)
            if unspeakable is not None:  # counted once the batch's claims are all pending again
                self.gate.stop(queue, unspeakable)
                self.metrics.queue_stopped()
        later = (q.next_due for q in self.queues if q.next_due is not None and q.next_due > wall)
        return min(IDLE_RECHECK, min(later, default=wall + IDLE_RECHECK) - wall)

    def _next_queue(self, now: float, wall: float) -> QueueInfo | None:
        """Round robin over running queues with room and, maybe, someone due; each turn
        takes a batch of at most CLAIM_BATCH, so a large queue cannot starve a small one.
        A queue whose first pending customer was not due when the queues were read is not
        asked (the next read, QUEUE_REFRESH later, sees an import or a start)."""
        count = len(self.queues)
        for step in range(count):
            queue = self.queues[(self._rr + step) % count]
            if (
                queue.next_due is not None
                and queue.next_due <= wall
                and self.per_queue.get(queue.id, 0) < queue.concurrent_call
                and self._idle_until.get(queue.id, 0) <= now
            ):
                self._rr = (self._rr + step + 1) % count
                return queue
        return None

    def _free_slots(self, count: int) -> list[int]:
        """The `count` lowest record slots no call in progress holds: each call's hangup hook
        writes its end into its own slot in the switch, so a slot is reused only after its last
        call is recorded, and the switch never keeps more records than calls ran at once."""
        held = {active.call.claim.slot for active in self.calls.values()}
        free: list[int] = []
        slot = 0
        while len(free) < count:
            if slot not in held:
                free.append(slot)
            slot += 1
        return free

    def _start(self, ready: list[tuple[Claim, ivr.Script]], *, asked_at: float):
        """Call the prepared claims (asked for at `asked_at`, real monotonic time) that the
        store's last look still lets through (daemon/last_look.py); close the others."""
        if not ready:
            return
        wanted, cause, looked_at = self.look.batch([c for c, _ in ready], asked_at=asked_at)
        if cause == UNREADABLE:
            self._probe_at = self.monotonic() + DB_RECHECK
        no_trunk = []
        for claim, script in ready:
            if claim.attempt_id in wanted:
                trunk = self.trunks.acquire(claim.number, self.monotonic()) if self.trunks else None
                if self.trunks is not None and trunk is None:
                    no_trunk.append(claim)  # another call's failover took the last channel meanwhile
                    continue
                call = Call(
                    claim,
                    self.link.client,
                    script,
                    self.call_settings,
                    self.clock,
                    monotonic=self.monotonic,
                    trunks=self.trunks,
                    trunk=trunk,
                )
                self._launch(call, originate=True, looked_at=looked_at)
        for claim in no_trunk:
            self.ledger.abandon(claim, cause=NO_TRUNK_FREE, now=self.clock())
        withdrawn = [claim for claim, _ in ready if claim.attempt_id not in wanted]
        if withdrawn:
            self.bucket.give_back(len(withdrawn))
            log.info("%d claimed customers of %r not dialed: %s", len(withdrawn), withdrawn[0].queue_code, cause)
        for claim in withdrawn:  # after the launches: their originates go while these are written
            self.ledger.abandon(claim, cause=cause, now=self.clock())

    def _unprepared(self, claim: Claim, e: Unprepared):
        """Close the claim that cannot be called (the customer keeps its place)."""
        self.ledger.abandon(claim, cause=e.cause, now=self.clock(), stop_reason=e.stop_reason)
        if e.stop_reason:
            self.metrics.queue_stopped()
        if e.wait_reason:
            self.ledger.set_waiting(claim.queue_id, claim.queue_code, e.wait_reason, now=self.clock())
        if e.unspeakable:
            calls_log.warning("customer %r of %r not called: %s", claim.ext_id, claim.queue_code, e)

    def _launch(self, call: Call, *, originate: bool, looked_at: float | None = None):
        active = _Active(call)
        self.calls[call.claim.attempt_id] = active
        self.per_queue[call.claim.queue_id] = self.per_queue.get(call.claim.queue_id, 0) + 1
        active.greenlet = gevent.spawn(self._call_main, call, originate, looked_at)

    def _call_main(self, call: Call, originate: bool, looked_at: float | None = None):
        claim = call.claim
        report = None
        try:
            if not self._withdrawn_late(claim, looked_at):
                if originate:
                    self.metrics.originated()
                report = call.run(
                    originate=originate,
                    on_answer=lambda at: self.ledger.mark_answered(claim.attempt_id, at),
                    on_step=lambda step, result: self.ledger.mark_step(claim.attempt_id, step, result),
                    may_dial=lambda: self.look.late(claim, looked_at=0.0),  # 0: long ago, so it reads
                )
                if call.hangup_event is not None:
                    self.metrics.hangup_heard(call.hangup_event, time.time())
        except Detached as e:
            log.info("call %s detached (%s); it is reconciled after reconnect", claim.uuid, e)
        except Exception:
            log.exception("call %s failed in the dialer; hanging it up", claim.uuid)
            if call.end_after_error():
                report = CallReport(call.answered_at, self.clock(), 0.0, "AUTOCALL_ERROR", interrupted=True)
        try:
            if report is not None:
                self._record(claim, report)
        finally:
            # The slot is freed once the customer's next state is written, so the wake-up
            # below already finds its next number due.
            active = self.calls.get(claim.attempt_id)
            if active is not None and active.call is call:
                del self.calls[claim.attempt_id]
                self.per_queue[claim.queue_id] -= 1
                if call.trunks is not None and call.trunk is not None:
                    call.trunks.release(call.trunk.name)
            self._idle_until.pop(claim.queue_id, None)
            self._wake.set()

    def _withdrawn_late(self, claim: Claim, looked_at: float | None) -> bool:
        """Whether the call may no longer be dialed (the third look): then its claim is closed
        here. The originate goes right after this returns False, with no wait between."""
        cause = self.look.late(claim, looked_at)
        if cause is None:
            return False
        log.info("call %s (customer %r of %r) not dialed: %s", claim.uuid, claim.ext_id, claim.queue_code, cause)
        self.ledger.abandon(claim, cause=cause, now=self.clock())
        return True

    def _record(self, claim: Claim, report: CallReport, reattached: bool = False):
        if report.cause == "FILE_NOT_FOUND":  # the switch said otherwise than file_exists did: ask again
            self.template_check.forget(claim.template)
        retry_when = outcome.retry_when_of(claim.retry_when)
        self.metrics.call_ended(report.cause, outcome.of_report(report, claim.min_talk, retry_when))
        d = self.dialer_config
        written = self.ledger.finish(claim, report, recall_delay=d.recall_delay, recall_delays=dict(d.recall_delays))
        result, state = written or ("-", "- (waits for the database)")
        calls_log.info(
            "call queue=%r customer=%r number=%r uuid=%s cause=%s sip=%s talk=%.1fs keys=%s result=%s "
            "outcome=%s customer_state=%s%s",
            claim.queue_code,
            claim.ext_id,
            claim.number,
            claim.uuid,
            report.cause,
            report.sip_status or "-",
            report.talk_seconds,
            report.keys or "-",
            report.result or "-",
            result,
            state,
            " (reconciled)" if reattached else "",
        )

    # --- draining ---

    def _drain(self):
        if self.calls:
            log.info(
                "stopping: no new calls; waiting up to %.0fs for %d calls in progress",
                self.dialer_config.drain_timeout,
                len(self.calls),
            )
        gevent.joinall([a.greenlet for a in self.calls.values()], timeout=self.dialer_config.drain_timeout)
        left = list(self.calls.values())
        if left:
            log.warning("stopping: hanging up %d calls still in progress", len(left))
            for active in left:
                try:
                    active.call.interrupt()
                except Detached:
                    pass
            gevent.joinall([a.greenlet for a in left], timeout=self.call_settings.hangup_grace + 2)
        self.link.close()
