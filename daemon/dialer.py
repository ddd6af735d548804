"""Who to call next, how fast, and keeping the FreeSWITCH connection: the dialer's loop.

`Dialer.run()` loops until `stop()`: keep one ESL connection (reconnect with backoff,
reconcile every call the store thinks is live), claim due customers within the limits
(per-queue `concurrent_call`, global channel limit, CPS token bucket, calling window,
daily cap), give each claim its own `Call` greenlet, and record how each call ended.
On stop it drains: no new calls, calls in progress get `drain_timeout` to finish, the
rest are hung up and recorded as interrupted.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import gevent
import gevent.event

from daemon import esl as esl_mod
from daemon import ivr
from daemon.call import Call, CallSettings, Detached
from daemon.config import Config, DialerConfig
from daemon.errors import ConfigError
from daemon.ledger import CallReport, Claim, QueueInfo
from daemon.pacing import CallingWindow, bucket_for
from daemon.playable import SwitchFiles

log = logging.getLogger(__name__)
calls_log = logging.getLogger("autocall.calls")

QUEUE_REFRESH = 1.0     # seconds between looks at which queues run (the API changes them)
IDLE_RECHECK = 1.0      # a queue with nobody due is asked again after this long
CLAIM_BATCH = 32        # customers claimed per transaction (one worker-thread trip each)
LOST = "CALL_LOST"      # cause recorded when the dialer lost a call FreeSWITCH no longer has
# The loop never waits longer than 30 s by itself, nor on SQLite's busy timeout (30 s):
# not coming round for this long means it is stuck (the systemd watchdog asks).
STALL_LIMIT = 90.0
AUTH_TRIES = 3          # refusals of the ESL password in a row before it counts as configuration
UNPLAYABLE_RECHECK = 5.0  # seconds before the switch is asked again about a template it could not play


@dataclasses.dataclass
class _Active:
    call: Call
    greenlet: gevent.Greenlet | None = None


class Dialer:
    """The dialing loop. `connect()` returns a connected ESL client (a new one each time)."""

    def __init__(self, config: Config, ledger, templates: ivr.TemplateLoader, connect, *, clock=time.time):
        self.ledger, self.templates, self.connect, self.clock = ledger, templates, connect, clock
        self.esl = None
        self.calls: dict[int, _Active] = {}
        self.per_queue: dict[int, int] = {}
        self.queues: list[QueueInfo] = []
        self._queues_at = float("-inf")
        self._idle_until: dict[int, float] = {}
        self._rr = 0
        self._wake = gevent.event.Event()
        self._stopping = gevent.event.Event()
        self.ready = gevent.event.Event()     # set once connected and reconciled
        self.last_tick = time.monotonic()     # the loop came round (wedged() reads it)
        self.switch_files = SwitchFiles()
        self._switch_verdicts: dict[str, tuple] = {}  # template name -> (Template, files it cannot play, when)
        self.apply_config(config)

    # --- settings ---

    def apply_config(self, config: Config):
        """Take the pacing settings of `config` (start-up and SIGHUP)."""
        d: DialerConfig = config.dialer
        self.dialer_config = d
        self.heartbeat_timeout = config.esl.heartbeat_timeout
        self.window = CallingWindow(d.window_start, d.window_end, config.tz)
        self.bucket = bucket_for(d.cps, self.clock())
        self.call_settings = CallSettings(
            dial_string=d.dial_string, caller_id=d.caller_id, originate_timeout=d.originate_timeout,
            max_call_seconds=d.max_call_seconds, destinations=dict(d.transfer_destinations))
        self._wake.set()

    # --- the loop ---

    def run(self):
        """Dial until stop(), then drain. Raises ConfigError when FreeSWITCH keeps refusing
        the ESL password (AUTH_TRIES times in a row): retrying cannot fix that."""
        while not self._stopping.is_set():
            self.last_tick = time.monotonic()
            if self.esl is None or self.esl.dead.is_set():
                self._reconnect()
                continue
            pause = self._dial_some()
            self._wake.clear()
            gevent.wait([self._wake, self._stopping, self.esl.dead], count=1, timeout=pause)
        self._drain()

    def stop(self):
        """Stop dialing and drain (SIGTERM). Safe from a signal handler."""
        self._stopping.set()

    def healthy(self) -> bool:
        """Connected, reader alive, heartbeats fresh (the systemd watchdog asks)."""
        esl = self.esl
        if esl is None or not esl.is_alive() or esl.last_heartbeat is None:
            return False
        return time.monotonic() - esl.last_heartbeat < self.heartbeat_timeout

    def wedged(self, now: float | None = None) -> bool:
        """The loop has not come round for STALL_LIMIT seconds (the systemd watchdog asks).
        Reconnecting to an absent FreeSWITCH comes round at every try: not wedged."""
        if self._stopping.is_set():
            return False  # draining; TimeoutStopSec is the limit now
        now = time.monotonic() if now is None else now
        return now - self.last_tick > STALL_LIMIT

    def _reconnect(self):
        self.ready.clear()
        backoff = 0.5
        refusals = 0
        while not self._stopping.is_set():
            self.last_tick = time.monotonic()
            self._forget_calls()  # also those a reconciliation cut short had re-attached
            try:
                self.esl = self.connect()
                self._reconcile()
                # Maybe another switch, or this one restarted: what it could read before says nothing now.
                self.switch_files, self._switch_verdicts = SwitchFiles(), {}
                self._check_templates()
                self.ready.set()
                return
            except esl_mod.ESLAuthError as e:
                refusals += 1
                if refusals >= AUTH_TRIES:
                    raise ConfigError(f"esl.password: FreeSWITCH refused it {refusals} times in a row; set "
                                      "esl.password (AUTOCALL_ESL_PASSWORD) to the password in "
                                      "event_socket.conf.xml") from None
                log.error("%s: check esl.password / AUTOCALL_ESL_PASSWORD; retrying in %.1fs", e, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except (esl_mod.ESLError, OSError) as e:
                log.warning("FreeSWITCH not reachable (%s); no calls until it is; retrying in %.1fs", e, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _forget_calls(self):
        """After a connection loss every Call greenlet detaches; wait for them to go."""
        greenlets = [a.greenlet for a in self.calls.values() if a.greenlet]
        gevent.joinall(greenlets, timeout=5)
        gevent.killall([g for g in greenlets if not g.dead], timeout=5)
        self.calls.clear()
        self.per_queue.clear()

    # --- reconciliation: the store's live calls against FreeSWITCH's channels ---

    def _reconcile(self):
        """Re-attach every call the store thinks is live and FreeSWITCH still has; close the
        others as lost (the customer is recalled after the recall delay). Runs at start-up
        and after every reconnect, so a crash loses nobody and double-dials nobody."""
        claims = self.ledger.open_attempts()
        if not claims:
            return
        calls = {}
        for claim in claims:
            call = Call(claim, self.esl, None, self.call_settings, self.clock)
            self.esl.subscribe_channel(claim.uuid, call.on_event)  # before listing: no event is missed
            calls[claim.attempt_id] = call
        live = channel_rows(self.esl.api("show channels as json"))
        now = self.clock()
        for claim in claims:
            call = calls[claim.attempt_id]
            row = live.get(claim.uuid)
            if row is None and not call.ended.is_set():
                self.esl.unsubscribe_channel(claim.uuid)
                report = CallReport(claim.answered_at, now, 0.0, LOST, interrupted=True)
                self._record(claim, report, reattached=True)
                continue
            row = row or {}  # gone meanwhile: its hangup event is already in
            if row.get("application"):
                call.parked.set()  # an application runs (park, or one of ours): the originate completed
            state = row.get("callstate", "")
            if state == "ACTIVE" and call.answered_at is None:
                call.answered_at = now
                self.ledger.mark_answered(claim.attempt_id, now)
            call.script = self._script_or_none(claim)
            log.info("re-attached call %s (customer %s of %s, %s)", claim.uuid, claim.ext_id, claim.queue_code, state)
            self._launch(call, originate=False)

    def _script_or_none(self, claim: Claim):
        try:
            return self.templates.get(claim.template).render(claim.fields)
        except ivr.TemplateError as e:
            log.error("call %s: cannot render template %s again: %s; hanging up", claim.uuid, claim.template, e)
            return None

    # --- dialing ---

    def _dial_some(self) -> float:
        """Start as many calls as the limits allow now; return how long to sleep."""
        now = self.clock()
        if not self.window.is_open(now):
            return min(self.window.next_open(now) - now, 30.0)
        if now - self._queues_at >= QUEUE_REFRESH:
            self.queues, self._queues_at = self.ledger.running_queues(), now
        while len(self.calls) < self.dialer_config.channel_limit and not self._stopping.is_set():
            queue = self._next_queue(now)
            if queue is None:
                break
            room = min(self.dialer_config.channel_limit - len(self.calls),
                       queue.concurrent_call - self.per_queue.get(queue.id, 0), CLAIM_BATCH)
            tokens = self.bucket.take_up_to(room, now)
            if not tokens:
                return self.bucket.wait(now)
            claims = self.ledger.claim_many(queue, tokens, now=now, day_start=self.window.day_start(now),
                                            next_day=self.window.next_day_open(now),
                                            daily_cap=self.dialer_config.daily_cap)
            now = self.clock()
            if len(claims) < tokens:
                self.bucket.give_back(tokens - len(claims))
                self._idle_until[queue.id] = now + IDLE_RECHECK
            for claim in claims:
                self._start(claim)
        return IDLE_RECHECK

    def _next_queue(self, now: float) -> QueueInfo | None:
        """Round robin over running queues with room and, maybe, someone due; each turn
        takes a batch of at most CLAIM_BATCH, so a large queue cannot starve a small one."""
        count = len(self.queues)
        for step in range(count):
            queue = self.queues[(self._rr + step) % count]
            if self.per_queue.get(queue.id, 0) < queue.concurrent_call and self._idle_until.get(queue.id, 0) <= now:
                self._rr = (self._rr + step + 1) % count
                return queue
        return None

    def _start(self, claim: Claim):
        now = self.clock()
        try:
            template = self.templates.get(claim.template)
            script = template.render(claim.fields)
        except ivr.RenderError as e:
            self.ledger.abandon(claim, cause=f"TEMPLATE: {e}", now=now, customer_state="failed")
            calls_log.warning("customer %s of %s not called: %s", claim.ext_id, claim.queue_code, e)
            return
        except ivr.TemplateError as e:
            self.ledger.abandon(claim, cause="TEMPLATE_ERROR", now=now, stop_reason=f"template {claim.template}: {e}")
            return
        missing = [path for path in script.files() if not os.path.exists(path)]
        if missing:
            self.ledger.abandon(claim, cause="SOUND_FILE_MISSING", now=now,
                                stop_reason=f"sound files missing: {', '.join(missing[:5])}")
            return
        unplayable = self._unplayable(template)
        if unplayable:
            self.ledger.abandon(claim, cause="SOUND_FILE_UNPLAYABLE", now=now,
                                stop_reason=f"template {claim.template}: FreeSWITCH cannot play "
                                            f"{', '.join(unplayable[:5])}")
            return
        self._launch(Call(claim, self.esl, script, self.call_settings, self.clock), originate=True)

    def _check_templates(self):
        """Ask the switch about every file of every good template (start-up and reconnect);
        the answers are kept, so claims later ask only about templates edited since."""
        for name in self.templates.names():
            try:
                template = self.templates.get(name)
            except ivr.TemplateError:
                continue  # the loader has logged why
            self._unplayable(template)

    def _unplayable(self, template: ivr.Template) -> list[str]:
        """The files of `template` FreeSWITCH cannot play. Asked once per loaded version while
        they are all playable; while some are not, again after UNPLAYABLE_RECHECK (the fix, a
        folder's permission, changes nothing the loader sees)."""
        now = self.clock()
        checked, unplayable, at = self._switch_verdicts.get(template.name, (None, [], 0.0))
        if checked is template and (not unplayable or now - at < UNPLAYABLE_RECHECK):
            return unplayable
        try:
            unplayable = self.switch_files.unplayable(self.esl, template.files())
        except esl_mod.ESLError as e:
            log.warning("template %s: cannot ask FreeSWITCH about its files (%s); not checked", template.name, e)
            if self.esl.is_alive() and not isinstance(e, esl_mod.ESLTimeout):  # it cannot tell: ask no more
                self._switch_verdicts[template.name] = (template, [], now)
            return []
        self._switch_verdicts[template.name] = (template, unplayable, now)
        if unplayable:
            log.error("template %s: FreeSWITCH cannot play %d of its files: %s", template.name, len(unplayable),
                      ", ".join(unplayable))
        return unplayable

    def _launch(self, call: Call, *, originate: bool):
        active = _Active(call)
        self.calls[call.claim.attempt_id] = active
        self.per_queue[call.claim.queue_id] = self.per_queue.get(call.claim.queue_id, 0) + 1
        active.greenlet = gevent.spawn(self._call_main, call, originate)

    def _call_main(self, call: Call, originate: bool):
        claim = call.claim
        report = None
        try:
            if call.script is None:  # re-attached but unrenderable: end it
                call.interrupted = True
            report = call.run(originate=originate and call.script is not None,
                              on_answer=lambda at: self.ledger.mark_answered(claim.attempt_id, at))
        except Detached as e:
            log.info("call %s detached (%s); it is reconciled after reconnect", claim.uuid, e)
        except Exception:
            log.exception("call %s failed in the dialer; hanging it up", claim.uuid)
            report = CallReport(call.answered_at, self.clock(), 0.0, "AUTOCALL_ERROR", interrupted=True)
            gevent.spawn(_quiet_kill, self.esl, claim.uuid)
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
            self._idle_until.pop(claim.queue_id, None)
            self._wake.set()

    def _record(self, claim: Claim, report: CallReport, reattached: bool = False):
        if report.cause == "FILE_NOT_FOUND":  # the switch said otherwise than file_exists did: ask again
            self._switch_verdicts.pop(claim.template, None)
            self.switch_files = SwitchFiles()
        result, state = self.ledger.finish(claim, report, recall_delay=self.dialer_config.recall_delay)
        calls_log.info(
            "call queue=%s customer=%s number=%s uuid=%s cause=%s sip=%s talk=%.1fs keys=%s result=%s "
            "outcome=%s customer_state=%s%s", claim.queue_code, claim.ext_id, claim.number, claim.uuid,
            report.cause, report.sip_status or "-", report.talk_seconds, report.keys or "-",
            report.result or "-", result, state, " (reconciled)" if reattached else "")

    # --- draining ---

    def _drain(self):
        if self.calls:
            log.info("stopping: no new calls; waiting up to %.0fs for %d calls in progress",
                     self.dialer_config.drain_timeout, len(self.calls))
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
        if self.esl is not None:
            self.esl.close()


def channel_rows(body: str) -> dict[str, dict]:
    """uuid -> row (callstate, application, ...) from `show channels as json` (which says
    {"row_count": 0} when empty)."""
    try:
        data = json.loads(body)
    except ValueError:
        raise esl_mod.ESLError(f"show channels: unexpected reply {body[:80]!r}") from None
    return {row["uuid"]: row for row in data.get("rows", [])}


def _quiet_kill(client, uuid: str):
    try:
        client.api(f"uuid_kill {uuid}")
    except esl_mod.ESLError:
        pass
