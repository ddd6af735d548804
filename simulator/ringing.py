"""A channel before it is answered: ringing, early media, a refusal, ringing out at
`originate_timeout`, a cancel. Mixed into `simulator.channel.Channel`, whose timeline,
events and fields these methods use; after them the channel is answered (or early) and
parked, or over.
"""

import math

from simulator import sequences as seq
from simulator.events import url_encode
from simulator.fields import peer_lines, usec
from simulator.scenario import REFUSALS


class Ringing:
    """The ring phase of a Channel (see the module docstring)."""

    def _ring_phase(self, outcome):
        behaviour = self.behaviour
        if outcome in REFUSALS:
            if behaviour.ring > 0:
                self._ringing()
                self._wait_until(self.created + behaviour.ring)
            self._refuse(outcome)
            return
        self._ringing()
        timeout = float(self.variables.get('originate_timeout', 60) or 60)
        # originate_timeout counts whole seconds of the clock, so it fires up to 1 s early
        deadline = math.floor(self.created) + timeout
        answer_at = self.created + behaviour.answer_after if outcome == 'answer' else None
        ends_ringing = min(answer_at or deadline, deadline)
        if behaviour.early_media is not None and self.created + behaviour.early_media < ends_ringing:
            self._wait_until(self.created + behaviour.early_media)
            if self._early_media(answer_at, deadline):
                return
        if answer_at is not None and answer_at < deadline:
            self._wait_until(answer_at)
            self._answer()
        else:
            self._wait_until(deadline)
            self._no_answer()

    def _early_media(self, answer_at, deadline):
        """183 with SDP. Unless ignore_early_media=true it completes the originate: the job says
        +OK, &park() runs, apps play into the early media; True then (answer or end comes later)."""
        self.progress_media = self.switch.clock.now()
        self.fields['progress_media_us'] = usec(self.progress_media)
        self.switch.fire(seq.PROGRESS_MEDIA, self.fields)
        if self.variables.get('ignore_early_media') == 'true':
            return False
        self.state = 'early'
        self._job_result('+OK %s\n' % self.uuid)
        self._park()
        now = self.switch.clock.now()
        if answer_at is not None:
            self._later(answer_at - now, self.inbox.put, ('answer',))
        else:  # the callee never answers: the far end gives up when the originate would have
            self._later(deadline - now, self.hangup, 'NO_ANSWER', True)
        return True

    def _ringing(self):
        self.progress = self.switch.clock.now()
        self.fields['progress_us'] = usec(self.progress)
        self.fields['_peer'] = peer_lines(self.target, self.switch.scenario)
        self._fire_all(seq.RINGING)

    def _refuse(self, outcome):
        cause, q850, status, phrase, tag = REFUSALS[outcome]
        self.hangup_cause = cause
        self.ended = self.switch.clock.now()
        self._set_cause(cause, q850)
        self.fields.update(
            disposition='recv_refuse',
            sip_status=str(status),
            sip_proto='sip%%3A%d' % status,
            sip_fail_status=str(status),
            sip_phrase=url_encode(phrase),
            sip_term_cause=str(q850),
        )
        self._set_times()
        before, after = seq.REFUSED[tag]
        if self.varied:  # the job result right after CHANNEL_HANGUP, as capture 04 had it
            before, after = before[:1], before[1:] + after
        self._fire_all(before)
        self._job_result('-ERR %s\n' % cause)
        self._fire_all(after)

    def _no_answer(self):
        self.hangup_cause = 'NO_ANSWER'
        self.ended = self.switch.clock.now()
        self._set_cause('NO_ANSWER', 19)
        self.fields.update(disposition='send_cancel', sip_fail_status='487', sip_phrase='CANCEL')
        self._fire_all(seq.NO_ANSWER[0])
        self._finish_unanswered()

    def _cancelled(self):
        """Hung up by us while ringing: CHANNEL_HANGUP already went out from hangup()."""
        self.fields.update(sip_fail_status='487', sip_phrase='CANCEL')
        self._finish_unanswered()

    def _finish_unanswered(self):
        self._set_times()
        rest = seq.NO_ANSWER[1]
        if self.varied:  # the job result after CHANNEL_HANGUP_COMPLETE, as captures 03 and 05 had it
            self._fire_all(rest[:4])
            rest = rest[4:]
        self._job_result('-ERR %s\n' % self.hangup_cause)
        self._fire_all(rest)
