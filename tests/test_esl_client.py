"""daemon.esl (wire + client) against real FreeSWITCH bytes (the captures) and scripted switches,
always over real loopback sockets."""

import ast
import json
import random
import re
import time
import uuid as uuidlib
import wave
from collections import defaultdict
from urllib.parse import unquote

import gevent
import gevent.socket
import greenswitch.esl
import pytest

from daemon.esl import (
    DEFAULT_EVENTS,
    ESLAuthError,
    ESLChannelGone,
    ESLClient,
    ESLCommandError,
    ESLConnectionLost,
    ESLError,
    ESLTimeout,
    ESLUnsafeArgument,
    JobResult,
    parse_event,
    read_message,
)
from tests.esl_fixtures import (
    API_BODIES,
    ByteStreamer,
    CaptureReplayer,
    FakeSwitch,
    api_response,
    capture_names,
    default_respond,
    heartbeat,
    load_capture,
    plain_event,
    reply,
)

pytestmark = pytest.mark.timeout(30)

CAPTURES = capture_names()

CHANNEL = '7e5a0c6e-0000-4000-8000-000000000001'


# --- helpers ---


def recv_records(capture):
    return [record.data for record in capture.records if record.kind == 'RECV']


def frame_through_socket(capture, max_chunk):
    """Every message our framer reads from the capture's raw bytes, sent over TCP in
    random-sized chunks."""
    streamer = ByteStreamer(capture.raw, random.Random(capture.name), max_chunk)
    sock = gevent.socket.create_connection(('127.0.0.1', streamer.port))
    try:
        with sock.makefile('rb') as rfile:
            messages = []
            while (message := read_message(rfile)) is not None:
                messages.append(message)
            return messages
    finally:
        sock.close()
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
    seen, note = next((seen, text) for seen, text in capture.notes if 'event sequence (' in text)
    recv_before_note = sum(1 for record in capture.records[:seen] if record.kind == 'RECV')
    names = [event.name for event in map(parse_event, messages[:recv_before_note]) if event]
    assert names == expand_sequence(note.split('in order): ', 1)[1])


def test_call_labels_of_capture_13_name_one_channel_each():
    """13's labelled sequence (EXECUTE[A]...): every event parses with the call its label names,
    channel events by Unique-ID, job results by the origination_uuid in Job-Command-Arg."""
    capture = load_capture('13-three-concurrent-originates')
    seen, note = next((seen, text) for seen, text in capture.notes if 'with call labels' in text)
    recv_before_note = sum(1 for record in capture.records[:seen] if record.kind == 'RECV')
    events = [e for e in map(parse_event, frame_through_socket(capture, 1500)[:recv_before_note]) if e]
    labelled = [token.rstrip(']').split('[') for token in note.split('in order): ', 1)[1].split()]
    assert [e.name for e in events] == [name for name, _label in labelled]
    calls = defaultdict(set)
    for event, (_name, label) in zip(events, labelled):
        arg = re.search(r'origination_uuid=([0-9a-f-]{36})', event.get('Job-Command-Arg') or '')
        calls[label].add(event.get('Unique-ID') or (arg.group(1) if arg else None))
    assert calls.pop('-') == {None}  # HEARTBEAT
    assert sorted(calls) == ['A', 'B', 'C'] and all(len(u) == 1 and None not in u for u in calls.values())
    assert len(set.union(*calls.values())) == 3


def test_background_job_results_match_the_captures():
    expected = {
        '01-answered-playback-dtmf-uuid_kill': [(True, 'e756e45c-c867-406e-87a5-9cc391242798')],
        '03-busy-486': [(False, 'USER_BUSY')],
        '04-no-answer-timeout': [(False, 'NO_ANSWER')],
        '05-decline-603-and-unreachable': [
            (False, 'CALL_REJECTED'),
            (False, 'NORMAL_TEMPORARY_FAILURE'),
            (False, 'INVALID_PROFILE'),
        ],
        '07b-event-json-answered-call': [(True, '9ff363d3-17e7-4b6f-b0ca-0eaeb4caf390')],
    }
    for name, results in expected.items():
        capture = load_capture(name)
        jobs = [e for e in map(parse_event, frame_through_socket(capture, 1500)) if e and e.name == 'BACKGROUND_JOB']
        assert [JobResult.from_body(job.body)[:2] for job in jobs] == results
        noted = [
            ast.literal_eval(re.search(r"body=('.*')$", text).group(1))
            for _, text in capture.notes
            if 'BACKGROUND_JOB' in text and 'body=' in text
        ]
        assert [job.body for job in jobs][: len(noted)] == noted
        for job in jobs:
            assert job.get('Content-Length') == str(len(job.body.encode()))
            assert job.get('Job-Command') == 'originate'


def test_background_job_body_is_glued_into_content_length_by_stock_greenswitch():
    busy = next(
        e
        for e in map(parse_event, frame_through_socket(load_capture('03-busy-486'), 1500))
        if e and e.name == 'BACKGROUND_JOB'
    )
    data = next(d for d in recv_records(load_capture('03-busy-486')) if b'BACKGROUND_JOB' in d)
    stock = greenswitch.esl.ESLEvent(data.partition(b'\n\n')[2].decode())
    assert busy.get('Content-Length') == '15' and busy.body == '-ERR USER_BUSY\n'
    assert stock.headers['Content-Length'] != '15'


@pytest.mark.parametrize('name', ['01-answered-playback-dtmf-uuid_kill', '09-named-events-only'])
def test_dtmf_digits_are_url_decoded(name):
    capture = load_capture(name)
    digits = [
        e.get('DTMF-Digit') for e in map(parse_event, frame_through_socket(capture, 1500)) if e and e.name == 'DTMF'
    ]
    assert digits == ['1', '2', '#']
    noted = [re.search(r'DTMF-Digit=(\S+)', text).group(1) for _, text in capture.notes if 'DTMF-Digit=' in text]
    assert not noted or noted == digits


def test_event_json_capture_parses_values_body_and_duplicates():
    events = [
        e for e in map(parse_event, frame_through_socket(load_capture('07b-event-json-answered-call'), 1500)) if e
    ]
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
    assert last.body in (
        b'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n',
        b'The system is being shut down.\n',
    )


# --- 2. forged headers ---

FORGED = 'x\nEvent-Name: CHANNEL_HANGUP\nHangup-Cause: NORMAL_CLEARING\nUnique-ID: someone-else'
FORGED_EVENT = plain_event(
    [
        ('Event-Name', 'CHANNEL_ANSWER'),
        ('Unique-ID', CHANNEL),
        ('variable_customer_note', FORGED),
        ('Answer-State', 'answered'),
    ]
)


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
        stock.sock_file.close()
        stock.sock.close()
        switch.stop()


@pytest.mark.parametrize(
    'call, instead',
    [
        (lambda c: c.register_handle('CHANNEL_ANSWER', print), 'subscribe_channel'),
        (lambda c: c.unregister_handle('CHANNEL_ANSWER', print), 'unsubscribe_channel'),
        (lambda c: c.process_events(), 'receive_events'),
    ],
)
def test_greenswitch_handler_entry_points_refuse_and_name_what_to_use(call, instead):
    client = ESLClient('127.0.0.1', 1, 'ClueCon')  # never connected: the refusal needs no switch
    with pytest.raises(NotImplementedError, match=instead):
        call(client)


# --- 3. the client replaying real sessions ---


def _replay(capture):
    """Drive a client through the capture's commands against a replay of its bytes.
    Returns what the client saw and what the capture says it should have seen."""
    server = CaptureReplayer(capture)
    client = ESLClient('127.0.0.1', server.port, 'ClueCon')
    channels = defaultdict(list)
    got = {'api': [], 'jobs': [], 'apps': [], 'replies': []}
    want = {'api': [], 'jobs': [], 'channels': {}, 'responses': []}
    records = capture.records
    try:
        client.connect()
        sends = [i for i, r in enumerate(records) if r.kind == 'SEND'][2:]
        for index in sends:
            command = records[index].data.decode().rstrip('\n')
            verb, _, rest = command.partition(' ')
            later = [r.data for r in records[index + 1 :] if r.kind == 'RECV']
            for uuid in re.findall(r'origination_uuid=([0-9a-f-]{36})', command):
                client.subscribe_channel(uuid, channels[uuid].append)
                want['channels'][uuid] = [n for n, u, _ in map(record_event, recv_records(capture)) if u == uuid]
            if verb == 'api':
                got['api'].append(client.api(rest))
                want['api'].append(
                    next(d for d in later if b'api/response' in d.partition(b'\n\n')[0]).partition(b'\n\n')[2].decode()
                )
            elif verb == 'bgapi':
                got['jobs'].append(client.bgapi(rest))
                job_reply = next(d for d in later if d.startswith(b'Content-Type: command/reply'))
                job = re.search(rb'\nJob-UUID: (\S+)', job_reply).group(1).decode()
                want['jobs'].append(
                    next(
                        record_event(d)[2]
                        for d in recv_records(capture)
                        if b'BACKGROUND_JOB' in d and job.encode() in d
                    )
                )
            elif verb == 'sendmsg':
                head = dict(line.split(': ', 1) for line in command.split('\n')[1:])
                uuid = command.split('\n', 1)[0].split()[1]
                future = client.execute(uuid, head['execute-app-name'], head.get('execute-app-arg', ''))
                got['apps'].append((future, head['execute-app-name'], 'event-uuid' in head))
                want['responses'].append(_captured_response(capture, head.get('event-uuid')))
            else:
                got['replies'].append(client.send(command).get('Reply-Text'))
        assert client.dead.wait(5), 'the replay should end with FreeSWITCH closing the connection'
        server.done.wait(2)
        assert not server.mismatches
    finally:
        client.close()
        server.stop()
    return client, got, want, channels


# what each sendmsg's CHANNEL_EXECUTE_COMPLETE says in the capture, in send order (09 sent no
# event-uuid: its completion cannot be matched to the execute)
APPLICATION_RESPONSES = {
    '01-answered-playback-dtmf-uuid_kill': ['FILE PLAYED'],
    '09-named-events-only': [None],
    '10-play_and_get_digits': ['_none_', '_none_'],  # play_and_get_digits sets no response
    '11-callee-bye-during-playback': ['PLAYBACK ERROR'],  # the callee's BYE cut it
    '12-missing-files': ['FILE NOT FOUND', 'FILE PLAYED'],  # file_string skips its missing member
}


def _captured_response(capture, app_uuid):
    """The Application-Response of the captured completion with this Application-UUID."""
    for data in recv_records(capture):
        name, _uuid, _body = record_event(data)
        ours = app_uuid and b'\nApplication-UUID: %s\n' % app_uuid.encode() in data
        if name == 'CHANNEL_EXECUTE_COMPLETE' and ours:
            return unquote(re.search(rb'\nApplication-Response: (.*)\n', data).group(1).decode())
    return None


@pytest.mark.parametrize('name', [n for n in CAPTURES if n != '07a-wrong-password'])
def test_client_replays_capture_with_every_reply_job_and_channel_event(name):
    client, got, want, channels = _replay(load_capture(name))
    assert got['api'] == want['api']
    assert [future.get(timeout=0).body for future in got['jobs']] == want['jobs']
    assert any(want['channels'].values())
    for uuid, names in want['channels'].items():
        assert [event.name for event in channels[uuid]] == names
    assert want['responses'] == APPLICATION_RESPONSES.get(name, [])
    for (future, app, ours), response in zip(got['apps'], want['responses']):
        if ours:
            done = future.get(timeout=0)
            assert (done.name, done.get('Application')) == ('CHANNEL_EXECUTE_COMPLETE', app)
            assert done.get('Application-Response') == response
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
    ((uuid, events),) = channels.items()
    assert [e.get('Hangup-Cause') for e in events if e.name == 'CHANNEL_HANGUP_COMPLETE'] == ['SYSTEM_SHUTDOWN']


# --- 3. scripted switch: correlation ---


def channel_event(name, *pairs):
    return plain_event([('Event-Name', name), ('Unique-ID', CHANNEL)] + list(pairs))


def background_job(job, body):
    return plain_event([('Event-Name', 'BACKGROUND_JOB'), ('Job-UUID', job), ('Job-Command', 'originate')], body)


def test_connect_subscribes_to_named_events_never_all(pair):
    client, conn = pair
    command = conn.wait_for_command('event ')
    assert command == 'event plain ' + ' '.join(DEFAULT_EVENTS)
    assert 'ALL' not in command.split()


def test_connect_adds_the_events_the_client_itself_needs():
    switch, client, conn = connected_pair(events=['CHANNEL_ANSWER', 'CHANNEL_PROGRESS'])
    assert conn.wait_for_command('event ').split()[2:] == [
        'CHANNEL_ANSWER',
        'CHANNEL_PROGRESS',
        'BACKGROUND_JOB',
        'CHANNEL_EXECUTE_COMPLETE',
        'HEARTBEAT',
    ]
    client.close()
    switch.stop()


def test_api_returns_the_response_body_as_sent(pair):
    client, conn = pair
    assert client.api('version') == API_BODIES['version']
    assert client.api('uuid_exists ' + CHANNEL) == 'true'
    assert client.api('show channels as json') == '{"row_count": 0}\n'
    assert client.api('no_such_command') == '-ERR no_such_command Command not found!\n'


def test_concurrent_commands_get_their_own_replies_in_order(pair):
    client, conn = pair
    names = ['version', 'uuid_exists ' + CHANNEL, 'show channels as json'] * 10
    jobs = [gevent.spawn(client.api, name) for name in names]  # all in flight at once
    gevent.joinall(jobs, timeout=5, raise_error=True)
    assert [job.value for job in jobs] == [API_BODIES[name] for name in names]


def test_bgapi_sends_our_job_uuid_and_resolves_only_on_it(pair):
    client, conn = pair
    future = client.bgapi(
        'originate {origination_uuid=%s}sofia/gw/1000 &park()' % CHANNEL,
        job_uuid='11111111-2222-4333-8444-555555555555',
    )
    assert conn.commands[-1].endswith('\nJob-UUID: 11111111-2222-4333-8444-555555555555')
    conn.send(background_job('99999999-2222-4333-8444-555555555555', '+OK someone-else\n'))
    conn.send(background_job('11111111-2222-4333-8444-555555555555', '-ERR USER_BUSY\n'))
    assert future.get(timeout=2) == JobResult(False, 'USER_BUSY', '-ERR USER_BUSY\n')


@pytest.mark.parametrize('job_first', [True, False])
def test_bgapi_result_arrives_whatever_its_order_against_hangup(pair, job_first):
    client, conn = pair
    seen = []
    client.subscribe_channel(CHANNEL, seen.append)
    future = client.bgapi('originate {origination_uuid=%s}sofia/gw/1000 &park()' % CHANNEL)
    job = conn.jobs[-1]
    messages = [
        channel_event('CHANNEL_HANGUP', ('Hangup-Cause', 'NO_ANSWER')),
        channel_event('CHANNEL_HANGUP_COMPLETE', ('Hangup-Cause', 'NO_ANSWER')),
    ]
    messages.insert(0 if job_first else 2, background_job(job, '-ERR NO_ANSWER\n'))
    conn.send(b''.join(messages))
    assert future.get(timeout=2)[:2] == (False, 'NO_ANSWER')
    client.api('version')  # its reply comes after the events on the stream, so they are dispatched
    assert [event.name for event in seen] == ['CHANNEL_HANGUP', 'CHANNEL_HANGUP_COMPLETE']


def test_execute_sends_event_lock_and_resolves_on_its_application_uuid_only(pair):
    client, conn = pair
    seen = []
    client.subscribe_channel(CHANNEL, seen.append)
    future = client.execute(CHANNEL, 'playback', '/sounds/hello.wav')
    assert conn.commands[-1].split('\n')[:5] == [
        'sendmsg ' + CHANNEL,
        'call-command: execute',
        'execute-app-name: playback',
        'execute-app-arg: /sounds/hello.wav',
        'event-lock: true',
    ]
    app_uuid = conn.apps[-1][1]
    conn.send(
        channel_event(
            'CHANNEL_EXECUTE_COMPLETE',
            ('Application', 'playback'),
            ('Application-UUID', 'aaaaaaaa-0000-4000-8000-000000000000'),
            ('Application-Response', 'FILE PLAYED'),
        )
    )
    with pytest.raises(gevent.Timeout):
        future.get(timeout=0.2)
    conn.send(
        channel_event(
            'CHANNEL_EXECUTE_COMPLETE',
            ('Application', 'playback'),
            ('Application-UUID', app_uuid),
            ('Application-Response', 'FILE NOT FOUND'),
        )
    )
    done = future.get(timeout=2)
    assert (done.get('Application-UUID'), done.get('Application-Response')) == (app_uuid, 'FILE NOT FOUND')
    assert [event.get('Application-UUID') for event in seen][-1] == app_uuid


def refuse_sendmsg(conn, command):
    if command.startswith('sendmsg'):
        return reply('-ERR invalid session id [%s]' % CHANNEL)
    return default_respond(conn, command)


def test_execute_on_a_channel_the_switch_does_not_know_raises_command_error():
    switch, client, conn = connected_pair(FakeSwitch(respond=refuse_sendmsg))
    with pytest.raises(ESLCommandError, match='invalid session id'):
        client.execute(CHANNEL, 'playback', 'x.wav')
    assert client.is_alive()
    client.close()
    switch.stop()


# --- 4. failure paths ---


def pending_waiters(client, conn):
    """A pending api reply, bgapi job and execute future, all waiting on the switch."""
    client.subscribe_channel(CHANNEL, lambda event: None)
    job = client.bgapi('originate {origination_uuid=%s}sofia/gw/1000 &park()' % CHANNEL)
    app = client.execute(CHANNEL, 'playback', 'x.wav')
    api = gevent.event.AsyncResult()
    gevent.spawn(run_into, api, client.api, 'hang', timeout=10)
    conn.wait_for_command('api hang')
    return [job, app, api]


def run_into(result, call, *args, **kwargs):
    """Run a blocking call in its own greenlet, its outcome kept in `result`."""
    try:
        result.set(call(*args, **kwargs))
    except ESLError as exc:
        result.set_exception(exc)


def assert_all_lost(waiters):
    for waiter in waiters:
        with pytest.raises(ESLConnectionLost):
            waiter.get(timeout=1)


def test_eof_mid_body_fails_every_waiter_at_once(pair):
    client, conn = pair
    waiters = pending_waiters(client, conn)
    started = time.monotonic()
    conn.send(channel_event('CHANNEL_ANSWER')[:-20])
    conn.close()
    assert client.dead.wait(2)
    assert_all_lost(waiters)
    assert time.monotonic() - started < 1
    assert 'EOF' in client.dead_reason and not client.is_alive()
    with pytest.raises(ESLConnectionLost):
        client.api('version')


def test_unparseable_framing_kills_the_connection_and_fails_waiters(pair):
    client, conn = pair
    waiters = pending_waiters(client, conn)
    conn.send(b'Content-Type: text/event-plain\nContent-Length: many\n\n')
    assert client.dead.wait(2)
    assert_all_lost(waiters)
    assert 'ESLProtocolError' in client.dead_reason


def test_a_reply_nobody_asked_for_kills_the_connection(pair):
    client, conn = pair
    conn.send(api_response('+OK\n'))
    assert client.dead.wait(2)
    assert 'no command waiting' in client.dead_reason


def beat(conn, every):
    while True:
        conn.send(heartbeat())
        gevent.sleep(every)


def test_heartbeat_silence_kills_the_connection_within_heartbeat_timeout():
    switch, client, conn = connected_pair(heartbeat_timeout=0.3)
    beating = gevent.spawn(beat, conn, 0.05)
    assert not client.dead.wait(0.6)  # twice the timeout, kept alive by heartbeats alone
    beating.kill()
    silent_since = time.monotonic()
    waiters = pending_waiters(client, conn)
    assert client.dead.wait(2)
    assert 0.2 < time.monotonic() - silent_since < 1.0
    assert 'HEARTBEAT' in client.dead_reason
    assert_all_lost(waiters)
    switch.stop()


def test_heartbeat_silence_is_measured_on_the_injected_clock():
    now = [1000.0]
    switch, client, conn = connected_pair(heartbeat_timeout=0.2, clock=lambda: now[0])
    assert not client.dead.wait(0.3)  # real time passes, the injected clock does not
    now[0] += 0.5
    assert client.dead.wait(1)
    assert client.dead_reason == 'no HEARTBEAT for 0.5s'
    switch.stop()


def test_wrong_password_raises_auth_error_quickly():
    switch = FakeSwitch(password='ClueCon')
    client = ESLClient('127.0.0.1', switch.port, 'WrongPassword')
    started = time.monotonic()
    with pytest.raises(ESLAuthError):
        client.connect()
    assert time.monotonic() - started < 1
    assert client.dead.is_set()
    switch.stop()


def test_connect_to_a_closed_port_raises_connection_lost():
    switch = FakeSwitch()
    port = switch.port
    switch.stop()
    with pytest.raises(ESLConnectionLost, match='cannot connect'):
        ESLClient('127.0.0.1', port, 'ClueCon', timeout=1).connect()


def test_a_switch_that_never_greets_times_out_connect():
    listener = gevent.socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)  # the kernel accepts the TCP connection; nobody ever speaks
    client = ESLClient('127.0.0.1', listener.getsockname()[1], 'ClueCon', timeout=0.3)
    with pytest.raises(ESLConnectionLost, match='auth/request'):
        client.connect()
    assert client.dead.is_set()
    listener.close()


UNSAFE_CALLS = {
    'api newline': lambda c: c.api('status\nexit'),
    'api crlf': lambda c: c.api('uuid_kill x\r\n\r\nexit'),
    'bgapi forged header': lambda c: c.bgapi('originate a\nJob-UUID: x'),
    'bgapi job uuid with space': lambda c: c.bgapi('status', job_uuid='a b'),
    'execute arg forges app': lambda c: c.execute(CHANNEL, 'playback', 'a.wav\nexecute-app-name: hangup'),
    'execute uuid newline': lambda c: c.execute(CHANNEL + '\n', 'playback'),
    'execute app two words': lambda c: c.execute(CHANNEL, 'play back'),
    'execute arg carriage return': lambda c: c.execute(CHANNEL, 'playback', 'a.wav\r'),
    'execute arg NUL': lambda c: c.execute(CHANNEL, 'playback', 'a.wav\0'),
    'raw send blank line': lambda c: c.send('noevents\n\nexit'),
}


@pytest.mark.parametrize('call', UNSAFE_CALLS.values(), ids=UNSAFE_CALLS.keys())
def test_unsafe_arguments_are_refused_before_anything_is_sent(pair, call):
    client, conn = pair
    with pytest.raises(ESLUnsafeArgument):
        call(client)
    assert client.api('version') == API_BODIES['version']
    assert conn.commands[2:] == ['api version']


def test_a_new_client_connects_and_resubscribes_after_the_switch_restarts():
    switch, first, conn = connected_pair()
    switch.stop()
    conn.close()
    assert first.dead.wait(2)
    with pytest.raises(ESLError, match='new client'):
        first.connect()
    restarted = FakeSwitch(port=switch.port)
    second = ESLClient('127.0.0.1', switch.port, 'ClueCon')
    second.connect()
    conn = restarted.connections.get(timeout=2)
    assert conn.wait_for_command('event ') == 'event plain ' + ' '.join(DEFAULT_EVENTS)
    assert second.api('version') == API_BODIES['version']
    second.close()
    restarted.stop()


def slow_status(conn, command):
    if command == 'api slow':
        gevent.sleep(0.3)
    return default_respond(conn, command)


def test_a_timed_out_command_leaves_later_replies_matched():
    switch, client, conn = connected_pair(FakeSwitch(respond=slow_status))
    with pytest.raises(ESLTimeout):
        client.api('slow', timeout=0.05)
    assert client.api('version') == API_BODIES['version']
    assert client.is_alive()
    client.close()
    switch.stop()


def test_exit_is_answered_then_the_disconnect_notice_kills_the_connection(pair):
    client, conn = pair
    assert client.send('exit').get('Reply-Text') == '+OK bye'
    assert client.dead.wait(2)
    assert client.dead_reason.startswith('FreeSWITCH disconnected: Disconnected, goodbye.')


def test_close_fails_pending_waiters_and_is_idempotent(pair):
    client, conn = pair
    waiters = pending_waiters(client, conn)
    client.close()
    client.close()
    assert_all_lost(waiters)
    assert client.dead_reason == 'closed by client'


def test_unsubscribing_a_channel_releases_its_pending_applications(pair):
    client, conn = pair
    client.subscribe_channel(CHANNEL, lambda event: None)
    app = client.execute(CHANNEL, 'playback', 'x.wav')
    client.unsubscribe_channel(CHANNEL)
    with pytest.raises(ESLChannelGone):
        app.get(timeout=1)
    assert client.is_alive()


def test_a_failing_handler_does_not_hurt_the_connection(pair):
    client, conn = pair
    client.subscribe_channel(CHANNEL, lambda event: 1 / 0)
    conn.send(channel_event('CHANNEL_ANSWER'))
    assert client.api('version') == API_BODIES['version']
    assert client.is_alive()


def test_a_command_from_inside_a_handler_is_refused_not_deadlocked(pair):
    client, conn = pair
    outcome = gevent.event.AsyncResult()

    def handler(event):
        try:
            client.api('version')
        except ESLError as exc:
            outcome.set(exc)

    client.subscribe_channel(CHANNEL, handler)
    conn.send(channel_event('CHANNEL_ANSWER'))
    assert 'event handler' in str(outcome.get(timeout=2))


def test_events_nobody_owns_go_to_the_unowned_hook_and_heartbeats_do_not():
    unowned = []
    switch, client, conn = connected_pair(on_unowned_event=unowned.append)
    client.subscribe_channel(CHANNEL, lambda event: None)
    conn.send(
        heartbeat()
        + channel_event('CHANNEL_ANSWER')
        + background_job('nobody', '+OK x\n')
        + plain_event([('Event-Name', 'DTMF'), ('Unique-ID', 'other'), ('DTMF-Digit', '#')])
    )
    client.api('version')
    assert [(e.name, e.unique_id) for e in unowned] == [('BACKGROUND_JOB', None), ('DTMF', 'other')]
    assert unowned[1].get('DTMF-Digit') == '#'
    client.close()
    switch.stop()


# --- 5. against the FreeSWITCH stand-in (simulator) ---

SIM_SCENARIO = {
    'numbers': [
        {
            'number': '0901000001',
            'outcome': 'answer',
            'answer_after': 1,
            'hangup_after': 'never',
            'keys': [[1.0, '1#']],
        },
        {'number': '0901000002', 'outcome': 'busy', 'ring': 1},
    ]
}


@pytest.fixture
def sim(tmp_path):
    from simulator import Simulator
    from simulator.scenario import from_dict

    with wave.open(str(tmp_path / 'hello.wav'), 'wb') as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b'\0\0' * 8000 * 3)  # 3 simulated seconds
    simulator = Simulator(from_dict(SIM_SCENARIO), time_scale=0.01, sound_dir=str(tmp_path)).start()
    yield simulator
    simulator.stop()


def sim_client(sim, **options):
    client = ESLClient(sim.address[0], sim.address[1], 'ClueCon', **options)
    client.connect()
    return client


class ChannelEvents:
    """A channel handler that keeps the events and lets the test wait for one by name."""

    def __init__(self):
        self.events = []
        self.arrived = gevent.event.Event()

    def __call__(self, event):
        self.events.append(event)
        self.arrived.set()

    def wait_for(self, name, count=1, timeout=5):
        with gevent.Timeout(timeout, AssertionError('no %s x%d in %s' % (name, count, self.names()))):
            while len([e for e in self.events if e.name == name]) < count:
                self.arrived.clear()
                self.arrived.wait()
        return [e for e in self.events if e.name == name][count - 1]

    def names(self):
        return [e.name for e in self.events]


def originate_string(call, number):
    return (
        'originate {origination_uuid=%s,autocall_queue=Q1,ignore_early_media=true,originate_timeout=20}'
        'sofia/gateway/gw1/%s &park()' % (call, number)
    )


def test_simulated_call_answered_played_keyed_and_killed(sim):
    client = sim_client(sim, heartbeat_timeout=2)
    call, seen = str(uuidlib.uuid4()), ChannelEvents()
    client.subscribe_channel(call, seen)
    job = client.bgapi(originate_string(call, '0901000001'))
    assert seen.wait_for('CHANNEL_ANSWER').get('variable_autocall_queue') == 'Q1'
    assert job.get(timeout=5)[:2] == (True, call)
    done = client.execute(call, 'playback', 'hello.wav').get(timeout=5)
    assert done.get('Application-Response') == 'FILE PLAYED'
    seen.wait_for('DTMF', count=2)
    assert client.api('uuid_kill ' + call) == '+OK\n'
    hangup = seen.wait_for('CHANNEL_HANGUP_COMPLETE')
    assert [e.get('DTMF-Digit') for e in seen.events if e.name == 'DTMF'] == ['1', '#']
    assert hangup.get('Hangup-Cause') == 'NORMAL_CLEARING' and int(hangup.get('variable_billsec')) >= 1
    assert client.api('uuid_exists ' + call) == 'false'
    assert client.is_alive()
    client.close()


def test_simulated_busy_callee_resolves_the_job_with_its_cause(sim):
    client = sim_client(sim)
    call, seen = str(uuidlib.uuid4()), ChannelEvents()
    client.subscribe_channel(call, seen)
    result = client.bgapi(originate_string(call, '0901000002')).get(timeout=5)
    assert result[:2] == (False, 'USER_BUSY')
    assert seen.wait_for('CHANNEL_HANGUP_COMPLETE').get('Hangup-Cause') == 'USER_BUSY'
    client.close()


def test_simulator_dropping_the_connection_kills_the_client_and_a_new_one_connects(sim):
    first = sim_client(sim)
    call = str(uuidlib.uuid4())
    job = first.bgapi(originate_string(call, '0901000001'))
    sim.restart()
    assert first.dead.wait(2)
    with pytest.raises(ESLConnectionLost):
        job.get(timeout=1)
    second = sim_client(sim)
    assert second.api('uuid_exists ' + call) == 'false'
    second.close()


def test_simulator_silence_is_detected_by_heartbeat_timeout(sim):
    client = sim_client(sim, heartbeat_timeout=0.5)  # the simulator beats every 0.2 s here
    assert not client.dead.wait(1.0)
    sim.silence(5)
    assert client.dead.wait(2)
    assert 'HEARTBEAT' in client.dead_reason


def test_simulator_shutdown_reaches_the_client_as_a_disconnect_notice(sim):
    client = sim_client(sim)
    call, seen = str(uuidlib.uuid4()), ChannelEvents()
    client.subscribe_channel(call, seen)
    client.bgapi(originate_string(call, '0901000001'))
    seen.wait_for('CHANNEL_ANSWER')
    sim.shutdown(grace=1)
    assert client.dead.wait(3)
    assert client.dead_reason == 'FreeSWITCH disconnected: The system is being shut down.'
    assert seen.wait_for('CHANNEL_HANGUP_COMPLETE').get('Hangup-Cause') == 'SYSTEM_SHUTDOWN'
