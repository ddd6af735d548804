"""Scripted callees: who answers, refuses, rings out, presses keys or hangs up, per dialled number.

A scenario is a TOML file (see docs/simulator.md). Every duration is in simulated seconds; the
simulator's --time-scale compresses them all.
"""

import fnmatch
import random
import re
import tomllib
from dataclasses import dataclass, field, replace

from daemon.errors import AutocallError

# outcome -> (Hangup-Cause, q850, SIP status, SIP phrase, capture tag whose events are used)
REFUSALS = {
    'busy': ('USER_BUSY', 17, 486, 'Busy Here', 'busy'),
    'decline': ('CALL_REJECTED', 21, 603, 'Decline', 'decline'),
    'unallocated': ('UNALLOCATED_NUMBER', 1, 404, 'Not Found', 'busy'),
    'no_user_response': ('NO_USER_RESPONSE', 18, 480, 'Temporarily Unavailable', 'busy'),
    'invalid_number': ('INVALID_NUMBER_FORMAT', 28, 484, 'Address Incomplete', 'busy'),
    'unreachable': ('NORMAL_TEMPORARY_FAILURE', 41, 503, 'Service Unavailable', 'unreach'),
}
OUTCOMES = ('answer', 'no_answer') + tuple(REFUSALS)
DEFAULT_PROFILES = ('lo', 'internal', 'external')
ORIGINATE_COMPLETES_AFTER = 0.02


class ScenarioError(AutocallError):
    """The scenario file is invalid; the message says where."""


@dataclass(frozen=True)
class Behaviour:
    """What one callee does. Times are simulated seconds.

    outcome: 'answer', 'no_answer' (rings until originate_timeout) or a key of REFUSALS.
    ring: seconds of ringing before a refusal (0: refused at once, no 180).
    answer_after: seconds from originate to answer.
    hangup_after: the callee hangs up this long after answer (None, "never" in TOML: we must hang up).
    keys: (offset after answer, digits) pairs; several digits are pressed 0.3 s apart.
    early_media: seconds from originate to a 183 with media (None: no early media). Unless the
    originate says ignore_early_media=true, that 183 completes the originate, as in FreeSWITCH.
    kill_fails: the first this many `uuid_kill`s of the channel leave it up, answering
    kill_reply: 'err' (`-ERR No such channel!`, as switch_core_session_locate does when it cannot
    take the session's read lock) or 'ok' (`+OK`, the kill queued, but a media bug holding the
    session keeps it from ending: signalwire/freeswitch#1673).
    """

    outcome: str = 'answer'
    ring: float = 0.0
    answer_after: float = 1.0
    hangup_after: float | None = 30.0
    keys: tuple = ()
    early_media: float | None = None
    kill_fails: int = 0
    kill_reply: str = 'err'


KILL_REPLIES = ('err', 'ok')


@dataclass(frozen=True)
class Gateway:
    """A sofia gateway as the switch knows it. proxy: host[:port] of the far end (sofia.c:3995-4028
    defaults it to the realm, which defaults to the gateway's name); user_agent and allow: what
    its 180/200 carry in User-Agent and Allow (sip_user_agent, sip_allow; None: no such header)."""

    name: str
    profile: str = 'external'
    proxy: str = ''
    user_agent: str | None = 'Simulated Carrier'
    allow: str | None = 'INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK'

    def __post_init__(self):
        if not self.proxy:
            object.__setattr__(self, 'proxy', self.name)


@dataclass(frozen=True)
class _Rule:
    kind: str  # 'exact', 'glob' or 'regex'
    pattern: str
    behaviour: Behaviour

    def matches(self, number):
        if self.kind == 'exact':
            return number == self.pattern
        if self.kind == 'glob':
            return fnmatch.fnmatchcase(number, self.pattern)
        return re.search(self.pattern, number) is not None


@dataclass
class Scenario:
    """Resolves a dialled number to a Behaviour; knows which gateways and profiles exist."""

    rules: list = field(default_factory=list)
    default: Behaviour = field(default_factory=Behaviour)
    mix: list | None = None  # [(weight, outcome, ranges dict)]
    gateways: dict | None = None  # name -> Gateway; None: every name is a default Gateway
    profiles: frozenset = frozenset(DEFAULT_PROFILES)
    event_order: str = 'captured'  # or 'varied': each call takes one of the orders captured
    # simulated seconds from CHANNEL_ANSWER to the originate's completion (BACKGROUND_JOB, park);
    # an execute arriving meanwhile runs in CS_CONSUME_MEDIA and is cut short (capture 13: ~20 ms)
    originate_completes_after: float = ORIGINATE_COMPLETES_AFTER
    # simulated seconds from a channel's creation until `show channels` lists it: the real switch
    # reads that list from its core database, which its SQL thread fills after the events
    show_channels_lag: float = 0.0
    unreadable: tuple = ()  # absolute paths or globs the switch cannot open although they exist
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def behaviour_for(self, number, address=None):
        """The first rule matching the number (or the whole 'number@host:port') wins; else one
        drawn from the random mix; else the default."""
        for rule in self.rules:
            if rule.matches(number) or (address is not None and rule.matches(address)):
                return rule.behaviour
        if self.mix:
            return self._draw()
        return self.default

    def vary_order(self):
        """Whether the next call uses the other captured order of its racing events."""
        return self.event_order == 'varied' and self.rng.random() < 0.5

    def knows_gateway(self, name):
        return self.gateways is None or name in self.gateways

    def gateway(self, name):
        """The gateway called `name` (a default one when the scenario lists none)."""
        return Gateway(name) if self.gateways is None else self.gateways[name]

    def knows_profile(self, name):
        return name in self.profiles

    def _draw(self):
        weights = [weight for weight, _outcome, _ranges in self.mix]
        _weight, outcome, ranges = self.rng.choices(self.mix, weights=weights)[0]
        values = {}
        for name, value in ranges.items():
            if name == 'keys':
                values['keys'] = _keys(value, 'random')
            elif isinstance(value, list):
                values[name] = self.rng.uniform(float(value[0]), float(value[1]))
            else:
                values[name] = value
        return replace(self.default, outcome=outcome, **values)


def load(path, seed=None):
    """Read a scenario TOML file. Raises ScenarioError with the offending key on bad input."""
    try:
        with open(path, 'rb') as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError('cannot read scenario %s: %s' % (path, exc)) from exc
    return from_dict(data, seed=seed)


def from_dict(data, seed=None):
    """Build a Scenario from already-parsed TOML data (the same keys as the file)."""
    default = _behaviour(data.get('default', {}), Behaviour(), 'default')
    rules = [_rule(entry, default, i) for i, entry in enumerate(data.get('numbers', []))]
    scenario = Scenario(rules=rules, default=default)
    if 'gateways' in data:
        scenario.gateways = _gateways(data['gateways'])
    if 'profiles' in data:
        scenario.profiles = frozenset(data['profiles'])
    if data.get('event_order', 'captured') not in ('captured', 'varied'):
        raise ScenarioError('event_order must be "captured" or "varied", got %r' % data['event_order'])
    scenario.event_order = data.get('event_order', 'captured')
    scenario.originate_completes_after = _seconds(
        data.get('originate_completes_after', ORIGINATE_COMPLETES_AFTER), 'originate_completes_after'
    )
    scenario.show_channels_lag = _seconds(data.get('show_channels_lag', 0.0), 'show_channels_lag')
    scenario.unreadable = _paths(data.get('unreadable', []), 'unreadable')
    if 'random' in data:
        scenario.mix = _mix(data['random'])
        scenario.rng = random.Random(data['random'].get('seed', 0) if seed is None else seed)
    return scenario


def _rule(entry, default, index):
    where = 'numbers[%d]' % index
    kinds = [kind for kind in ('number', 'glob', 'regex') if kind in entry]
    if len(kinds) != 1:
        raise ScenarioError('%s needs exactly one of number, glob, regex' % where)
    kind = kinds[0]
    pattern = str(entry[kind])
    if kind == 'regex':
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ScenarioError('%s.regex: %s' % (where, exc)) from exc
    rest = {k: v for k, v in entry.items() if k != kind}
    return _Rule('exact' if kind == 'number' else kind, pattern, _behaviour(rest, default, where))


def _behaviour(values, base, where):
    known = {'outcome', 'ring', 'answer_after', 'hangup_after', 'keys', 'early_media', 'kill_fails', 'kill_reply'}
    unknown = set(values) - known
    if unknown:
        raise ScenarioError('%s: unknown key(s) %s' % (where, ', '.join(sorted(unknown))))
    outcome = values.get('outcome', base.outcome)
    if outcome not in OUTCOMES:
        raise ScenarioError('%s.outcome: %r is not one of %s' % (where, outcome, ', '.join(OUTCOMES)))
    changes = {'outcome': outcome}
    if values.get('hangup_after', 0) in (None, 'never'):
        values = dict(values)
        changes['hangup_after'] = None
        del values['hangup_after']
    for name in ('ring', 'answer_after', 'hangup_after', 'early_media'):
        if name in values:
            changes[name] = _seconds(values[name], '%s.%s' % (where, name))
    if 'keys' in values:
        changes['keys'] = _keys(values['keys'], where)
    if 'kill_fails' in values:
        fails = values['kill_fails']
        if isinstance(fails, bool) or not isinstance(fails, int) or fails < 0:
            raise ScenarioError('%s.kill_fails must be a whole number >= 0, got %r' % (where, fails))
        changes['kill_fails'] = fails
    if 'kill_reply' in values:
        if values['kill_reply'] not in KILL_REPLIES:
            raise ScenarioError(
                '%s.kill_reply: %r is not one of %s' % (where, values['kill_reply'], ', '.join(KILL_REPLIES))
            )
        changes['kill_reply'] = values['kill_reply']
    return replace(base, **changes)


def _seconds(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ScenarioError('%s must be a number of seconds >= 0, got %r' % (where, value))
    return float(value)


def _gateways(value):
    """gateways = ["a", "b"] (default settings) or [gateways.a] tables of Gateway's fields."""
    if isinstance(value, list):
        return {str(name): Gateway(str(name)) for name in value}
    if not isinstance(value, dict):
        raise ScenarioError('gateways must be a list of names or a table of gateway tables')
    fields = {'profile', 'proxy', 'user_agent', 'allow'}
    gateways = {}
    for name, settings in value.items():
        if not isinstance(settings, dict) or set(settings) - fields:
            raise ScenarioError('gateways.%s: a table of %s' % (name, ', '.join(sorted(fields))))
        gateways[name] = Gateway(name, **{k: str(v) for k, v in settings.items()})
    return gateways


def _paths(value, where):
    if not isinstance(value, list) or not all(isinstance(p, str) and p.startswith('/') for p in value):
        raise ScenarioError('%s must be a list of absolute paths or globs, got %r' % (where, value))
    return tuple(value)


def _keys(value, where):
    try:
        return tuple((float(offset), str(digits)) for offset, digits in value)
    except (TypeError, ValueError) as exc:
        raise ScenarioError('%s.keys must be a list of [seconds, "digits"] pairs' % where) from exc


def _mix(section):
    weights = section.get('weights')
    if not isinstance(weights, dict) or not weights:
        raise ScenarioError('random.weights must be a table of outcome = weight')
    mix = []
    for outcome, weight in weights.items():
        if outcome not in OUTCOMES:
            raise ScenarioError('random.weights: unknown outcome %r' % outcome)
        ranges = section.get(outcome, {})
        mix.append((float(weight), outcome, dict(ranges)))
    return mix
