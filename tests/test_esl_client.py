"""daemon/esl.py against real FreeSWITCH bytes (the captures) and scripted switches,
always over real loopback sockets."""
import ast
import json
import random
import re
import time
from collections import defaultdict

import gevent
import gevent.socket
import greenswitch.esl
import pytest

from daemon.esl import (DEFAULT_EVENTS, ESLAuthError, ESLChannelGone, ESLClient, ESLConnectionLost,
                        ESLError, ESLTimeout, ESLUnsafeArgument, JobResult, parse_event,
                        read_message)
from tests.esl_fixtures import (API_BODIES, ByteStreamer, CaptureReplayer, FakeSwitch, api_response,
                                capture_names, default_respond, heartbeat, load_capture,
                                plain_event, reply)

pytestmark = pytest.mark.timeout(30)

CAPTURES = capture_names()
if not CAPTURES:
    pytest.skip('ESL captures not found (set AUTOCALL_ESL_CAPTURES)', allow_module_level=True)

CHANNEL = '7e5a0c6e-0000-4000-8000-000000000001'


# --- helpers ---

def recv_records(capture):
    return [record.data for record in capture.records if record.kind == 'RECV']


def frame_through_socket(capture, max_chunk):
    """Every message our framer reads from the capture's raw bytes, sent over TCP in
    random-sized chunks."""
    streamer = ByteStreamer(capture.raw, random.Random(capture.name), max_chunk)
    try:
        sock = gevent.socket.create_connection(('127.0.0.1', streamer.port))
        rfile = sock.makefile('rb')
        messages = []
        while True:
            message = read_message(rfile)
            if message is None:
                return messages
            messages.append(message)
    finally:
        streamer.stop()


def expand_sequence(text):
    """'A Bx2 C' -> ['A', 'B', 'B', 'C'] (the capture tool's event-sequence notation)."""
    names = []
    for token in text.split():
        name, _, count = token.rpartition('x')
        if name and count.isdigit():
            names += [name] * int(count)
        else:
            names.append(token)
    return names


def record_event(data):
    """(Event-Name, Unique-ID, body) of a raw RECV record, read without daemon.esl."""
    head, _, inner = data.partition(b'\n\n')
    if b'Content-Type: text/event-json' in head:
        obj = json.loads(inner)
        return obj.get('Event-Name'), obj.get('Unique-ID'), obj.get('_body', '')
    if b'Content-Type: text/event-plain' not in head:
        return None, None, None
    name = re.search(rb'^Event-Name: (\S+)$', inner, re.M).group(1).decode()
    uid = re.search(rb'^Unique-ID: (\S+)$', inner, re.M)
    parts = inner.split(b'\n\n', 1)
    return name, uid and uid.group(1).decode(), parts[1].decode() if len(parts) > 1 else ''


def connected_pair(switch=None, **client_args):
    switch = switch or FakeSwitch()
    client = ESLClient('127.0.0.1', switch.port, 'ClueCon', **client_args)
    client.connect()
    conn = switch.connections.get(timeout=2)
    return switch, client, conn


@pytest.fixture
def pair():
    switch, client, conn = connected_pair()
    yield client, conn
    client.close()
    switch.stop()


# --- 1. every capture, framed and parsed ---

def test_capture_logs_agree_with_raw_files():
    for name in CAPTURES:
        capture = load_capture(name)
        assert b''.join(recv_records(capture)) == capture.raw, name


@pytest.mark.parametrize('max_chunk', [7, 1500])
@pytest.mark.parametrize('name', CAPTURES)
def test_capture_frames_into_exactly_the_logged_messages(name, max_chunk):
    capture = load_capture(name)
    messages = frame_through_socket(capture, max_chunk)
    expected = recv_records(capture)
    assert len(messages) == len(expected)
    for message, data in zip(messages, expected):
        head, _, body = data.partition(b'\n\n')
        assert message.pairs == [tuple(line.split(': ', 1)) for line in head.decode().split('\n')]
        assert message.body == body


@pytest.mark.parametrize('name', [n for n in CAPTURES if n != '07a-wrong-password'])
def test_capture_events_parse_in_the_logged_sequence(name):
    capture = load_capture(name)
    messages = frame_through_socket(capture, 1500)
    seen, note = next((seen, text) for seen, text in capture.notes if 'event sequence' in text)
    recv_before_note = sum(1 for record in capture.records[:seen] if record.kind == 'RECV')
    names = [event.name for event in map(parse_event, messages[:recv_before_note]) if event]
    assert names == expand_sequence(note.split('in order): ', 1)[1])


def test_background_job_results_match_the_captures():
    expected = {
        '01-answered-playback-dtmf-uuid_kill': [(True, 'e756e45c-c867-406e-87a5-9cc391242798')],
        '03-busy-486': [(False, 'USER_BUSY')],
        '04-no-answer-timeout': [(False, 'NO_ANSWER')],
        '05-decline-603-and-unreachable': [(False, 'CALL_REJECTED'),
                                           (False, 'NORMAL_TEMPORARY_FAILURE'),
                                           (False, 'INVALID_PROFILE')],
        '07b-event-json-answered-call': [(True, '9ff363d3-17e7-4b6f-b0ca-0eaeb4caf390')],
    }
    for name, results in expected.items():
        capture = load_capture(name)
        jobs = [e for e in map(parse_event, frame_through_socket(capture, 1500))
                if e and e.name == 'BACKGROUND_JOB']
        assert [JobResult.from_body(job.body)[:2] for job in jobs] == results
        noted = [ast.literal_eval(re.search(r"body=('.*')$", text).group(1))
                 for _, text in capture.notes if 'BACKGROUND_JOB' in text and 'body=' in text]
        assert [job.body for job in jobs][:len(noted)] == noted
        for job in jobs:
            assert job.get('Content-Length') == str(len(job.body.encode()))
            assert job.get('Job-Command') == 'originate'


def test_background_job_body_is_glued_into_content_length_by_stock_greenswitch():
    busy = next(e for e in map(parse_event, frame_through_socket(load_capture('03-busy-486'), 1500))
                if e and e.name == 'BACKGROUND_JOB')
    data = next(d for d in recv_records(load_capture('03-busy-486')) if b'BACKGROUND_JOB' in d)
    stock = greenswitch.esl.ESLEvent(data.partition(b'\n\n')[2].decode())
    assert busy.get('Content-Length') == '15' and busy.body == '-ERR USER_BUSY\n'
    assert stock.headers['Content-Length'] != '15'


@pytest.mark.parametrize('name', ['01-answered-playback-dtmf-uuid_kill', '09-named-events-only'])
def test_dtmf_digits_are_url_decoded(name):
    capture = load_capture(name)
    digits = [e.get('DTMF-Digit') for e in map(parse_event, frame_through_socket(capture, 1500))
              if e and e.name == 'DTMF']
    assert digits == ['1', '2', '#']
    noted = [re.search(r'DTMF-Digit=(\S+)', text).group(1) for _, text in capture.notes if 'DTMF-Digit=' in text]
    assert not noted or noted == digits


def test_event_json_capture_parses_values_body_and_duplicates():
    events = [e for e in map(parse_event, frame_through_socket(load_capture('07b-event-json-answered-call'), 1500))
              if e]
    assert events and all(e.content_type == 'text/event-json' for e in events)
    assert all(isinstance(value, str) for e in events for _, value in e.pairs)
    job = next(e for e in events if e.name == 'BACKGROUND_JOB')
    assert job.body == '+OK 9ff363d3-17e7-4b6f-b0ca-0eaeb4caf390\n'
    assert '_body' not in job.headers
    done = next(e for e in events if e.name == 'CHANNEL_HANGUP_COMPLETE')
    assert done.get_all('Hangup-Cause') == ['USER_BUSY', 'USER_BUSY']
    assert done.get('variable_autocall_customer') == 'C1'


def test_plain_capture_keeps_duplicate_headers_and_decodes_values():
    events = [e for e in map(parse_event, frame_through_socket(load_capture('03-busy-486'), 1500)) if e]
    done = next(e for e in events if e.name == 'CHANNEL_HANGUP_COMPLETE')
    assert done.get('Hangup-Cause') == 'USER_BUSY'
    assert done.get_all('Hangup-Cause') == ['USER_BUSY', 'USER_BUSY']
    assert done.get('Event-Date-Local') == '2026-11-27 07:24:29'
    assert done.unique_id == done.get('variable_uuid')
    assert done.get('variable_sip_term_status') == '486'
    answered = map(parse_event, frame_through_socket(load_capture('01-answered-playback-dtmf-uuid_kill'), 1500))
    sdp = next(e.get('variable_switch_r_sdp') for e in answered if e and e.get('variable_switch_r_sdp'))
    assert sdp.startswith('v=0\r\no=sipp ')
    assert '\r\n' in sdp  # the encoded CRLFs of an SDP stay inside one value


@pytest.mark.parametrize('name', CAPTURES)
def test_every_capture_ends_with_a_recognised_disconnect_notice(name):
    last = frame_through_socket(load_capture(name), 1500)[-1]
    assert last.content_type == 'text/disconnect-notice'
    assert last.body in (b'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n',
                         b'The system is being shut down.\n')


# --- 2. forged headers ---

FORGED = 'x\nEvent-Name: CHANNEL_HANGUP\nHangup-Cause: NORMAL_CLEARING\nUnique-ID: someone-else'
FORGED_EVENT = plain_event([('Event-Name', 'CHANNEL_ANSWER'), ('Unique-ID', CHANNEL),
                            ('variable_customer_note', FORGED), ('Answer-State', 'answered')])


def test_encoded_newline_in_a_variable_cannot_forge_a_header(pair):
    client, conn = pair
    got = gevent.event.AsyncResult()
    client.subscribe_channel(CHANNEL, got.set)
    conn.send(FORGED_EVENT)
    event = got.get(timeout=2)
    assert event.name == 'CHANNEL_ANSWER'
    assert event.get_all('Event-Name') == ['CHANNEL_ANSWER']
    assert event.get('Hangup-Cause') is None
    assert event.get('variable_customer_note') == FORGED
    assert event.get('Answer-State') == 'answered'


def test_stock_greenswitch_lets_the_same_bytes_forge_a_header():
    switch = FakeSwitch()
    stock = greenswitch.esl.InboundESL('127.0.0.1', switch.port, 'ClueCon')
    try:
        stock.connect()
        got = gevent.event.AsyncResult()
        stock.register_handle('*', got.set)
        switch.connections.get(timeout=2).send(FORGED_EVENT)
        assert got.get(timeout=3).headers['Event-Name'] == 'CHANNEL_HANGUP'
    finally:
        gevent.killall([stock._receive_events_greenlet, stock._process_events_greenlet])
        stock.sock.close()
        switch.stop()


# --- 3. the client replaying real sessions ---

def _replay(capture):
    """Drive a client through the capture's commands against a replay of its bytes.
    Returns what the client saw and what the capture says it should have seen."""
    server = CaptureReplayer(capture)
    client = ESLClient('127.0.0.1', server.port, 'ClueCon')
    channels = defaultdict(list)
    got = {'api': [], 'jobs': [], 'apps': [], 'replies': []}
    want = {'api': [], 'jobs': [], 'channels': {}}
    records = capture.records
    try:
        client.connect()
        sends = [i for i, r in enumerate(records) if r.kind == 'SEND'][2:]
        for index in sends:
            command = records[index].data.decode().rstrip('\n')
            verb, _, rest = command.partition(' ')
            later = [r.data for r in records[index + 1:] if r.kind == 'RECV']
            for uuid in re.findall(r'origination_uuid=([0-9a-f-]{36})', command):
                client.subscribe_channel(uuid, channels[uuid].append)
                want['channels'][uuid] = [n for n, u, _ in map(record_event, recv_records(capture)) if u == uuid]
            if verb == 'api':
                got['api'].append(client.api(rest))
                want['api'].append(next(d for d in later if b'api/response' in d.partition(b'\n\n')[0])
                                   .partition(b'\n\n')[2].decode())
            elif verb == 'bgapi':
                got['jobs'].append(client.bgapi(rest))
                job_reply = next(d for d in later if d.startswith(b'Content-Type: command/reply'))
                job = re.search(rb'\nJob-UUID: (\S+)', job_reply).group(1).decode()
                want['jobs'].append(next(record_event(d)[2] for d in recv_records(capture)
                                         if b'BACKGROUND_JOB' in d and job.encode() in d))
            elif verb == 'sendmsg':
                head = dict(line.split(': ', 1) for line in command.split('\n')[1:])
                uuid = command.split('\n', 1)[0].split()[1]
                future = client.execute(uuid, head['execute-app-name'], head.get('execute-app-arg', ''))
                got['apps'].append((future, head['execute-app-name'], 'event-uuid' in head))
            else:
                got['replies'].append(client.send(command).get('Reply-Text'))
        assert client.dead.wait(5), 'the replay should end with FreeSWITCH closing the connection'
        server.done.wait(2)
        assert not server.mismatches
    finally:
        client.close()
        server.stop()
    return client, got, want, channels


@pytest.mark.parametrize('name', [n for n in CAPTURES if n != '07a-wrong-password'])
def test_client_replays_capture_with_every_reply_job_and_channel_event(name):
    client, got, want, channels = _replay(load_capture(name))
    assert got['api'] == want['api']
    assert [future.get(timeout=0).body for future in got['jobs']] == want['jobs']
    for uuid, names in want['channels'].items():
        assert [event.name for event in channels[uuid]] == names
    for future, app, ours in got['apps']:
        if ours:
            done = future.get(timeout=0)
            assert (done.name, done.get('Application')) == ('CHANNEL_EXECUTE_COMPLETE', app)
            assert done.get('Application-Response') == 'FILE PLAYED'
        else:  # the capture's client set no event-uuid, so the switch's own one never matches ours
            with pytest.raises(ESLConnectionLost):
                future.get(timeout=0)
    assert 'disconnected' in client.dead_reason.lower()


def test_replayed_session_answers_api_bodies_byte_exact():
    client, got, want, channels = _replay(load_capture('06-sync-api-originate-show-hupall'))
    assert got['api'][0].startswith('+OK ') and got['api'][0].endswith('\n')
    assert 'true' in got['api'] and '{"row_count": 0}\n' in got['api']
    assert got['replies'][-2:] == ['-ERR command not found', '+OK bye']


def test_replayed_wrong_password_raises_auth_error_quickly():
    server = CaptureReplayer(load_capture('07a-wrong-password'))
    client = ESLClient('127.0.0.1', server.port, 'WrongPassword')
    started = time.monotonic()
    with pytest.raises(ESLAuthError):
        client.connect()
    assert time.monotonic() - started < 1
    assert client.dead.is_set() and not client.is_alive()
    server.stop()


def test_replayed_shutdown_kills_the_connection_with_the_notice_text():
    client, got, want, channels = _replay(load_capture('08-shutdown-while-connected'))
    assert client.dead_reason == 'FreeSWITCH disconnected: The system is being shut down.'
    assert got['jobs'][0].get(timeout=0).ok
    (uuid, events), = channels.items()
    assert [e.get('Hangup-Cause') for e in events if e.name == 'CHANNEL_HANGUP_COMPLETE'] == ['SYSTEM_SHUTDOWN']
