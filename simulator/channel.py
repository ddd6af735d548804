"""One simulated call leg: its life from originate to destroy, run by one greenlet.

The channel greenlet owns the call's timeline (ringing, answer, the applications sent to it,
the callee's scripted keys and hangup). Other greenlets talk to it only through its inbox,
except for `hangup()`, which fires CHANNEL_HANGUP at once as FreeSWITCH does inside uuid_kill.
The ring phase (before the answer) is `simulator.ringing`; the hangup hook `simulator.hook`.
"""

import logging
import math
import uuid as uuidlib
from collections import deque

import gevent
from gevent.event import AsyncResult
from gevent.queue import Empty, Queue

from simulator import hook
from simulator import sequences as seq
from simulator.apps import APPS, Hangup, OriginateCompleted
from simulator.events import url_encode
from simulator.fields import Q850, initial_fields, times, usec, variable_lines
from simulator.ringing import Ringing
from simulator.scenario import REFUSALS
from simulator.templates import EVENTS

logger = logging.getLogger(__name__)

# the hangup time shows from the HANGUP call state on (captures 01, 03, 04)
_HANGUP_STATES = {
    key
    for key, text in EVENTS.items()
    if text.startswith('Event-Name: CHANNEL_CALLSTATE\n') and '\nChannel-Call-State: HANGUP\n' in text
}
DIGIT_GAP = 0.3  # seconds between the digits of one scripted key press


class Channel(Ringing):
    """A simulated outbound channel. Created by the simulator on originate; `start()` runs it."""

    def __init__(self, switch, uuid, target, variables, behaviour, job=None, origin_arg=''):
        self.switch = switch
        self.uuid = uuid
        self.target = target
        self.variables = dict(variables)
        self.behaviour = behaviour
        self.job = job
        self.origin_arg = origin_arg
        self.app_vars = {}
        self.late_vars = {}  # set after the callee hung up
        self.state = 'down'
        self.created = switch.clock.now()
        self.progress = self.progress_media = self.answered = self.ended = None
        self.hangup_cause = None
        self.remote_hangup = False
        self.originating = False  # answered, but the originate has not completed: CS_CONSUME_MEDIA
        self.app_running = False
        self.park_expires = None  # (epoch second, cause) from park_timeout
        self.kills_failed = 0  # uuid_kills that left it up (behaviour.kill_fails)
        self.inbox = Queue()
        self.pending = deque()
        self.result = AsyncResult()
        self.digits_dialed = ''
        self.park_uuid = str(uuidlib.uuid4())
        self._timers = []
        self.greenlet = None
        self.varied = switch.scenario.vary_order()  # the other captured order of the racing events
        self.fields = initial_fields(switch, uuid, target, self.variables, self.created, job, origin_arg)

    # ---- public surface used by the simulator -------------------------------------------------

    def start(self):
        self.greenlet = gevent.spawn(self._run)
        return self

    def hangup(self, cause='NORMAL_CLEARING', remote=False):
        """Hang up now (CHANNEL_HANGUP is fired before this returns); False if already hanging up."""
        if self.hangup_cause is not None or self.state == 'destroyed':
            return False
        self.hangup_cause = cause
        self.remote_hangup = remote
        self.ended = self.switch.clock.now()
        self._set_cause(cause, Q850.get(cause, 16))
        if self.state == 'down':  # not started yet: _run cancels it after the first events
            self.fields['disposition'] = 'send_cancel'
        elif self.state in ('answered', 'early'):
            self.fields['disposition'] = 'recv_bye' if remote else 'send_bye'
            if remote:  # the callee's BYE
                self.fields.update(sip_status='200', sip_proto='sip%3A200', sip_term_cause='16')
            self._fire_all(self._hangup_sequence()[0])
        else:
            self.fields['disposition'] = 'send_cancel'
            self._fire_all(seq.NO_ANSWER[0])
        self.inbox.put(('hangup',))
        return True

    def execute(self, request):
        """Queue an application; it runs after the one running now, as FreeSWITCH queues sendmsg."""
        self.inbox.put(('execute', request))

    def getvar(self, name):
        """The channel variable as uuid_getvar reports it ('_undef_' when unset)."""
        for source in (self.late_vars, self.app_vars, self.variables, self._core_vars()):
            if name in source:
                return source[name]
        return '_undef_'

    def kill_silently(self):
        """Vanish without a single event (simulated restart of the switch)."""
        if not self.result.ready():  # a blocking api originate must not wait forever
            self.result.set('-ERR NORMAL_TEMPORARY_FAILURE\n')
        self._cancel_timers()
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
        self.state = 'destroyed'

    # ---- the call's life ------------------------------------------------------------------------

    def _run(self):
        outcome = self.behaviour.outcome
        try:
            tag = 'kill' if outcome == 'answer' else 'noanswer' if outcome == 'no_answer' else REFUSALS[outcome][4]
            self._fire_all(seq.START[tag])
            if self.hangup_cause is not None:  # hung up before it got going
                self._fire_all(seq.NO_ANSWER[0])
                self._cancelled()
                return
            self.state = 'ringing'
            try:
                self._ring_phase(outcome)
            except Hangup:
                self._cancelled()
                return
            if self.state in ('answered', 'early'):
                self._serve()
        finally:
            self._cancel_timers()
            self.state = 'destroyed'
            self.switch.gone(self)

    def _answer(self):
        self._fire_all(seq.MEDIA)
        self.answered = self.switch.clock.now()
        self.state = 'answered'
        self.fields['answered_us'] = usec(self.answered)
        self._fire_all(seq.ANSWER_01 if self.varied else seq.ANSWER)
        self._schedule_callee()
        if self.result.ready():  # the originate already completed on early media
            return
        delay = self.switch.scenario.originate_completes_after
        if delay > 0:  # an execute arriving meanwhile runs in CS_CONSUME_MEDIA (see docs/simulator.md)
            self.originating = True
            self._later(delay, self.inbox.put, ('originated',))
        else:
            self._complete_originate()

    def _complete_originate(self, park=True):
        """originate_function: set CS_EXECUTE, then +OK (BACKGROUND_JOB); the session thread parks."""
        self.originating = False
        self._job_result('+OK %s\n' % self.uuid)
        if park:
            self._park()

    def _park(self):
        self._set_app('park', '', self.park_uuid)
        self._set_var('current_application', 'park')
        self._set_last_app('park', '')
        keys = seq.ANSWER_AFTER_JOB_01 if self.varied else seq.ANSWER_AFTER_JOB
        self._fire_all(keys[:-1])  # up to CHANNEL_EXECUTE(park); switch_ivr_park fires CHANNEL_PARK
        self._take_park_timeout()
        self._fire_all(keys[-1:])

    def _take_park_timeout(self):
        """switch_ivr_park (switch_ivr.c:985-996): park_timeout=<s>[:<cause>] is consumed (unset)
        and the call is hung up with the cause once the epoch second reaches start + s."""
        value = self.variables.pop('park_timeout', None)
        if value is None:
            return
        self.fields['_orig'] = variable_lines(self.variables)
        seconds, _, cause = value.partition(':')
        try:
            seconds = int(seconds)
        except ValueError:
            seconds = 0  # atoi
        if seconds >= 0:
            now = self.switch.clock.now()
            self.park_expires = (math.floor(now) + seconds, cause or 'NORMAL_CLEARING')
            # only wakes _serve, which hangs up between apps once the second is reached
            self._later(self.park_expires[0] - now + 0.001, self.inbox.put, ('park_timeout',))

    def _serve(self):
        """Parked: run queued applications, let DTMF through, until the call is hung up."""
        while True:
            if self.park_expires and self.switch.clock.now() >= self.park_expires[0]:
                self.hangup(self.park_expires[1])  # checked between apps, as park's loop does
                self.park_expires = None
            if self.pending:
                self._execute(self.pending.popleft())
                continue
            message = self.inbox.get()
            if message[0] == 'hangup':
                break
            self._handle(message)
        self._finish_answered()

    def _finish_answered(self):
        if self.originating:  # hung up within the originate's last moments: it still reports +OK
            self._complete_originate()
        self._set_app('park', '', self.park_uuid)
        self.fields['app_resp'] = self._app_response()
        self._set_times()
        self._fire_all(self._hangup_sequence()[1])

    def _app_response(self):
        """What CHANNEL_EXECUTE_COMPLETE says: current_application_response, or _none_ (switch_core_session.c:2968)."""
        value = self.getvar('current_application_response')
        return url_encode('_none_' if value == '_undef_' else value)

    def _hangup_sequence(self):
        if self.remote_hangup:
            return seq.HANGUP_REMOTE
        return seq.HANGUP_SHUTDOWN if self.hangup_cause == 'SYSTEM_SHUTDOWN' else seq.HANGUP_LOCAL

    def _handle(self, message):
        kind = message[0]
        if kind == 'answer':
            self._answer()
        elif kind == 'originated':
            self._complete_originate()
        elif kind == 'execute':
            self.pending.append(message[1])
        elif kind == 'dtmf':
            self._dtmf(message[1])
        elif kind == 'hangup':
            raise Hangup()

    # ---- applications ----------------------------------------------------------------------------

    def _execute(self, request):
        app = APPS.get(request.app)
        self.switch.record_app(self, request)
        if app is None:
            logger.warning('channel %s: invalid application %s', self.uuid, request.app)
            self.hangup('DESTINATION_OUT_OF_ORDER')
            return
        self._set_last_app(request.app, request.arg)
        if request.sendmsg_text is not None:  # sendmsg runs the app in a loop of one
            self._set_var('current_loop', '1')
            self._set_var('total_loops', '1')
        self._set_var('current_application', request.app)
        self._set_var('current_application_data', request.arg)
        self._set_var('current_application_response', None)  # switch_core_session.c:2942
        self._set_app(request.app, request.arg, request.app_uuid)
        self.switch.fire(seq.EXECUTE if request.arg else seq.EXECUTE_NODATA, self.fields)
        self._set_var('current_application', request.app)  # set anew once running, as captured
        parked_after = False
        self.app_running = True
        try:
            app(self, request.arg)
        except Hangup:
            self.inbox.put(('hangup',))  # finish the hangup in _serve after this completion
        except OriginateCompleted:
            parked_after = True
        finally:
            self.app_running = False
        self._set_app(request.app, request.arg, request.app_uuid)
        self.fields['app_resp'] = self._app_response()
        if self.hangup_cause is None:
            key = seq.EXECUTE_COMPLETE if request.arg else seq.EXECUTE_COMPLETE_NODATA
        else:
            key = seq.EXECUTE_COMPLETE_HUNGUP_DATA if request.arg else seq.EXECUTE_COMPLETE_HUNGUP
        self.switch.fire(key, self.fields)
        self._set_var('current_loop', None)
        self._set_var('total_loops', None)
        if request.sendmsg_text is not None:
            self.fire(seq.PRIVATE_COMMAND, _sendmsg=request.sendmsg_text)
        if parked_after:  # the session thread now enters CS_EXECUTE and runs &park()
            self._park()

    def wait(self, seconds, stop=None):
        """Let `seconds` of simulated time pass while an app runs.

        Returns the first DTMF digit for which `stop(digit)` is true (None when time ran out).
        Every digit fires its DTMF event. Raises NotReady when switch_channel_ready() turns false
        meanwhile: Hangup when the call is hung up, OriginateCompleted when the app was started
        in CS_CONSUME_MEDIA and the originate completes (the job result is out by then).
        """
        return self._wait_until(self.switch.clock.now() + seconds, stop)

    def _wait_until(self, deadline, stop=None):
        while True:
            remaining = deadline - self.switch.clock.now()
            if remaining <= 0:
                return None
            try:
                message = self.inbox.get(timeout=self.switch.clock.real(remaining))
            except Empty:
                return None
            if message[0] == 'dtmf' and self.state in ('answered', 'early'):
                self._dtmf(message[1])
                if stop is not None and stop(message[1]):
                    return message[1]
            elif message[0] == 'originated' and self.app_running:
                self._complete_originate(park=False)  # the app ends first, then park runs
                raise OriginateCompleted()
            elif message[0] in ('hangup', 'execute', 'answer', 'originated'):
                self._handle(message)

    def set_var(self, name, value):
        """Set (or with None, unset) a channel variable; a set variable moves to the end, as in FreeSWITCH."""
        self._set_var(name, value)

    def fire(self, key, **fields):
        """Fire template `key` for this channel with extra slot values (its hung-up form once the
        call is hung up)."""
        self.fields.update(fields)
        self.switch.fire(seq.HUNG_UP.get(key, key) if self.hangup_cause else key, self.fields)

    def _dtmf(self, digit):
        self.digits_dialed += digit
        self.fields['digits_dialed'] = url_encode(self.digits_dialed)
        self.fields['digit'] = url_encode(digit)
        self.switch.fire(seq.DTMF, self.fields)

    # ---- callee script -----------------------------------------------------------------------------

    def _schedule_callee(self):
        for offset, digits in self.behaviour.keys:
            for i, digit in enumerate(digits):
                self._later(offset + i * DIGIT_GAP, self.inbox.put, ('dtmf', digit))
        if self.behaviour.hangup_after is not None:
            self._later(self.behaviour.hangup_after, self.hangup, 'NORMAL_CLEARING', True)

    def _later(self, seconds, func, *args):
        self._timers.append(gevent.spawn_later(self.switch.clock.real(seconds), func, *args))

    def _cancel_timers(self):
        for timer in self._timers:
            timer.kill(block=False)
        self._timers = []

    # ---- fields --------------------------------------------------------------------------------------

    def _core_vars(self):
        return {
            'uuid': self.uuid,
            'call_uuid': self.uuid,
            'channel_name': self.target.channel_name,
            'direction': 'outbound',
            'is_outbound': 'true',
        }

    def _set_var(self, name, value):
        # after the callee's BYE, sofia's sip_* hangup variables sit between the variables set
        # before and after it (capture 11): those set after go to the {_app_late} slot
        late = self.remote_hangup and self.hangup_cause is not None
        self.app_vars.pop(name, None)
        self.late_vars.pop(name, None)
        if value is not None:
            (self.late_vars if late else self.app_vars)[name] = str(value)
        self.fields['_app'] = variable_lines(self.app_vars)
        self.fields['_app_late'] = variable_lines(self.late_vars)

    def _set_last_app(self, app, arg):
        self.fields['last_app'] = url_encode(app)
        self.fields['_last_arg'] = 'variable_last_arg: %s\n' % url_encode(arg) if arg else ''

    def _set_app(self, app, arg, app_uuid):
        self.fields.update(app=url_encode(app), app_data=url_encode(arg), app_uuid=app_uuid)

    def _set_cause(self, cause, q850):
        self.fields.update(cause=cause, q850=str(q850))

    def _set_times(self):
        self.fields.update(times(self.created, self.progress, self.answered, self.ended))

    def _job_result(self, text):
        if not self.result.ready():
            self.result.set(text)
        self.switch.job_done(self.job, 'originate', self.origin_arg, text)

    def _fire_all(self, keys):
        fire, fields = self.switch.fire, self.fields
        for key in keys:
            if key in _HANGUP_STATES:
                fields['hangup_us'] = usec(self.ended)
                fire(key, fields)
                hook.run(self)  # CS_HANGUP: after the HANGUP call state, before HANGUP_COMPLETE
                continue
            fire(key, fields)
