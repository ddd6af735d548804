"""Helpers for the simulator tests: a raw ESL client, capture replay, and a normalising comparator.

The comparator holds the simulator to the real captures: message by message, header for header
(names, order, values) after uuids, times, counters and host details are normalised.
"""

import difflib
import json
import os
import re
import socket
import struct
import time
import wave

from simulator.capture import event_headers, read_transcript, split_message
from tests import esl_fixtures

CAPTURES = str(esl_fixtures.CAPTURES)  # one place decides where the captures are
# event types the simulator produces; everything else a real ALL subscription shows is left out
IMPLEMENTED = {
    'API',
    'BACKGROUND_JOB',
    'CHANNEL_OUTGOING',
    'CHANNEL_STATE',
    'CHANNEL_CREATE',
    'CHANNEL_ORIGINATE',
    'CHANNEL_PROGRESS',
    'CHANNEL_CALLSTATE',
    'CODEC',
    'CHANNEL_ANSWER',
    'CALL_UPDATE',
    'CHANNEL_EXECUTE',
    'CHANNEL_PARK',
    'CHANNEL_UNPARK',
    'CHANNEL_EXECUTE_COMPLETE',
    'PLAYBACK_START',
    'PLAYBACK_STOP',
    'DTMF',
    'PRIVATE_COMMAND',
    'CHANNEL_HANGUP',
    'CHANNEL_HANGUP_COMPLETE',
    'CHANNEL_DESTROY',
    'SHUTDOWN',
    'CUSTOM',
}
# These events race the channel's state machine in the real switch: the same event showed a
# different channel state, dialplan flag and caller-id flip from one capture to the next
# (e.g. CALL_UPDATE before or after the ACTIVE call state: 01 vs 02). Their snapshot is not compared.
RACING = {'CHANNEL_CALLSTATE', 'CALL_UPDATE', 'CHANNEL_PROGRESS'}
# what the 180 Ringing changes, for events a test declares overtaken by it
RING_SNAPSHOT = {'Channel-Call-State', 'Caller-Network-Addr', 'Caller-Channel-Progress-Time'}
RACING_SNAPSHOT = {
    'Channel-State',
    'Channel-State-Number',
    'Channel-HIT-Dialplan',
    'Caller-Caller-ID-Name',
    'Caller-Caller-ID-Number',
    'Caller-Callee-ID-Name',
    'Caller-Callee-ID-Number',
}
_UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')
_TIME_HEADERS = re.compile(
    r'^(Event-Date-Timestamp|Caller-(Profile-Created|Channel-(Created|Answered|Progress|Hangup))-Time|'
    r'variable_(\w+_)?(epoch|uepoch))$'
)
_DATE_HEADERS = re.compile(r'^(Event-Date-(Local|GMT)|variable_\w+_stamp)$')
# values that differ from call to call in the real switch too: compared by shape only
_VOLATILE = re.compile(
    r'^(Event-Sequence|variable_session_id|variable_local_media_port|variable_remote_media_port|'
    r'variable_rtp_\w+|variable_sip_(call_id|from_tag|to_tag|cseq|full_via|recover_via|full_from|full_to)|'
    r'variable_switch_r_sdp|variable_digits_dialed|Up-Time|Uptime-msec|Session-\w+|Idle-CPU|'
    r'variable_playback_\w+|Core-UUID|variable_\w*(sec|msec|usec)|variable_[mu]?duration)$'
)


class RawClient:
    """A bare ESL client on a real socket: sends commands, collects every message with its time."""

    def __init__(self, address, timeout=5.0):
        self.sock = socket.create_connection(address, timeout=timeout)
        self._buffer = b''
        self.messages = []
        self._parsed = {}  # id(message) -> (message, headers); holding the message keeps its id unique
        self.eof = False

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def command(self, text):
        """Send a command and return the next command/reply or api/response (events are kept)."""
        start = len(self.messages)
        self.send(text.rstrip('\n') + '\n\n')
        while True:
            for message in self.messages[start:]:
                if content_type(message) in ('command/reply', 'api/response'):
                    self.messages.remove(message)
                    return message
            start = len(self.messages)
            if not self.read_one():
                raise AssertionError('connection closed before the reply to %r' % text)

    def read_one(self, timeout=None):
        """Read one message into `messages`; False on EOF or timeout."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            while True:
                message = self._take()
                if message is not None:
                    self.messages.append(message)
                    return True
                data = self.sock.recv(65536)
                if not data:
                    self.eof = True
                    return False
                self._buffer += data
        except (TimeoutError, OSError):
            return False
        finally:
            if timeout is not None:
                self.sock.settimeout(5.0)

    def read_until(self, predicate, timeout=5.0):
        """Read until predicate(messages) is true; returns it (False on timeout/EOF)."""
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            left = deadline - time.monotonic()
            if left <= 0 or not self.read_one(left):
                return predicate(self.messages)
        return True

    def events(self, name=None):
        """The text/event-plain messages received so far as header dicts (optionally one name)."""
        found = []
        for message in self.messages:
            cached = self._parsed.get(id(message))
            if cached is None:
                cached = self._parsed[id(message)] = (message, _plain_headers(message))
            headers = cached[1]
            if headers and (name is None or headers.get('Event-Name') == name):
                found.append(headers)
        return found

    def close(self):
        self.sock.close()

    def _take(self):
        end = self._buffer.find(b'\n\n')
        if end < 0:
            return None
        head = self._buffer[: end + 2]
        match = re.search(rb'(?m)^Content-Length: (\d+)$', head)
        size = int(match.group(1)) if match else 0
        if len(self._buffer) < end + 2 + size:
            return None
        message = self._buffer[: end + 2 + size]
        self._buffer = self._buffer[end + 2 + size :]
        return message


def _plain_headers(message):
    if content_type(message) != 'text/event-plain':
        return {}
    return dict(event_headers(split_message(message)[1])[0])


def content_type(message):
    return dict(split_message(message)[0]).get('Content-Type')


def login(address, password='ClueCon', events='plain ALL'):
    client = RawClient(address)
    assert client.read_until(lambda m: len(m) >= 1)
    client.messages.clear()
    assert b'+OK accepted' in client.command('auth %s' % password)
    if events:
        client.command('event %s' % events)
    return client


def write_wav(path, seconds, rate=8000):
    """A silent 16-bit mono WAV of the given length."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(path, 'wb') as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(struct.pack('<h', 0) * int(seconds * rate))


# ---- replay ---------------------------------------------------------------------------------------


def capture_messages(name):
    """(sent commands, received messages) of a capture, in order; each send knows how many
    comparable messages the switch had sent before it."""
    sends, received = [], []
    for record in read_transcript(os.path.join(CAPTURES, name + '.log')):
        if record.kind == 'SEND':
            sends.append((record.data.decode(), sum(1 for m in received if _paces(m))))
        else:
            received.append(record.data)
    return sends, received


def replay(address, name, rewrite=lambda text: text, after_sends=None, timeout=5.0):
    """Send the capture's commands to the simulator, each once the simulator has sent as many
    comparable messages as FreeSWITCH had before it; return every message received."""
    sends, received = capture_messages(name)
    client = RawClient(address)
    for text, seen in sends:
        assert client.read_until(lambda m, seen=seen: sum(1 for x in m if _paces(x)) >= seen, timeout), (
            'simulator sent %d comparable messages before %r, the capture %d:\n%s'
            % (sum(1 for x in client.messages if _paces(x)), text.split('\n')[0], seen, _names(client.messages))
        )
        client.send(rewrite(text))
    total = sum(1 for m in received if _paces(m))
    if after_sends is not None:
        before = _count_before(received, after_sends[0])
        client.read_until(lambda m: sum(1 for x in m if _paces(x)) >= before, timeout)
        after_sends[1]()
    client.read_until(lambda m: client.eof or sum(1 for x in m if _paces(x)) >= total, timeout)
    client.read_until(lambda m: client.eof, 0.3)
    client.close()
    return client.messages, received


def _count_before(received, event):
    count = 0
    for message in received:
        if _event_name(message) == event:
            return count
        count += _paces(message)
    return count


def _paces(message):
    name = _event_name(message)
    return name is None or (name in IMPLEMENTED and name != 'API')


def _event_name(message):
    ctype = content_type(message)
    body = split_message(message)[1]
    if ctype == 'text/event-plain':
        return dict(event_headers(body)[0]).get('Event-Name')
    if ctype == 'text/event-json':
        return json.loads(body).get('Event-Name')
    return None


def _names(messages):
    return ' '.join(_event_name(m) or content_type(m) for m in messages)


# ---- normalise & compare --------------------------------------------------------------------------


def comparable(messages, keep_uuids=(), ring_races=()):
    """Group messages: ('replies', [...]), per-channel event lists, API events; each message becomes
    a list of normalised 'Name: value' lines."""
    replies, channels, api_events, others = [], {}, [], []
    order = []
    for message in messages:
        outer, body = split_message(message)
        ctype = dict(outer).get('Content-Type')
        if ctype in ('text/event-plain', 'text/event-json'):
            headers, inner = _event(ctype, body)
            name = dict(headers).get('Event-Name')
            if name not in IMPLEMENTED:
                continue
            lines = normalise(headers, inner, keep_uuids, ring_races)
            uuid = dict(headers).get('Unique-ID') or _job_channel(headers, inner)
            if name == 'API':
                api_events.append(lines)
            elif uuid:
                if uuid not in channels:
                    order.append(uuid)
                channels.setdefault(uuid, []).append(lines)
            else:
                others.append(lines)
        else:
            head = ['%s: %s' % (k, normalise_text(v, keep_uuids)) for k, v in outer if k != 'Content-Length']
            dump = _event_dump(body)
            if dump is not None:  # uuid_dump json: an event in an api/response
                replies.append(head + normalise(dump, None, keep_uuids))
            else:
                replies.append(head + normalise_text(body.decode(), keep_uuids).split('\n'))
    return {'replies': replies, 'channels': [channels[u] for u in order], 'api': api_events, 'others': others}


def _event_dump(body):
    if not body.startswith(b'{"Event-Name"'):
        return None
    return json.loads(body, object_pairs_hook=lambda pairs: pairs)


def _event(ctype, body):
    if ctype == 'text/event-json':
        data = json.loads(body, object_pairs_hook=lambda pairs: pairs)
        inner = dict(data).get('_body')
        return [(k, v) for k, v in data if k != '_body'], inner
    headers, inner = event_headers(body)
    return headers, inner


def _job_channel(headers, inner):
    fields = dict(headers)
    if fields.get('Event-Name') != 'BACKGROUND_JOB':
        return None
    match = _UUID.search(fields.get('Job-Command-Arg', ''))
    return match.group(0) if match else None


def normalise(headers, inner, keep_uuids=(), ring_races=()):
    lines = []
    event = dict(headers).get('Event-Name')
    for name, value in headers:
        if event in RACING and name in RACING_SNAPSHOT:
            continue
        if event in ring_races and name in RING_SNAPSHOT:
            continue
        if event == 'CALL_UPDATE' and name == 'Channel-Call-State':
            value = '<RINGING|ACTIVE>'
        elif name in ('Content-Length',):
            value = '<len>'
        elif _TIME_HEADERS.match(name):
            value = '<time>' if value not in ('0', '') else value
        elif _DATE_HEADERS.match(name):
            value = '<date>' if value else value
        elif _VOLATILE.match(name):
            value = '<num>' if value.replace('.', '').isdigit() else ('<str>' if value else '')
        else:
            value = normalise_text(value, keep_uuids)
        lines.append('%s: %s' % (name, value))
    if inner is not None:
        lines.append('<body> ' + normalise_text(inner, keep_uuids))
    return lines


def normalise_text(text, keep_uuids=()):
    text = _UUID.sub(lambda m: m.group(0) if m.group(0) in keep_uuids else '<uuid>', text)
    text = re.sub(r'/tmp/[^ \n"!]*?/sounds/', '/usr/local/freeswitch/share/freeswitch/sounds/', text)
    text = re.sub(r'\d+ (years|days|hours|minutes|seconds|milliseconds|microseconds)', r'<n> \1', text)
    text = re.sub(r'"created(_epoch)?":"[^"]*"', r'"created\1":"<time>"', text)
    text = re.sub(r'\d+ session\(s\)', '<n> session(s)', text)
    text = re.sub(r'(peak|5min|idle cpu) [\d./]+', r'\1 <n>', text)
    return text


def assert_same(expected, actual, what):
    """Fail with a readable unified diff of the first differing message."""
    for index, (want, got) in enumerate(zip(expected, actual)):
        if want != got:
            diff = '\n'.join(difflib.unified_diff(want, got, 'capture', 'simulator', lineterm='', n=2))
            raise AssertionError('%s: message %d differs (- capture, + simulator)\n%s' % (what, index, diff))
    if len(expected) != len(actual):
        names = lambda msgs: [m[0] for m in msgs]  # noqa: E731
        raise AssertionError(
            '%s: %d messages in the capture, %d from the simulator\ncapture:   %s\nsimulator: %s'
            % (what, len(expected), len(actual), names(expected), names(actual))
        )


# events whose relative order on a channel the captures show as fixed; the others (CHANNEL_STATE,
# CALLSTATE, CALL_UPDATE, PROGRESS...) came in varying order across runs of the real switch
ORDERED = (
    'CHANNEL_CREATE',
    'CHANNEL_ANSWER',
    'BACKGROUND_JOB',
    'CHANNEL_EXECUTE',
    'PLAYBACK_START',
    'PLAYBACK_STOP',
    'CHANNEL_EXECUTE_COMPLETE',
    'CHANNEL_HANGUP',
    'CHANNEL_HANGUP_COMPLETE',
    'CHANNEL_DESTROY',
)


def compare(expected_messages, actual_messages, keep_uuids=(), skip_replies=(), ring_races=()):
    """Hold the simulator's messages to the capture's; raises AssertionError with a diff.

    Replies are compared in order. A channel's events are paired by (Event-Name, n-th of that name)
    and compared header for header; the order of the ORDERED events must match too.
    ring_races: event names whose ringing-related headers are not compared (see RING_SNAPSHOT).
    """
    assert_framing(expected_messages, actual_messages)
    want = comparable(expected_messages, keep_uuids, ring_races)
    got = comparable(actual_messages, keep_uuids, ring_races)
    keep = lambda replies: [r for i, r in enumerate(replies) if i not in skip_replies]  # noqa: E731
    assert_same(keep(want['replies']), keep(got['replies']), 'replies')
    assert len(want['channels']) == len(got['channels']), 'channels: %d in the capture, %d from the simulator' % (
        len(want['channels']),
        len(got['channels']),
    )
    for number, (want_events, got_events) in enumerate(zip(want['channels'], got['channels'])):
        what = 'channel %d' % (number + 1)
        assert_same(_ordered(want_events), _ordered(got_events), what + ' order of key events')
        assert_same(_by_name(want_events), _by_name(got_events), what + ' events')
    assert_same(sorted(want['api']), sorted(got['api']), 'API events')
    assert_same(want['others'], got['others'], 'other events')


def assert_framing(expected_messages, actual_messages):
    """Outer headers: the same names in the same order as the capture for each Content-Type
    (events put Content-Length first, replies Content-Type first), and every Content-Length exact."""
    shapes = {}
    for message in expected_messages:
        outer, _body = split_message(message)
        shapes.setdefault(dict(outer).get('Content-Type'), set()).add(tuple(name for name, _ in outer))
    for index, message in enumerate(actual_messages):
        outer, body = split_message(message)
        ctype = dict(outer).get('Content-Type')
        names = tuple(name for name, _ in outer)
        assert ctype in shapes and names in shapes[ctype], 'message %d: outer headers %s, the capture has %s for %s' % (
            index,
            names,
            shapes.get(ctype),
            ctype,
        )
        length = dict(outer).get('Content-Length')
        assert length is None or int(length) == len(body), 'message %d: Content-Length %s, body %d bytes' % (
            index,
            length,
            len(body),
        )


def _ordered(events):
    return [[event[0]] for event in events if event[0].split(': ', 1)[1] in ORDERED]


def _by_name(events):
    return sorted(events, key=lambda event: event[0])  # stable: keeps the n-th of each name paired


def sent_uuids(name):
    """The uuids the client itself sent in a capture (they must come back unchanged)."""
    sends, _ = capture_messages(name)
    return set(_UUID.findall(' '.join(text for text, _ in sends)))
