"""daemon.esl.ESLClient fed mutated FreeSWITCH bytes over a real loopback socket.

Each case: a tiny switch greets the client, accepts `auth` and `event plain`, waits for
the client's `api status`, then sends a stream made from the captures' real event messages,
mutated; then (usually) the `api status` reply and EOF. Whatever the bytes, the client must
neither crash nor hang: either it parses the events and the api call returns, or it marks
itself dead (`dead` set, `dead_reason` said) and the pending api call raises
ESLConnectionLost, within a bound of a few seconds.
"""

import random
import re
import time
from collections import namedtuple

import gevent
import gevent.event
import pytest
from gevent.server import StreamServer

from daemon.esl import ESLClient, ESLConnectionLost, ESLError
from tests.esl_fixtures import CAPTURES, api_response, capture_names, read_command, reply

pytestmark = pytest.mark.timeout(60)


CASE_BOUND = 3.0  # seconds any one case may take before we call it a hang
SENTINEL = '+OK the reply after the stream\n'
CLOSED = 'FreeSWITCH closed the connection'
Outcome = namedtuple('Outcome', 'names events api dead_reason reader_error elapsed')


# --- the captures, split into messages by Content-Length (independently of daemon.esl) ---


def split_messages(raw):
    """Each framed message of a .raw capture, as its exact bytes."""
    messages, pos = [], 0
    while pos < len(raw):
        end = raw.index(b'\n\n', pos) + 2
        length = re.search(rb'^Content-Length: (\d+)$', raw[pos:end], re.M)
        end += int(length.group(1)) if length else 0
        messages.append(raw[pos:end])
        pos = end
    return messages


def capture_events(name):
    """The event messages (plain and json) of one capture, in order."""
    raw = (CAPTURES / (name + '.raw')).read_bytes()
    return [m for m in split_messages(raw) if b'Content-Type: text/event-' in m.split(b'\n\n', 1)[0]]


def event_name(message):
    match = re.search(rb'(?:^Event-Name: |"Event-Name":")([A-Z_]+)', message, re.M)
    return match.group(1).decode() if match else ''


def delivered_names(messages):
    """What the client hands to on_unowned_event: every event but HEARTBEAT, which it keeps."""
    return [n for n in map(event_name, messages) if n != 'HEARTBEAT']


def outer(head, body):
    """A framed message: outer header lines (bytes), blank line, body."""
    return b''.join(line + b'\n' for line in head) + b'\n' + body


def plain(body):
    """A text/event-plain message whose outer Content-Length fits `body`."""
    return outer([b'Content-Length: %d' % len(body), b'Content-Type: text/event-plain'], body)


def tiny_event(i):
    return plain(b'Event-Name: CUSTOM\nEvent-Sequence: %d\n\n' % i)


NAMED = capture_events('09-named-events-only')  # what the daemon subscribes to, for real
ALL_EVENTS = [m for name in capture_names() for m in capture_events(name)]
FIRST = NAMED[0]


# --- the switch and the client ---


class MutantSwitch:
    """Greets, authenticates and subscribes one client like FreeSWITCH; after the client's
    first api command it sends `stream` (in random-sized chunks if `max_chunk`), then the
    api reply if `answer`, then closes unless `stay_open`."""

    def __init__(self, stream, *, answer=True, stay_open=False, max_chunk=0, rng=None):
        self.stream, self.answer, self.stay_open = stream, answer, stay_open
        self.max_chunk, self.rng = max_chunk, rng or random.Random(0)
        self.server = StreamServer(('127.0.0.1', 0), self._handle)
        self.server.start()
        self.port = self.server.server_port

    def _handle(self, sock, address):
        rfile = sock.makefile('rb')
        try:
            sock.sendall(b'Content-Type: auth/request\n\n')
            read_command(rfile)
            sock.sendall(reply('+OK accepted'))
            read_command(rfile)
            sock.sendall(reply('+OK event listener enabled plain'))
            if read_command(rfile) is None:
                return
            self._send_stream(sock)
            if self.answer:
                sock.sendall(api_response(SENTINEL))
            if self.stay_open:
                rfile.read()  # until the client hangs up
        except OSError:
            pass  # the client gave up on us first: allowed
        finally:
            sock.close()

    def _send_stream(self, sock):
        if not self.max_chunk:
            sock.sendall(self.stream)
            return
        pos = 0
        while pos < len(self.stream):
            size = self.rng.randint(1, self.max_chunk)
            sock.sendall(self.stream[pos : pos + size])
            pos += size

    def stop(self):
        self.server.stop(timeout=1)


def run_case(stream, *, heartbeat_timeout=30.0, **switch_options):
    """Connect a real ESLClient to a MutantSwitch sending `stream`; return what happened.
    Fails the test if the client has not settled (dead, api call over) within CASE_BOUND."""
    switch = MutantSwitch(stream, **switch_options)
    events = []
    client = ESLClient(
        '127.0.0.1',
        switch.port,
        'ClueCon',
        timeout=2.0,
        heartbeat_timeout=heartbeat_timeout,
        on_unowned_event=events.append,
    )
    try:
        client.connect()
        started = time.monotonic()
        call = gevent.spawn(api_or_error, client)
        settled = gevent.wait([call, client.dead], timeout=CASE_BOUND, count=2)
        elapsed = time.monotonic() - started
        assert len(settled) == 2, 'hang: dead=%s api done=%s after %.1fs' % (
            client.dead.is_set(),
            call.ready(),
            elapsed,
        )
        client._reader.join(timeout=1)
        api = call.value
        return Outcome([e.name for e in events], events, api, client.dead_reason, client._reader.exception, elapsed)
    finally:
        client.close()
        switch.stop()


def api_or_error(client):
    """The pending api call's body, or the ESLError it raised (returned, so gevent prints no traceback)."""
    try:
        return client.api('status', timeout=CASE_BOUND * 3)
    except ESLError as exc:
        return exc


def assert_settled(outcome, context=''):
    """What every case must end in, whatever its bytes: a clean reader, a stated reason,
    and the api call either answered or failed with the connection's death."""
    assert outcome.reader_error is None, context
    assert outcome.dead_reason, context
    assert outcome.api == SENTINEL or isinstance(outcome.api, ESLConnectionLost), (repr(outcome.api), context)
    if isinstance(outcome.api, ESLConnectionLost):
        assert str(outcome.api) == outcome.dead_reason, context


# --- named mutations ---


def with_outer_length(message, value):
    head, body = message.split(b'\n\n', 1)
    head = re.sub(rb'^Content-Length: .*$', b'Content-Length: ' + value, head, flags=re.M)
    return head + b'\n\n' + body


def with_inner_line(message, line):
    """The event with `line` added to its header block (outer Content-Length fixed up)."""
    body = message.split(b'\n\n', 1)[1]
    first, rest = body.split(b'\n', 1)
    return plain(first + b'\n' + line + b'\n' + rest)


def with_outer_line(message, line):
    return line + b'\n' + message


def json_event(body):
    return outer([b'Content-Length: %d' % len(body), b'Content-Type: text/event-json'], body)


def stream_of(*messages):
    return b''.join(messages)


DEAD_CASES = {
    # name: (stream, reason pattern, events before the bad one)
    'body cut short then EOF': (FIRST[: len(FIRST) // 2], r'EOF after \d+ of \d+ body bytes', 0),
    'headers cut short then EOF': (FIRST[:20], r'EOF inside the headers', 0),
    'non-numeric Content-Length': (with_outer_length(FIRST, b'12ab'), r"bad Content-Length '12ab'", 0),
    'empty Content-Length': (with_outer_length(FIRST, b''), r"bad Content-Length ''", 0),
    'negative Content-Length': (with_outer_length(FIRST, b'-5'), r'out of range: -5', 0),
    'huge Content-Length': (with_outer_length(FIRST, b'9' * 30), r'out of range', 0),
    'Content-Length past the end of the stream': (
        NAMED[1] + with_outer_length(FIRST, b'%d' % (len(FIRST) * 3)),
        r'EOF after',
        1,
    ),
    'lone CR as an outer line break': (FIRST.replace(b'\n', b'\r', 1), r"bad Content-Length '\d+\\rContent-Type", 0),
    'NUL inside Content-Length': (with_outer_length(FIRST, b'59\x0024'), r"bad Content-Length '59\\x0024'", 0),
    'outer header without colon': (
        NAMED[1] + with_outer_line(FIRST, b'garbage without colon'),
        r'header line without a name',
        1,
    ),
    'outer header with empty name': (with_outer_line(FIRST, b': value'), r'header line without a name', 0),
    'binary outer header line': (
        with_outer_line(FIRST, bytes(range(1, 10)) + b'\xff\xfe'),
        r'header line without a name',
        0,
    ),
    'event inner Content-Length not a number': (
        with_inner_line(FIRST, b'Content-Length: x'),
        r"bad Content-Length 'x'",
        0,
    ),
    'event inner Content-Length past its body': (
        with_inner_line(FIRST, b'Content-Length: 99999'),
        r'shorter than its Content-Length',
        0,
    ),
    'megabyte outer header value': (with_outer_line(FIRST, b'X-Big: ' + b'a' * 2**20), r'header line longer than', 0),
    'event-json that is not JSON': (json_event(b'{"Event-N'), r'bad event-json', 0),
    'event-json that is a list': (json_event(b'[1, 2]'), r'not one flat JSON object', 0),
    'event-json nested 100,000 deep': (json_event(b'[' * 100_000), r'bad event-json: nested too deep', 0),
    'disconnect notice mid-stream': (
        NAMED[1] + outer([b'Content-Type: text/disconnect-notice', b'Content-Length: 6'], b'bye!\n\n') + FIRST,
        r'FreeSWITCH disconnected: bye!',
        1,
    ),
}


@pytest.mark.parametrize('name', DEAD_CASES)
def test_bad_bytes_kill_the_connection_and_fail_the_pending_api_call(name):
    stream, reason, good_before = DEAD_CASES[name]
    outcome = run_case(stream, answer=False)
    assert_settled(outcome)
    assert isinstance(outcome.api, ESLConnectionLost)
    assert re.search(reason, outcome.dead_reason), outcome.dead_reason
    assert outcome.names == delivered_names([NAMED[1]])[:good_before]
    assert outcome.elapsed < 1.0


def test_body_longer_than_the_stream_while_the_switch_stays_silent_dies_of_heartbeat_silence():
    stream = with_outer_length(FIRST, b'%d' % (len(FIRST) * 3))
    outcome = run_case(stream, answer=True, stay_open=True, heartbeat_timeout=0.5)
    assert_settled(outcome)
    assert isinstance(outcome.api, ESLConnectionLost)
    assert outcome.dead_reason.startswith('no HEARTBEAT for')


def megabyte_value_event():
    return with_inner_line(FIRST, b'variable_big: ' + b'%41' * (2**20 // 3))


def parsed_case(*messages, noise=()):
    """(stream, the event messages in it): `noise` are (index, bytes) put between them."""
    parts = list(messages)
    for index, data in sorted(noise, reverse=True):
        parts.insert(index, data)
    return stream_of(*parts), list(messages)


PARSED_CASES = {
    # name: (stream, the event messages that must all arrive, in order)
    'the real named-events capture': parsed_case(*NAMED),
    'every event of every capture': parsed_case(*ALL_EVENTS),
    'megabyte header value inside an event': parsed_case(megabyte_value_event()),
    'lone CR inside event values': parsed_case(with_inner_line(FIRST, b'variable_x: a\rb\rc'), NAMED[1]),
    'NUL bytes inside event values': parsed_case(with_inner_line(FIRST, b'variable_x: a\0b%00c'), NAMED[1]),
    'binary event value with a colon': parsed_case(with_inner_line(FIRST, b'variable_x: \xff\xfe\x00\x01:')),
    'bad percent escapes in values': parsed_case(with_inner_line(FIRST, b'variable_x: %ZZ%%4%')),
    'outer header of binary bytes with a colon': parsed_case(with_outer_line(FIRST, b'\xff\xfe: \x00\x01')),
    # Events are read lazily: a line without a colon is never matched as a header, so it forges nothing.
    'event header without colon': parsed_case(with_inner_line(FIRST, b'Variable-Without-Colon'), NAMED[1]),
    'blank lines between messages': parsed_case(FIRST, NAMED[1], noise=[(0, b'\n\n'), (1, b'\n\n\n')]),
    'many tiny events': parsed_case(*(tiny_event(i) for i in range(3000))),
    'event-json with nested values and no Event-Name': parsed_case(json_event(b'{"a": {"b": [1, null]}}')),
    'unknown content type is skipped': parsed_case(
        FIRST, noise=[(0, outer([b'Content-Type: text/x-new', b'Content-Length: 3'], b'abc'))]
    ),
}


@pytest.mark.parametrize('name', PARSED_CASES)
def test_odd_but_framable_bytes_parse_and_the_api_call_returns(name):
    stream, messages = PARSED_CASES[name]
    outcome = run_case(stream, max_chunk=1500, rng=random.Random(name))
    assert_settled(outcome)
    assert outcome.api == SENTINEL
    assert outcome.dead_reason == CLOSED
    assert outcome.names == delivered_names(messages)


def test_megabyte_value_arrives_whole_and_decoded():
    outcome = run_case(megabyte_value_event())
    assert outcome.events[0].get('variable_big') == 'A' * (2**20 // 3)
    assert outcome.events[0].get('Event-Name') == event_name(FIRST)


def test_many_tiny_events_in_tiny_chunks_all_arrive_in_order():
    outcome = run_case(stream_of(*(tiny_event(i) for i in range(2000))), max_chunk=7, rng=random.Random(7))
    assert outcome.api == SENTINEL
    assert [e.get('Event-Sequence') for e in outcome.events] == [str(i) for i in range(2000)]


# --- seeded random mutations ---


def flip_bytes(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def truncate(data, rng):
    return data[: rng.randrange(len(data))]


def insert_junk(data, rng):
    at = rng.randrange(len(data))
    junk = rng.choice([b'\r', b'\0', b'\n', b':', b'\n\n', bytes(rng.randrange(256) for _ in range(16))])
    return data[:at] + junk + data[at:]


def delete_span(data, rng):
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 200) :]


def duplicate_span(data, rng):
    at = rng.randrange(len(data))
    return data[:at] + data[at : at + rng.randint(1, 500)] + data[at:]


def set_a_content_length(data, rng):
    lengths = list(re.finditer(rb'Content-Length: (\d+)', data))
    if not lengths:
        return data
    match = rng.choice(lengths)
    value = rng.choice(
        [
            b'0',
            b'-1',
            b'x',
            b'',
            b'%d' % rng.randrange(10**9),
            b'9' * 40,
            b'%d' % (int(match.group(1)) + rng.randint(-50, 50)),
        ]
    )
    return data[: match.start(1)] + value + data[match.end(1) :]


MUTATIONS = (flip_bytes, truncate, insert_junk, delete_span, duplicate_span, set_a_content_length)


def mutant(rng):
    start = rng.randrange(len(ALL_EVENTS))
    data = stream_of(*ALL_EVENTS[start : start + rng.randint(1, 4)])
    for _ in range(rng.randint(1, 3)):
        data = rng.choice(MUTATIONS)(data, rng) or b'\n'
    return data


@pytest.mark.timeout(120)
def test_two_hundred_seeded_mutations_never_crash_or_hang_the_client():
    rng = random.Random(20261127)
    reasons = set()
    for i in range(200):
        stream = mutant(rng)
        outcome = run_case(stream, max_chunk=rng.choice([0, 1500]), rng=rng)
        assert_settled(outcome, 'mutation %d: %r' % (i, stream[:200]))
        reasons.add(re.sub(r'[\d\'"].*', '', outcome.dead_reason))
    # the mutations really reached the parser's error paths, not only the happy one
    assert len(reasons) >= 4, reasons


def test_endless_outer_headers_kill_the_connection_instead_of_growing_memory():
    import io

    from daemon.esl import ESLProtocolError, read_message

    stream = io.BytesIO(b"".join(b"X-Header-%d: value\n" % i for i in range(1000)))
    with pytest.raises(ESLProtocolError, match="header lines"):
        read_message(stream)


def test_deeply_nested_event_json_is_a_protocol_error():
    from daemon.esl import ESLProtocolError, parse_json_event

    with pytest.raises(ESLProtocolError, match="nested too deep"):
        parse_json_event(b"[" * 100_000)


def test_a_line_without_colon_in_an_event_forges_no_header_and_pairs_refuse_it():
    from daemon.esl import ESLProtocolError, parse_plain_event

    event = parse_plain_event(b'Event-Name: DTMF\nUnique-ID: u1\nEvent-Name\nDTMF-Digit: 5\n\n')
    assert (event.name, event.unique_id, event.get('DTMF-Digit')) == ('DTMF', 'u1', '5')
    with pytest.raises(ESLProtocolError, match='header line without a name'):
        _ = event.pairs
