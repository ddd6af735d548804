"""One call's life, in its own greenlet: originate, wait for answer, run the IVR, hang up,
and report what happened.

The ESL reader hands this call's events to `on_event`, which only records them and sets
gevent Events; every wait in the greenlet also watches the hangup and the connection, so
a callee hanging up mid-prompt or FreeSWITCH going away ends the wait at once.
"""
from __future__ import annotations

import dataclasses
import logging

import gevent
import gevent.event

from daemon import esl as esl_mod
from daemon import ivr
from daemon.ledger import CallReport, Claim

log = logging.getLogger(__name__)


class Detached(Exception):
    """The ESL connection died: the call's fate is left to reconciliation after reconnect."""


@dataclasses.dataclass(frozen=True)
class CallSettings:
    dial_string: str            # validated config: contains {number} once
    caller_id: str
    originate_timeout: int
    max_call_seconds: int
    destinations: dict          # transfer name -> "extension [dialplan [context]]"
    hangup_grace: float = 10.0  # seconds to wait for CHANNEL_HANGUP_COMPLETE after we hang up


def originate_command(claim: Claim, s: CallSettings) -> str:
    """The bgapi originate line. Only safe tokens: uuids, integers, digits, validated config."""
    variables = [
        f"origination_uuid={claim.uuid}",
        "ignore_early_media=true",
        f"originate_timeout={s.originate_timeout}",
        # An orphaned channel (daemon gone) leaves park by itself instead of sitting in silence.
        f"park_timeout={s.max_call_seconds}",
        f"autocall_attempt={claim.attempt_id}",
        f"accountcode=autocall_q{claim.queue_id}",
    ]
    if s.caller_id:
        variables.append(f"origination_caller_id_number={s.caller_id}")
    target = s.dial_string.replace("{number}", claim.number)
    return "originate {%s}%s &park()" % (",".join(variables), target)


class Call:
    """Drives one claimed attempt to a CallReport. Create, then `run()` in a greenlet."""

    def __init__(self, claim: Claim, client, script: ivr.Script, settings: CallSettings, clock):
        self.claim, self.esl, self.script, self.settings, self.clock = claim, client, script, settings, clock
        self.answered = gevent.event.Event()
        self.ended = gevent.event.Event()   # CHANNEL_HANGUP_COMPLETE arrived
        self.gone = gevent.event.Event()    # no IVR possible: ended, or the originate failed
        self.answered_at = claim.answered_at
        self.hangup_event = None
        self.keys: list[str] = []
        self.result: str | None = None
        self.interrupted = False
        self.job_failure: str | None = None
        self._menus = 0

    # --- events, from the ESL reader greenlet: record and signal only ---

    def on_event(self, event):
        name = event.name
        if name == "CHANNEL_ANSWER":
            if self.answered_at is None:
                self.answered_at = self.clock()
            self.answered.set()
        elif name == "DTMF":
            self.keys.append(event.get("DTMF-Digit", ""))
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self.hangup_event = event
            self.ended.set()
            self.gone.set()

    def _on_job(self, job):
        if job.successful() and not job.value.ok:
            self.job_failure = job.value.text or "UNKNOWN"
            self.gone.set()  # no answer will come; the channel's hangup event may or may not follow

    # --- the call ---

    def run(self, *, originate: bool = True, on_answer=None) -> CallReport:
        """Drive the call to its end. Raises Detached if the ESL connection dies first."""
        self.esl.subscribe_channel(self.claim.uuid, self.on_event)
        if self.answered_at is not None:
            self.answered.set()  # re-attached to a call answered before a restart
        try:
            if originate:
                self._originate()
            self._wait_answer(on_answer)
            if self.answered_at is not None and not self.gone.is_set() and self.script is not None:
                self._run_ivr()
            self._hang_up()
            return self._report()
        finally:
            self.esl.unsubscribe_channel(self.claim.uuid)

    def interrupt(self):
        """Cut the call short (daemon shutdown); the attempt is then recorded as interrupted."""
        self.interrupted = True
        if not self.gone.is_set():
            self._kill()

    def _originate(self):
        try:
            job = self.esl.bgapi(originate_command(self.claim, self.settings), job_uuid=self.claim.job_uuid)
        except esl_mod.ESLConnectionLost as e:
            raise Detached(str(e)) from None
        except esl_mod.ESLTimeout as e:
            # A slow switch may still place the call: follow it as if the reply had come.
            log.warning("call %s: originate not acknowledged in time; following it anyway", self.claim.uuid)
            job = e.pending
        except esl_mod.ESLError as e:
            self.job_failure = f"ORIGINATE_REFUSED: {e}"
            self.gone.set()
            return
        job.rawlink(self._on_job)

    def _wait_answer(self, on_answer):
        limit = self.settings.originate_timeout + 15
        self._wait(self.answered, self.gone, timeout=limit)
        if self.answered_at is not None:
            if on_answer:
                on_answer(self.answered_at)
            return
        if not self.gone.is_set():
            log.warning("call %s: no answer or hangup %ds after originate; killing it", self.claim.uuid, limit)
            self._kill()

    def _run_ivr(self):
        deadline = self.clock() + self.settings.max_call_seconds
        step_id = self.script.start
        while step_id is not None and not self.gone.is_set():
            if self.clock() > deadline:
                log.warning("call %s: longer than %ds; hanging up", self.claim.uuid, self.settings.max_call_seconds)
                return
            step = self.script.steps[step_id]
            digits = None
            if isinstance(step, ivr.Play):
                self._execute("playback", ivr.playback_arg(step.files))
            elif isinstance(step, ivr.Menu):
                self._menus += 1
                var = f"autocall_menu_{self._menus}"
                done = self._execute("play_and_get_digits", ivr.play_and_get_digits_arg(step, var))
                if done is not None:
                    digits = done.get(f"variable_{var}") or done.get(f"variable_{var}_invalid")
            step_id, effects = ivr.next_step(self.script, step_id, digits)
            for effect in effects:
                if isinstance(effect, ivr.RecordResult):
                    self.result = effect.name
                elif isinstance(effect, ivr.TransferCall):
                    self._transfer(effect.destination)

    def _transfer(self, name: str):
        target = self.settings.destinations.get(name)
        if target is None:
            log.error("call %s: transfer destination %r is not configured; hanging up", self.claim.uuid, name)
            return
        self._execute("transfer", target)
        # The call is the agents' now; it holds its channel until they hang up.
        self._wait(self.ended, timeout=self.settings.max_call_seconds)

    def _execute(self, app: str, arg: str):
        """Run one application and wait for it to complete, or for the hangup."""
        if self.gone.is_set():
            return None
        try:
            future = self.esl.execute(self.claim.uuid, app, arg)
        except esl_mod.ESLConnectionLost as e:
            raise Detached(str(e)) from None
        except esl_mod.ESLTimeout as e:
            log.warning("call %s: %s not acknowledged in time; waiting for it anyway", self.claim.uuid, app)
            future = e.pending
        except esl_mod.ESLError as e:
            log.warning("call %s: %s refused: %s", self.claim.uuid, app, e)
            return None
        self._wait(future, self.gone, timeout=self.settings.max_call_seconds)
        if future.ready() and future.successful():
            return future.value
        if future.ready() and isinstance(future.exception, esl_mod.ESLConnectionLost):
            raise Detached(str(future.exception))
        return None

    def _hang_up(self):
        if not self.gone.is_set():
            self._kill()
        if not self.ended.is_set():
            # A failed originate may or may not have had a channel: give its events a moment.
            self._wait(self.ended, timeout=2.0 if self.job_failure else self.settings.hangup_grace)

    def _kill(self):
        try:
            self.esl.api(f"uuid_kill {self.claim.uuid}")
        except esl_mod.ESLConnectionLost as e:
            raise Detached(str(e)) from None
        except esl_mod.ESLError as e:
            log.warning("call %s: uuid_kill failed: %s", self.claim.uuid, e)

    def _wait(self, *targets, timeout: float):
        """Wait for any of `targets` or the connection's death (then raise Detached)."""
        gevent.wait([*targets, self.esl.dead], count=1, timeout=timeout)
        if self.esl.dead.is_set() and not (self.ended.is_set() or self.job_failure):
            raise Detached(self.esl.dead_reason or "ESL connection lost")

    def _report(self) -> CallReport:
        event, now = self.hangup_event, self.clock()
        if event is None:
            return CallReport(self.answered_at, now, self._talk(None, now), self.job_failure or "UNKNOWN",
                              keys="".join(self.keys), result=self.result, interrupted=self.interrupted)
        cause = event.get("Hangup-Cause") or event.get("variable_hangup_cause")
        sip = event.get("variable_sip_term_status") or event.get("variable_sip_invite_failure_status")
        answered = self.answered_at is not None or _epoch(event, "answer") > 0
        answered_at = self.answered_at if self.answered_at is not None else (now if answered else None)
        return CallReport(answered_at, now, self._talk(event, now) if answered else 0.0, cause, sip,
                          "".join(self.keys), self.result, self.interrupted)

    def _talk(self, event, now: float) -> float:
        """Talk time as FreeSWITCH measured it (answer -> end), else our own clock's."""
        if event is not None:
            answer, end = _epoch(event, "answer"), _epoch(event, "end")
            if answer > 0 and end >= answer:
                return end - answer
        return max(0.0, now - self.answered_at) if self.answered_at is not None else 0.0


def _epoch(event, which: str) -> float:
    """`variable_<which>_uepoch` (µs) as seconds, else `_epoch`, else 0."""
    micro = event.get(f"variable_{which}_uepoch")
    if micro and micro.isdigit():
        return int(micro) / 1e6
    whole = event.get(f"variable_{which}_epoch")
    return float(whole) if whole and whole.isdigit() else 0.0
