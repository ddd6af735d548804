"""One call's life, in its own greenlet: originate, wait for answer, run the IVR, hang up,
and report what happened.

The ESL reader hands this call's events to `on_event`, which only records them and sets
gevent Events; every wait in the greenlet also watches the hangup and the connection, so
a callee hanging up mid-prompt or FreeSWITCH going away ends the wait at once.

The first application waits for the channel's CHANNEL_PARK, not for CHANNEL_ANSWER: until
the originate has moved the channel into CS_EXECUTE, FreeSWITCH cuts a playback with
PLAYBACK ERROR (docs/esl.md, "When the first execute may go").
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid as uuid_mod

import gevent
import gevent.event

from daemon import esl as esl_mod
from daemon import hangup, ivr
from daemon.esl import commands
from daemon.ledger import CallReport, Claim
from daemon.playable import SwitchFiles
from daemon.trunks import FAILOVER_CAUSES, NO_CHANNEL_CAUSES, Trunk, TrunkPool

log = logging.getLogger("autocall.call")

PARK_AFTER_ANSWER = 10.0  # seconds from answer to wait for CHANNEL_PARK (or the job's +OK)
PARK_AFTER_JOB = 2.0  # ...and after the originate's +OK; then play anyway, with a warning
LEG_GONE = 2.0  # seconds a failover waits for the failed leg's last events, then for its uuid to be free
TRANSFERRED = "-transferred"  # the step recorded once the call is the agents' (no template step has a "-")


class Detached(Exception):
    """The ESL connection died: the call's fate is left to reconciliation after reconnect."""


@dataclasses.dataclass(frozen=True)
class CallSettings:
    dial_string: str  # validated config: contains {number} once
    caller_id: str
    originate_timeout: int
    max_call_seconds: int
    destinations: dict  # transfer name -> "extension [dialplan [context]]"
    hangup_grace: float = 10.0  # seconds to wait for CHANNEL_HANGUP_COMPLETE after we hang up
    caller_ids: frozenset = frozenset()  # the configured ones (Config.caller_ids): a queue's must be one


class Call:
    """Drives one claimed attempt to a CallReport. Create, then `run()` in a greenlet.

    A re-attached call passes what reconciliation learnt: `answered_at` (else the claim's),
    `parked` (the originate is known done) and `reattached` (the IVR resumes at the claim's step
    and result; its keys are all the channel heard). Without a script (re-attached, and
    `prepare` refused it) the call is only hung up and recorded interrupted."""

    def __init__(
        self,
        claim: Claim,
        client,
        script: ivr.Script | None,
        settings: CallSettings,
        clock,
        *,
        monotonic=time.monotonic,
        answered_at: float | None = None,
        parked: bool = False,
        reattached: bool = False,
        trunks: TrunkPool | None = None,
        trunk: Trunk | None = None,
    ):
        self.claim, self.esl, self.script, self.settings, self.clock = claim, client, script, settings, clock
        self.trunks, self.trunk = trunks, trunk  # with [[trunks]]: the pool, and the trunk it holds
        self.monotonic = monotonic  # what the call's own limits are measured on
        self.answered = gevent.event.Event()
        self.ended = gevent.event.Event()  # CHANNEL_HANGUP_COMPLETE arrived
        self.gone = gevent.event.Event()  # no IVR possible: ended, hung up, or the originate failed
        self.parked = gevent.event.Event()  # CHANNEL_PARK: the channel runs CS_EXECUTE, apps may go
        self.job_ok = gevent.event.Event()  # the originate's BACKGROUND_JOB said +OK
        if parked:
            self.parked.set()
        self.answered_at = claim.answered_at if answered_at is None else answered_at
        self.hangup_event = None
        self.keys: list[str] = []
        self.reattached = reattached
        self.result: str | None = claim.result if reattached else None
        self.interrupted = script is None
        self.job_failure: str | None = None
        self.unplayable: str | None = None  # a file FreeSWITCH answered FILE NOT FOUND for
        self.key_accepted = False  # a menu accepted a key (retry_when "no_key")
        self.trunk_name: str | None = trunk.name if trunk else None  # the trunk the call went out on
        self._tried: set[str] = {trunk.name} if trunk else set()
        self._leg = 0  # originates of this attempt so far minus one (failover to another trunk)
        self.job_done = gevent.event.Event()  # this leg's BACKGROUND_JOB came
        self._menus = 0
        self._barge_in: bool | None = None  # what playback_terminators says; None: not known
        self._keys_heard = 0  # DTMF events seen when the last application ended
        self._on_step = lambda step, result: None
        self._may_dial = lambda: None

    # --- events, from the ESL reader greenlet: record and signal only ---

    def on_event(self, event):
        name = event.name
        if name == "CHANNEL_ANSWER":
            if self.answered_at is None:
                self.answered_at = self.clock()
            self.answered.set()
        elif name == "CHANNEL_PARK":
            self.parked.set()
        elif name == "DTMF":
            self.keys.append(event.get("DTMF-Digit", ""))
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self.hangup_event = event
            self.ended.set()
            self.gone.set()

    def _on_job(self, job, leg: int = 0):
        if leg != self._leg:
            return  # a leg given up for another trunk
        self.job_done.set()
        if job.successful() and job.value.ok:
            self.job_ok.set()
        elif job.successful():
            self.job_failure = job.value.text or "UNKNOWN"
            self.gone.set()  # no answer will come; the channel's hangup event may or may not follow

    # --- the call ---

    def run(self, *, originate: bool = True, on_answer=None, on_step=None, may_dial=None) -> CallReport:
        """Drive the call to its end; `on_step(step, result)` hears of each IVR step entered;
        `may_dial()` is asked before a failover leg goes out (None: it may; else why not: a
        stop or DNC acknowledged since the first leg). Raises Detached if the ESL connection
        dies first."""
        self._on_step = on_step or self._on_step
        self._may_dial = may_dial or self._may_dial
        self.esl.subscribe_channel(self.claim.uuid, self.on_event)
        if self.answered_at is not None:
            self.answered.set()  # re-attached to a call answered before a restart
        try:
            if originate and self.script is not None:
                self._originate()
            self._wait_answer(on_answer)
            while originate and self._fail_over():
                self._wait_answer(on_answer)
            if self.answered_at is not None and not self.gone.is_set() and self.script is not None:
                self._wait_parked()
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

    def end_after_error(self) -> bool:
        """After a failure of our own mid-call: hang the channel up and wait, as at any end, until
        the switch has ended it, so that the customer's next call cannot overlap it. False when
        the connection died first (the attempt is then reconciliation's, as for Detached)."""
        if self.ended.is_set():
            return True
        self.esl.subscribe_channel(self.claim.uuid, self.on_event)  # run() let go of its events
        try:
            self._await_end(self._kill(), self.settings.hangup_grace)
        except Detached:
            return False
        finally:
            self.esl.unsubscribe_channel(self.claim.uuid)
        return True

    def _originate(self):
        try:
            claim, s, trunk = self.claim, self.settings, self.trunk
            caller_id = claim.caller_id if claim.caller_id in s.caller_ids else None
            if claim.caller_id and caller_id is None and self._leg == 0:
                log.warning(
                    "call %s: caller id %s of queue %r is no longer configured; using the trunk's",
                    claim.uuid,
                    claim.caller_id,
                    claim.queue_code,
                )
            caller_id = caller_id or (self.trunks.caller_id(trunk.name) if self.trunks and trunk else None)
            command = commands.originate(
                uuid=claim.uuid,
                number=claim.number,
                attempt_id=claim.attempt_id,
                queue_id=claim.queue_id,
                dial_string=trunk.dial_string if trunk else s.dial_string,
                caller_id=caller_id or s.caller_id,
                originate_timeout=s.originate_timeout,
                park_timeout=s.max_call_seconds,
                slot=claim.slot,
            )
            # A failover leg needs a Job-UUID of its own: the first leg's job may still answer.
            job = self.esl.bgapi(command, job_uuid=claim.job_uuid if self._leg == 0 else str(uuid_mod.uuid4()))
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
        self._barge_in = False  # the originate set playback_terminators=none
        job.rawlink(lambda done, leg=self._leg: self._on_job(done, leg))

    def _failure(self) -> str | None:
        """The hangup cause of a leg that ended unanswered (its hangup event's, or its job's)."""
        if self.hangup_event is not None:
            return self.hangup_event.get("Hangup-Cause") or self.hangup_event.get("variable_hangup_cause")
        return self.job_failure.split()[0] if self.job_failure else None

    def _fail_over(self) -> bool:
        """After a trunk-level failure of an unanswered leg (trunks.FAILOVER_CAUSES), send the
        same attempt out on the next trunk that can take it: same channel uuid, once the failed
        leg's channel is gone (FreeSWITCH refuses a uuid still in use). Tells the pool how the
        trunk did. False: the call's end stands."""
        if self.trunks is None or self.trunk is None or self.interrupted:
            return False
        cause, now = self._failure(), self.monotonic()
        if self.answered_at is not None:
            self.trunks.worked(self.trunk.name, now)
            return False
        if cause not in FAILOVER_CAUSES:
            if cause is not None and not cause.startswith("ORIGINATE_REFUSED"):
                self.trunks.worked(self.trunk.name, now)
            return False
        self.trunks.failed(self.trunk.name, cause, now)
        following = self.trunks.acquire(self.claim.number, now, frozenset(self._tried))
        if following is None:
            return False
        if not self._leg_gone(cause):
            self.trunks.release(following.name)
            return False
        # Seconds have passed since the store's last look: a stop or DNC acknowledged meanwhile
        # must keep the next leg from going out, as it keeps a claim (daemon/last_look.py).
        withdrawn = self._may_dial()
        if withdrawn is not None:
            log.info(
                "call %s: trunk %s failed (%s); no failover: %s", self.claim.uuid, self.trunk.name, cause, withdrawn
            )
            self.trunks.release(following.name)
            return False
        log.info(
            "call %s: trunk %s failed (%s); the same attempt goes out on trunk %s",
            self.claim.uuid,
            self.trunk.name,
            cause,
            following.name,
        )
        self.trunks.release(self.trunk.name)
        self.trunk, self.trunk_name = following, following.name
        self._tried.add(following.name)
        self._leg += 1
        for event in (self.ended, self.gone, self.job_ok, self.job_done, self.parked):
            event.clear()
        self.hangup_event, self.job_failure = None, None
        self.keys.clear()
        self._originate()
        return True

    def _leg_gone(self, cause: str) -> bool:
        """Wait (a few seconds at most) until the failed leg's job answered and its channel, if
        FreeSWITCH made one, is gone: its events are then all in, and its uuid free again."""
        self._wait(self.job_done, timeout=LEG_GONE)
        if cause not in NO_CHANNEL_CAUSES:
            self._wait(self.ended, timeout=LEG_GONE)
        deadline = self.monotonic() + LEG_GONE
        while self.monotonic() < deadline:
            there = self._channel_there()
            if there is False:
                return True
            if there is None:
                return False
            gevent.sleep(0.05)
        log.warning(
            "call %s: channel of the failed leg still there after %.0fs; no failover", self.claim.uuid, LEG_GONE
        )
        return False

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

    def _wait_parked(self):
        """Wait until the channel is parked (CHANNEL_PARK), so the first execute runs in
        CS_EXECUTE. Bounded: without the event, go on PARK_AFTER_JOB after the originate's +OK."""
        self._wait(self.parked, self.gone, self.job_ok, timeout=PARK_AFTER_ANSWER)
        if self.job_ok.is_set() and not self.parked.is_set():
            self._wait(self.parked, self.gone, timeout=PARK_AFTER_JOB)
        if not (self.parked.is_set() or self.gone.is_set()):
            log.warning(
                "call %s: answered but no CHANNEL_PARK came (originate %s); playing anyway",
                self.claim.uuid,
                "completed" if self.job_ok.is_set() else "not known to have completed",
            )

    def _run_ivr(self):
        deadline = self.monotonic() + self.settings.max_call_seconds
        step_id = self._first_step()
        self._keys_heard = len(self.keys)  # a key before the first prompt answers nothing
        while step_id is not None and not self.gone.is_set() and self.unplayable is None:
            if self.monotonic() > deadline:
                log.warning("call %s: longer than %ds; hanging up", self.claim.uuid, self.settings.max_call_seconds)
                return
            step = self.script.steps[step_id]
            self._on_step(step_id, self.result)
            digits = None
            if isinstance(step, ivr.Play):
                digits = self._play(step)
            elif isinstance(step, ivr.Menu):
                digits = self._collect(step, commands.play_and_get_digits_arg)
            self.key_accepted |= ivr.accepts(self.script, step_id, digits)
            step_id, effects = ivr.next_step(self.script, step_id, digits)
            for effect in effects:
                if isinstance(effect, ivr.RecordResult):
                    self.result = effect.name
                    self._keep_result_on_channel()
                elif isinstance(effect, ivr.TransferCall):
                    self._on_step(TRANSFERRED, self.result)
                    self._transfer(effect.destination)

    def _keep_result_on_channel(self):
        """Put the result on the channel too (its hangup record carries it: a result still waiting
        for the database when the daemon stops is read back from the switch), before the store
        hears of it, so that the channel's is never the older of the two (reconciliation prefers
        it). A slow switch is waited for as long as the call may last; one that never answers
        loses the connection (Detached: neither heard of it). A callee already gone answers -ERR."""
        if self.claim.slot is None:  # no hangup record to carry it
            return
        command = commands.uuid_setvar(self.claim.uuid, commands.RESULT_VAR, self.result)
        try:
            said = self.esl.api(command, timeout=self.settings.max_call_seconds).strip()
        except esl_mod.ESLConnectionLost as e:
            raise Detached(str(e)) from None
        except esl_mod.ESLError as e:
            said = str(e)
        if said != "+OK":
            log.debug("call %s: result %s not kept on the channel: %s", self.claim.uuid, self.result, said)

    def _first_step(self) -> str | None:
        """The template's start, or for a re-attached call the step it was in (from its start:
        what the callee did there while we were away is not known); None once it is the agents'."""
        assert self.script is not None
        at = self.claim.step if self.reattached else None
        if at == TRANSFERRED:
            self._wait(self.ended, timeout=self.settings.max_call_seconds)
            return None
        if at is not None and at not in self.script.steps:
            log.warning("call %s: step %s is not in %s now; it starts over", self.claim.uuid, at, self.script.template)
            at = None
        return self.script.start if at is None else at

    def _play(self, step: ivr.Play) -> str | None:
        """Play one step. When it leads into a barge-in menu, a key stops it and the keys
        pressed are returned for that menu (the key is consumed by playback: we pass it on)."""
        barge_in = step.barge_into is not None
        before = self._keys_heard
        first = None if barge_in and len(self.keys) > before else self._play_files(step, barge_in)
        if barge_in and not first and len(self.keys) > before:
            # A key came while no application ran (before this prompt started): park dropped it
            # and only its DTMF event tells. It answers the menu as if it had stopped the prompt.
            first = self.keys[before]
        if not first:
            return None
        assert self.script is not None and step.barge_into is not None  # _run_ivr runs only with a script
        menu = self.script.steps[step.barge_into]
        rest = self._collect(menu, lambda m, var: commands.rest_of_menu_arg(m, first, var))
        return first + (rest or "")

    def _play_files(self, step: ivr.Play, barge_in: bool) -> str | None:
        """playback of the step, a key stopping it when `barge_in`; the key that did, or None."""
        if self._barge_in is not barge_in and self._execute("set", commands.playback_terminators_arg(barge_in)):
            self._barge_in = barge_in
        done = self._execute("playback", commands.playback_arg(step.files))
        # playback clears playback_terminator_used when it starts: the value is this execution's.
        return done.get("variable_playback_terminator_used") if done is not None and barge_in else None

    def _collect(self, menu: ivr.Menu, build) -> str | None:
        """Run play_and_get_digits with the argument `build(menu, var)` into a fresh variable;
        the digits pressed (valid or not), or None."""
        self._menus += 1
        var = f"autocall_menu_{self._menus}"
        arg = build(menu, var)
        done = self._execute("play_and_get_digits", arg) if arg is not None else None
        if done is None:
            return None
        if not done.get("variable_read_result") and not self.gone.is_set():
            self._check_menu_files(menu)
        return done.get(f"variable_{var}") or done.get(f"variable_{var}_invalid")

    def _check_menu_files(self, menu: ivr.Menu):
        """play_and_get_digits ended before reading a key (no read_result): switch_ivr_read could
        not open a prompt, which FreeSWITCH reports nowhere else. Ask it which file, as for
        playback's FILE NOT FOUND (docs/esl.md)."""
        paths = [*menu.files, *([menu.invalid_file] if menu.invalid_file else [])]
        try:
            missing = SwitchFiles().unplayable(self.esl, paths)
        except esl_mod.ESLConnectionLost as e:
            raise Detached(str(e)) from None
        except esl_mod.ESLError as e:
            log.warning("call %s: menu %s read no key and FreeSWITCH cannot say why (%s)", self.claim.uuid, menu.id, e)
            return
        if missing:
            self.unplayable = missing[0]
            log.error(
                "call %s: FreeSWITCH cannot open %s of menu %s; hanging up and stopping queue %r",
                self.claim.uuid,
                missing[0],
                menu.id,
                self.claim.queue_code,
            )

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
            if "invalid session id" in str(e):  # the channel went between two prompts: a normal end
                log.info("call %s: channel gone before %s; waiting for its hangup", self.claim.uuid, app)
                self.gone.set()
            else:
                log.warning("call %s: %s refused: %s", self.claim.uuid, app, e)
            return None
        self._wait(future, self.gone, timeout=self.settings.max_call_seconds)
        self._keys_heard = len(self.keys)  # keys from now on came after this application
        if future.ready() and future.successful():
            self._completed(app, arg, future.value)
            return future.value
        if future.ready() and isinstance(future.exception, esl_mod.ESLConnectionLost):
            raise Detached(str(future.exception))
        return None

    def _completed(self, app: str, arg: str, done):
        """Read what CHANNEL_EXECUTE_COMPLETE says about the call, beyond the app's result."""
        response = done.get("Application-Response")
        if done.get("Answer-State") == "hangup" or done.get("Hangup-Cause"):
            # The callee is gone (the completion comes a few ms before HANGUP_COMPLETE):
            # nothing more to execute, only the hangup events to wait for.
            self.gone.set()
        elif response == "FILE NOT FOUND":
            self.unplayable = arg
            log.error(
                "call %s: FreeSWITCH cannot play %s (FILE NOT FOUND); hanging up and stopping queue %r",
                self.claim.uuid,
                arg,
                self.claim.queue_code,
            )
        elif response == "PLAYBACK ERROR":
            log.warning("call %s: %s of %s ended PLAYBACK ERROR with the callee on the line", self.claim.uuid, app, arg)

    def _hang_up(self):
        # A job's -ERR after CHANNEL_ANSWER sets gone, yet the answered channel may still be up.
        said = None
        if not self.gone.is_set() or (self.job_failure and self.answered_at is not None and not self.ended.is_set()):
            said = self._kill()
        # A failed originate may or may not have had a channel: give its events a moment.
        self._await_end(said, 2.0 if self.job_failure else self.settings.hangup_grace)

    def _await_end(self, said: str | None, timeout: float):
        """Wait `timeout` for the hangup event, then until the switch says the channel is gone."""
        if not self.ended.is_set():
            self._wait(self.ended, timeout=timeout)
        if not self.ended.is_set():
            self._until_gone(said)

    def _until_gone(self, said: str | None):
        """The hangup event did not come: the call ends when the switch says its channel is gone.
        While it is there (a kill it answered -ERR for, its session lock taken at that moment; a
        kill that never finished), it is killed again every hangup_grace and the attempt stays
        open, so the customer is called by nobody meanwhile. After max_call_seconds more (park's
        own limit has passed by then) it is recorded ended all the same, at ERROR."""
        deadline = self.monotonic() + self.settings.max_call_seconds
        warned = False
        while not self.ended.is_set() and self._channel_there() is not False:
            if self.monotonic() >= deadline:
                log.error(
                    "call %s: FreeSWITCH still has channel %s %ds after it was hung up; the call is "
                    "recorded ended all the same: see `show channels` and `uuid_kill` it on the switch",
                    self.claim.uuid,
                    self.claim.uuid,
                    self.settings.max_call_seconds,
                )
                return
            if not warned:
                log.warning(
                    "call %s: channel still up %.0fs after it was hung up (uuid_kill: %s); killing it again "
                    "every %.0fs, and the customer stays in this call until the switch ends it",
                    self.claim.uuid,
                    self.settings.hangup_grace,
                    said or "not sent: the callee was gone",
                    self.settings.hangup_grace,
                )
                warned = True
            self._kill()
            self._wait(self.ended, timeout=self.settings.hangup_grace)

    def _channel_there(self) -> bool | None:
        """Whether the switch has this call's channel (`uuid_exists`); None: it would not say."""
        try:
            said = self.esl.api(commands.uuid_exists(self.claim.uuid)).strip()
        except esl_mod.ESLConnectionLost as e:
            raise Detached(str(e)) from None
        except esl_mod.ESLError:
            return None
        return {"true": True, "false": False}.get(said)

    def _kill(self) -> str | None:
        """uuid_kill this call's channel; what the switch answered (None: no answer)."""
        try:
            return self.esl.api(commands.uuid_kill(self.claim.uuid)).strip()
        except esl_mod.ESLConnectionLost as e:
            raise Detached(str(e)) from None
        except esl_mod.ESLError as e:
            log.warning("call %s: uuid_kill failed: %s", self.claim.uuid, e)
            return None

    def _wait(self, *targets, timeout: float):
        """Wait for any of `targets` or the connection's death (then raise Detached)."""
        gevent.wait([*targets, self.esl.dead], count=1, timeout=timeout)
        if self.esl.dead.is_set() and not (self.ended.is_set() or self.job_failure):
            raise Detached(self.esl.dead_reason or "ESL connection lost")

    def _report(self) -> CallReport:
        event, now = self.hangup_event, self.clock()
        if event is None:
            return CallReport(
                self.answered_at,
                now,
                hangup.talk_seconds(None, self.answered_at, now),
                self.job_failure or "UNKNOWN",
                keys="".join(self.keys),
                result=self.result,
                interrupted=self.interrupted,
                key_accepted=self._key_accepted(),
                trunk=self.trunk_name,
            )
        cause = event.get("Hangup-Cause") or event.get("variable_hangup_cause")
        sip = event.get("variable_sip_term_status") or event.get("variable_sip_invite_failure_status")
        answered = self.answered_at is not None or hangup.epoch(event, "answer") > 0
        answered_at = self.answered_at if self.answered_at is not None else (now if answered else None)
        stop_reason = None
        if self.unplayable is not None:
            cause = "FILE_NOT_FOUND"
            stop_reason = (
                f"FreeSWITCH cannot play {self.unplayable} (FILE NOT FOUND): check that the file "
                "exists and that the FreeSWITCH user can read it and enter its folders"
            )
        return CallReport(
            answered_at,
            now,
            hangup.talk_seconds(event, self.answered_at, now) if answered else 0.0,
            cause,
            sip,
            hangup.dialed(event) if self.reattached else "".join(self.keys),
            self.result,
            self.interrupted,
            stop_reason,
            self._key_accepted(),
            self.trunk_name,
        )

    def _key_accepted(self) -> bool | None:
        """Whether a menu accepted a key; None when not known (re-attached: what came before)."""
        return True if self.key_accepted else (None if self.reattached else False)
