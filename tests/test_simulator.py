"""The simulator's behaviour beyond the captures: scenarios, apps, faults, time scale, record.

Everything talks to a real simulator on 127.0.0.1:0 through raw sockets or stock greenswitch.
"""

import json
import socket
import time
import uuid
from pathlib import Path

import gevent
import greenswitch
import pytest

from simulator import Simulator
from simulator.capture import event_headers, split_message
from simulator.scenario import ScenarioError, from_dict
from tests.sim_fixtures import login, write_wav

pytestmark = pytest.mark.timeout(30)
SCALE = 0.01  # 100 simulated seconds per real second


@pytest.fixture
def make_sim(tmp_path):
    started = []

    def make(scenario=None, **options):
        options.setdefault('time_scale', SCALE)
        options.setdefault('heartbeat', 0)
        sim = Simulator(from_dict(scenario or {}), **options).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def originate(client, number='0901000001', extra='', job=None):
    call = str(uuid.uuid4())
    headers = '\nJob-UUID: %s' % job if job else ''
    client.command(
        'bgapi originate {origination_uuid=%s,originate_timeout=30%s}sofia/gateway/gw1/%s &park()%s'
        % (call, extra, number, headers)
    )
    return call


def hangup_complete(client, call, timeout=5.0):
    assert client.read_until(lambda m: _complete(client, call), timeout), 'no CHANNEL_HANGUP_COMPLETE for %s' % call
    return _complete(client, call)[0]


def _complete(client, call):
    return [e for e in client.events('CHANNEL_HANGUP_COMPLETE') if e['Unique-ID'] == call]


def job_body(client, call, timeout=5.0):
    """The body of the BACKGROUND_JOB whose originate named `call` (waits for it)."""
    assert client.read_until(lambda m: _job_body(client, call) is not None, timeout), 'no job result for ' + call
    return _job_body(client, call)


def _job_body(client, call):
    for message in client.messages:
        headers, body = split_message(message)
        if dict(headers).get('Content-Type') == 'text/event-plain':
            fields, inner = event_headers(body)
            fields = dict(fields)
            if fields['Event-Name'] == 'BACKGROUND_JOB' and call in fields.get('Job-Command-Arg', ''):
                return inner
    return None


def execute(client, call, app, arg='', lock=True):
    event_uuid = str(uuid.uuid4())
    client.command(
        'sendmsg %s\ncall-command: execute\nexecute-app-name: %s\nexecute-app-arg: %s\n'
        'event-uuid: %s%s' % (call, app, arg, event_uuid, '\nevent-lock: true' if lock else '')
    )
    return event_uuid


def completed(client, app_uuid, timeout=5.0):
    def pred(m):
        return [e for e in client.events('CHANNEL_EXECUTE_COMPLETE') if e.get('Application-UUID') == app_uuid]

    assert client.read_until(pred, timeout), 'no CHANNEL_EXECUTE_COMPLETE for %s' % app_uuid
    return pred(None)[0]


def answered(client, call, timeout=5.0):
    assert client.read_until(lambda m: [e for e in client.events('CHANNEL_PARK') if e['Unique-ID'] == call], timeout)


# ---- scenario outcomes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    'outcome, cause, q850, sip_status',
    [
        ('busy', 'USER_BUSY', '17', '486'),
        ('decline', 'CALL_REJECTED', '21', '603'),
        ('unallocated', 'UNALLOCATED_NUMBER', '1', '404'),
        ('no_user_response', 'NO_USER_RESPONSE', '18', '480'),
        ('invalid_number', 'INVALID_NUMBER_FORMAT', '28', '484'),
        ('unreachable', 'NORMAL_TEMPORARY_FAILURE', '41', '503'),
    ],
)
def test_refusing_callee_gives_the_sofia_cause(make_sim, outcome, cause, q850, sip_status):
    sim = make_sim({'default': {'outcome': outcome}})
    client = login(sim.address)
    call = originate(client)
    event = hangup_complete(client, call)
    assert (event['Hangup-Cause'], event['variable_hangup_cause_q850'], event['variable_sip_term_status']) == (
        cause,
        q850,
        sip_status,
    )
    assert event['variable_sip_hangup_disposition'] == 'recv_refuse'
    assert job_body(client, call) == '-ERR %s\n' % cause


def test_callee_that_never_answers_ends_with_no_answer_at_originate_timeout(make_sim):
    sim = make_sim({'default': {'outcome': 'no_answer'}}, time_scale=0.05)
    client = login(sim.address)
    started = time.monotonic()
    call = originate(client, extra=',originate_timeout=5')  # the later value wins
    event = hangup_complete(client, call)
    elapsed = (time.monotonic() - started) / 0.05
    assert event['Hangup-Cause'] == 'NO_ANSWER' and event['variable_sip_invite_failure_status'] == '487'
    assert event['variable_answer_epoch'] == '0' and event['variable_billsec'] == '0'
    assert job_body(client, call) == '-ERR NO_ANSWER\n'
    assert 4 <= elapsed <= 7  # counted in whole seconds of the clock, so up to 1 s early


def test_answer_delay_and_callee_hangup_show_in_times_and_billsec(make_sim):
    sim = make_sim({'default': {'answer_after': 3, 'hangup_after': 12}})
    client = login(sim.address)
    call = originate(client)
    event = hangup_complete(client, call)
    assert event['Hangup-Cause'] == 'NORMAL_CLEARING'
    assert event['variable_sip_hangup_disposition'] == 'recv_bye'
    assert 11 <= int(event['variable_billsec']) <= 13
    assert 2 <= int(event['variable_answer_epoch']) - int(event['variable_start_epoch']) <= 4
    assert job_body(client, call) == '+OK %s\n' % call


def test_rules_match_exact_glob_and_regex_before_the_default(make_sim):
    sim = make_sim(
        {
            'default': {'outcome': 'busy'},
            'numbers': [
                {'number': '0901000001', 'outcome': 'decline'},
                {'glob': '0902*', 'outcome': 'unallocated'},
                {'regex': '^0903\\d+$', 'outcome': 'unreachable'},
            ],
        }
    )
    client = login(sim.address)
    causes = {}
    for number in ('0901000001', '0902555', '0903123', '0999'):
        causes[number] = hangup_complete(client, originate(client, number))['Hangup-Cause']
    assert causes == {
        '0901000001': 'CALL_REJECTED',
        '0902555': 'UNALLOCATED_NUMBER',
        '0903123': 'NORMAL_TEMPORARY_FAILURE',
        '0999': 'USER_BUSY',
    }


def test_unknown_gateway_is_refused_without_a_channel(make_sim):
    sim = make_sim({'gateways': ['gw1']})
    client = login(sim.address)
    client.command('bgapi originate {origination_uuid=abc}sofia/gateway/nosuch/0901 &park()\nJob-UUID: job-1')
    assert client.read_until(lambda m: client.events('BACKGROUND_JOB'))
    assert job_body(client, 'abc') == '-ERR INVALID_GATEWAY\n'
    assert not client.events('CHANNEL_CREATE')
    assert client.events('BACKGROUND_JOB')[0]['Job-UUID'] == 'job-1'


def test_client_supplied_job_uuid_is_used_in_reply_and_event(make_sim):
    sim = make_sim({'default': {'outcome': 'busy'}})
    client = login(sim.address)
    client.send('bgapi originate {origination_uuid=u-1}sofia/gateway/gw1/0901 &park()\nJob-UUID: my-job\n\n')
    assert client.read_until(lambda m: client.events('BACKGROUND_JOB'))
    reply = client.messages[0].decode()
    assert 'Reply-Text: +OK Job-UUID: my-job\nJob-UUID: my-job\n' in reply
    assert client.events('BACKGROUND_JOB')[0]['Job-UUID'] == 'my-job'


def test_random_mix_is_reproducible_with_a_seed(make_sim):
    mix = {'random': {'seed': 7, 'weights': {'answer': 1, 'busy': 1, 'decline': 1}}}
    outcomes = []
    for _ in range(2):
        scenario = from_dict(mix)
        outcomes.append([scenario.behaviour_for(str(n)).outcome for n in range(30)])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {'answer', 'busy', 'decline'}


# ---- applications --------------------------------------------------------------------------------


def test_play_and_get_digits_collects_scripted_keys_into_its_variable(make_sim):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never', 'keys': [[10.0, '12#']]}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    app = execute(client, call, 'play_and_get_digits', '1 4 1 30000 # silence_stream://500 silence digits_a \\d+')
    event = completed(client, app)
    assert event['variable_digits_a'] == '12'
    assert event['variable_read_result'] == 'success'
    assert event['variable_read_terminator_used'] == '#'
    assert [e['DTMF-Digit'] for e in client.events('DTMF')] == ['1', '2', '#']


def test_play_and_get_digits_without_a_key_leaves_its_variable_unset_and_fails(make_sim):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never', 'keys': [[10.0, '7']]}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    first = completed(
        client, execute(client, call, 'play_and_get_digits', '1 1 1 30000 # silence_stream://100 silence first_key \\d')
    )
    second = completed(
        client, execute(client, call, 'play_and_get_digits', '1 1 2 1000 # silence_stream://100 silence second_key \\d')
    )
    assert first['variable_first_key'] == '7'
    assert 'variable_second_key' not in second
    assert second['variable_read_result'] != 'success'
    assert second['variable_first_key'] == '7'  # an earlier prompt's variable persists


def test_play_and_get_digits_puts_digits_failing_the_regexp_in_var_invalid(make_sim):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never', 'keys': [[10.0, '9']]}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    event = completed(
        client, execute(client, call, 'play_and_get_digits', '1 1 1 30000 # silence_stream://100 silence choice [12]')
    )
    assert 'variable_choice' not in event and event['variable_choice_invalid'] == '9'


def test_playback_lasts_the_wav_duration_scaled(make_sim, tmp_path):
    write_wav(str(tmp_path / 'two_seconds.wav'), 2.0)
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never'}}, time_scale=0.05)
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    started = time.monotonic()
    event = completed(client, execute(client, call, 'playback', str(tmp_path / 'two_seconds.wav')))
    elapsed = time.monotonic() - started
    assert event['Application-Response'] == 'FILE PLAYED'
    assert event['variable_playback_ms'] == '2000'
    assert 0.08 <= elapsed <= 0.5  # 2 s at time scale 0.05 = 0.1 s


def test_playback_of_a_missing_file_answers_file_not_found(make_sim):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never'}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    event = completed(client, execute(client, call, 'playback', '/nonexistent/prompt.wav'))
    assert event['Application-Response'] == 'FILE NOT FOUND'
    assert not client.events('PLAYBACK_START')


def test_file_string_skips_a_missing_member_silently(make_sim, tmp_path):
    write_wav(str(tmp_path / 'a.wav'), 1.0)
    write_wav(str(tmp_path / 'b.wav'), 1.0)
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never'}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    arg = 'file_string://%s!%s!%s' % (tmp_path / 'a.wav', tmp_path / 'missing.wav', tmp_path / 'b.wav')
    event = completed(client, execute(client, call, 'playback', arg))
    assert event['Application-Response'] == 'FILE PLAYED'
    assert event['variable_playback_ms'] == '2000'


def test_star_stops_a_playback_other_keys_do_not(make_sim, tmp_path):
    write_wav(str(tmp_path / 'long.wav'), 60.0)
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never', 'keys': [[10, '1'], [20, '*']]}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    event = completed(client, execute(client, call, 'playback', str(tmp_path / 'long.wav')))
    assert event['variable_playback_terminator_used'] == '*'
    assert 10000 <= int(event['variable_playback_ms']) < 40000
    assert client.events('PLAYBACK_STOP')[0]['Playback-Status'] == 'break'


def test_hangup_app_and_sendmsg_hangup_end_the_call_with_their_cause(make_sim):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never'}})
    client = login(sim.address)
    first, second = originate(client, '0901'), originate(client, '0902')
    answered(client, first)
    answered(client, second)
    execute(client, first, 'hangup', 'USER_BUSY')
    client.command('sendmsg %s\ncall-command: hangup\nhangup-cause: CALL_REJECTED' % second)
    assert hangup_complete(client, first)['Hangup-Cause'] == 'USER_BUSY'
    assert hangup_complete(client, second)['Hangup-Cause'] == 'CALL_REJECTED'


def test_callee_hanging_up_mid_prompt_still_completes_the_app(make_sim, tmp_path):
    write_wav(str(tmp_path / 'long.wav'), 30.0)
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 2}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    event = completed(client, execute(client, call, 'playback', str(tmp_path / 'long.wav')))
    assert event['Hangup-Cause'] == 'NORMAL_CLEARING' and event['Answer-State'] == 'hangup'
    assert hangup_complete(client, call)['variable_sip_hangup_disposition'] == 'recv_bye'


def test_sendmsg_to_an_unknown_uuid_is_refused(make_sim):
    sim = make_sim()
    client = login(sim.address)
    reply = client.command('sendmsg nosuch\ncall-command: execute\nexecute-app-name: playback')
    assert b'Reply-Text: -ERR invalid session id [nosuch]' in reply


# ---- api commands -----------------------------------------------------------------------------------


def test_api_inspection_commands_follow_the_channel(make_sim):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never'}})
    client = login(sim.address)
    call = originate(client, extra=',autocall_queue=Q9')
    answered(client, call)

    def body(cmd):
        return client.command('api ' + cmd).split(b'\n\n', 1)[1].decode()

    assert body('uuid_exists %s' % call) == 'true'
    assert body('uuid_getvar %s autocall_queue' % call) == 'Q9'
    assert body('uuid_getvar %s nothing_here' % call) == '_undef_'
    rows = json.loads(body('show channels as json'))
    assert rows['row_count'] == 1 and rows['rows'][0]['uuid'] == call
    assert (
        body('hupall NORMAL_CLEARING autocall_queue Q1')
        == '+OK hangup all channels matching [autocall_queue]=[Q1] with cause: NORMAL_CLEARING\n'
    )
    assert body('uuid_exists %s' % call) == 'true'  # Q1 did not match Q9
    assert body('uuid_kill %s' % call) == '+OK\n'
    hangup_complete(client, call)
    assert body('uuid_exists %s' % call) == 'false'
    assert body('uuid_kill %s' % call) == '-ERR No such channel!\n'
    assert body('show channels as json') == '{"row_count": 0}\n'
    assert body('no_such_thing') == '-ERR no_such_thing Command not found!\n'


def test_show_channels_lists_a_new_channel_only_after_the_lag_while_uuid_exists_knows_it_at_once(make_sim):
    sim = make_sim({'show_channels_lag': 200, 'default': {'answer_after': 0.1, 'hangup_after': 'never'}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)

    def body(cmd):
        return client.command('api ' + cmd).split(b'\n\n', 1)[1].decode()

    assert body('uuid_exists %s' % call) == 'true'
    assert body('show channels as json') == '{"row_count": 0}\n'
    deadline = time.monotonic() + 10
    while body('show channels as json') == '{"row_count": 0}\n':  # 200 simulated seconds: 2 s real
        assert time.monotonic() < deadline, 'the channel was never listed'
        gevent.sleep(0.05)
    [row] = json.loads(body('show channels as json'))['rows']
    assert (row['uuid'], row['callstate']) == (call, 'ACTIVE')


@pytest.mark.parametrize('value', [-1, 'soon', True])
def test_a_bad_show_channels_lag_is_refused(value):
    with pytest.raises(ScenarioError, match='show_channels_lag'):
        from_dict({'show_channels_lag': value})


def test_sync_api_originate_replies_before_any_channel_event(make_sim):
    sim = make_sim({'default': {'answer_after': 1, 'hangup_after': 'never'}})
    client = login(sim.address)
    client.send('api originate {origination_uuid=sync-1}sofia/gateway/gw1/0901 &park()\n\n')
    assert client.read_until(lambda m: client.events('CHANNEL_PARK'))
    kinds = [m.split(b'\n', 1)[0] for m in client.messages]
    assert kinds[0] == b'Content-Type: api/response'
    assert b'+OK sync-1\n' in client.messages[0]
    assert not client.events('BACKGROUND_JOB')


def test_only_subscribed_events_are_sent(make_sim):
    sim = make_sim({'default': {'outcome': 'busy'}})
    client = login(sim.address, events='plain CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB')
    call = originate(client)
    hangup_complete(client, call)
    client.read_until(lambda m: len(client.events('BACKGROUND_JOB')) == 1)
    assert {e['Event-Name'] for e in client.events()} == {'CHANNEL_HANGUP_COMPLETE', 'BACKGROUND_JOB'}


def test_greenswitch_inbound_client_runs_api_and_bgapi(make_sim):
    sim = make_sim({'default': {'answer_after': 0.5, 'hangup_after': 1}})
    esl = greenswitch.InboundESL(host=sim.address[0], port=sim.address[1], password='ClueCon')
    esl.connect()
    try:
        jobs = []
        esl.register_handle('BACKGROUND_JOB', jobs.append)
        esl.send('event plain BACKGROUND_JOB')
        assert esl.send('api version').data.startswith('FreeSWITCH Version 1.10.12')
        reply = esl.send('bgapi originate {origination_uuid=gs-1}sofia/gateway/gw1/0901 &park()')
        assert reply.data.startswith('+OK Job-UUID: ')
        deadline = time.monotonic() + 5
        while not jobs and time.monotonic() < deadline:
            gevent.sleep(0.01)
        assert jobs and jobs[0].headers['Job-UUID'] == reply.headers['Job-UUID']
    finally:
        esl.stop()


def test_wrong_password_gets_invalid_then_a_disconnect_notice_and_close(make_sim):
    sim = make_sim()
    from tests.sim_fixtures import RawClient

    client = RawClient(sim.address)
    client.send('auth nope\n\n')
    assert client.read_until(lambda m: client.eof, 2)
    assert b'Reply-Text: -ERR invalid' in client.messages[1]
    assert client.messages[2].startswith(b'Content-Type: text/disconnect-notice\nContent-Length: 67\n\n')


# ---- time, heartbeat, record ------------------------------------------------------------------------


def test_time_scale_compresses_every_duration(make_sim):
    sim = make_sim({'default': {'answer_after': 20, 'hangup_after': 30}}, time_scale=0.005)
    client = login(sim.address)
    started = time.monotonic()
    event = hangup_complete(client, originate(client))
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed <= 1.5  # 50 simulated seconds at 0.005
    assert 29 <= int(event['variable_billsec']) <= 31


def test_heartbeat_arrives_every_interval_scaled(make_sim):
    sim = make_sim(heartbeat=20)
    client = login(sim.address, events='plain HEARTBEAT')
    assert client.read_until(lambda m: len(client.events('HEARTBEAT')) >= 2, 2)
    beat = client.events('HEARTBEAT')[0]
    assert beat['Event-Info'] == 'System Ready' and beat['FreeSWITCH-Version'] == '1.10.12-release~64bit'


def test_record_file_has_one_line_per_originate_and_per_app(make_sim, tmp_path):
    record = tmp_path / 'record.jsonl'
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never'}}, record_path=str(record))
    client = login(sim.address)
    call = originate(client, extra=',autocall_customer=C7')
    answered(client, call)
    completed(client, execute(client, call, 'playback', 'silence_stream://100'))
    client.command('api uuid_kill %s' % call)
    hangup_complete(client, call)
    assert sim.wait_idle(2)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line['event'] for line in lines] == ['app', 'originate']
    call_line = lines[1]
    assert call_line['uuid'] == call and call_line['variables']['autocall_customer'] == 'C7'
    assert call_line['cause'] == 'NORMAL_CLEARING' and call_line['answer_time'] <= call_line['end_time']
    assert call_line['dial'] == 'sofia/gateway/gw1/0901000001'
    assert abs(call_line['wall_time'] - time.time()) < 5  # real time, while 'time' runs 100x faster
    assert call_line['wall_time'] <= call_line['wall_end_time'] <= time.time()
    assert sim.records == lines


# ---- faults -----------------------------------------------------------------------------------------


def test_fault_drop_closes_every_connection(make_sim):
    sim = make_sim()
    first, second = login(sim.address), login(sim.address)
    assert b'+OK drop' in first.command('api sim_fault drop')
    assert first.read_until(lambda m: first.eof, 2) and second.read_until(lambda m: second.eof, 2)


def test_fault_silence_stops_all_writes_but_keeps_the_socket(make_sim):
    sim = make_sim(heartbeat=1)
    client = login(sim.address, events='plain HEARTBEAT')
    client.command('api sim_fault silence 0.3')
    gevent.sleep(0.05)
    started = time.monotonic()
    assert b'FreeSWITCH Version' in client.command('api version')
    assert time.monotonic() - started >= 0.2
    beats = len(client.events('HEARTBEAT'))
    assert client.read_until(lambda m: len(client.events('HEARTBEAT')) > beats, 1)  # writing resumed
    assert not client.eof


def test_fault_refuse_rejects_new_connections_for_a_while(make_sim):
    sim = make_sim()
    sim.refuse(0.3)
    with pytest.raises(OSError):
        socket.create_connection(sim.address, timeout=1).recv(1) or (_ for _ in ()).throw(OSError('closed'))
    time.sleep(0.4)
    client = login(sim.address)
    assert b'FreeSWITCH Version' in client.command('api version')


def test_fault_delay_holds_each_reply(make_sim):
    sim = make_sim()
    client = login(sim.address)
    client.command('api sim_fault delay 200')
    gevent.sleep(0.05)
    started = time.monotonic()
    client.command('api version')
    assert time.monotonic() - started >= 0.19
    client.command('api sim_fault delay 0')


def test_restart_drops_calls_and_connections_and_changes_core_uuid(make_sim):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never'}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    core = client.events('CHANNEL_PARK')[0]['Core-UUID']
    client.command('api sim_restart')
    assert client.read_until(lambda m: client.eof, 2)
    assert not _complete(client, call)
    again = login(sim.address)
    body = again.command('api uuid_exists %s' % call).split(b'\n\n', 1)[1]
    assert body == b'false' and sim.core_uuid != core


def test_shutdown_hangs_up_with_system_shutdown_and_says_goodbye(make_sim):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never'}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    gevent.spawn(sim.shutdown)
    assert client.read_until(lambda m: client.eof, 3)
    assert client.events('SHUTDOWN')
    assert hangup_complete(client, call, 0.1)['Hangup-Cause'] == 'SYSTEM_SHUTDOWN'
    assert (
        client.messages[-1] == b'Content-Type: text/disconnect-notice\nContent-Length: 31\n\n'
        b'The system is being shut down.\n'
    )


# ---- scenario files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    'data, message',
    [
        ({'default': {'outcome': 'maybe'}}, "default.outcome: 'maybe' is not one of"),
        ({'default': {'answer_after': -1}}, 'default.answer_after must be a number of seconds'),
        ({'numbers': [{'outcome': 'busy'}]}, 'numbers[0] needs exactly one of number, glob, regex'),
        ({'numbers': [{'regex': '(', 'outcome': 'busy'}]}, 'numbers[0].regex'),
        ({'numbers': [{'number': '1', 'colour': 'red'}]}, 'numbers[0]: unknown key(s) colour'),
        ({'random': {'weights': {'sing': 1}}}, "random.weights: unknown outcome 'sing'"),
        ({'default': {'keys': [[1.0]]}}, 'default.keys must be a list of'),
        ({'default': {'kill_fails': -1}}, 'default.kill_fails must be a whole number'),
        ({'default': {'kill_fails': 1.5}}, 'default.kill_fails must be a whole number'),
        ({'default': {'kill_reply': 'maybe'}}, "default.kill_reply: 'maybe' is not one of err, ok"),
    ],
)
def test_bad_scenario_is_refused_with_the_key_named(data, message):
    from simulator.scenario import ScenarioError

    with pytest.raises(ScenarioError) as failure:
        from_dict(data)
    assert message in str(failure.value)


def test_demo_scenario_file_loads():
    import os

    from simulator.scenario import load

    path = os.path.join(os.path.dirname(__file__), '..', 'bench', 'scenarios', 'demo.toml')
    scenario = load(path)
    assert scenario.behaviour_for('0901000002').outcome == 'busy'
    assert scenario.knows_gateway('carrier1') and not scenario.knows_gateway('nosuch')


def test_a_client_that_stops_reading_is_disconnected_after_losing_events(make_sim, monkeypatch):
    from simulator import connection

    monkeypatch.setattr(connection, 'MAX_QUEUE', 5)
    monkeypatch.setattr(connection, 'MAX_LOST', 10)
    sim = make_sim(heartbeat=0.5)  # 200 heartbeats a second at SCALE
    client = login(sim.address, events='plain HEARTBEAT')
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn = next(iter(sim.connections))
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    deadline = time.monotonic() + 10
    while sim.connections and time.monotonic() < deadline:
        gevent.sleep(0.05)  # the client reads nothing meanwhile
    assert not sim.connections and conn.lost_events > 10


def test_uuid_kill_while_ringing_cancels_the_call_and_fails_the_job(make_sim):
    sim = make_sim({'default': {'answer_after': 20}})
    client = login(sim.address)
    call = originate(client)
    assert client.read_until(lambda m: [e for e in client.events('CHANNEL_PROGRESS') if e['Unique-ID'] == call])
    assert client.command('api uuid_kill %s ORIGINATOR_CANCEL' % call).endswith(b'+OK\n')
    event = hangup_complete(client, call)
    assert event['Hangup-Cause'] == 'ORIGINATOR_CANCEL' and event['variable_answer_epoch'] == '0'
    assert job_body(client, call) == '-ERR ORIGINATOR_CANCEL\n'
    assert not client.events('CHANNEL_ANSWER')


@pytest.mark.parametrize('reply, said', [('err', b'-ERR No such channel!\n'), ('ok', b'+OK\n')])
def test_a_stuck_channel_outlives_its_failed_kills_and_ends_on_the_next(make_sim, reply, said):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never', 'kill_fails': 2, 'kill_reply': reply}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    for _ in range(2):
        assert client.command('api uuid_kill %s' % call).endswith(said)
        assert client.command('api uuid_exists %s' % call).endswith(b'true')
    assert client.command('api uuid_kill %s' % call).endswith(b'+OK\n')
    assert hangup_complete(client, call)['Hangup-Cause'] == 'NORMAL_CLEARING'


def test_hangup_before_the_channel_got_going_still_ends_it_cleanly(make_sim):
    sim = make_sim({'default': {'answer_after': 1}})
    client = login(sim.address)
    channel = sim.originate('{origination_uuid=early}sofia/gateway/gw1/0901 &park()', job='job-early')
    assert channel.hangup('NORMAL_CLEARING')  # before its greenlet ran
    assert client.read_until(lambda m: _complete(client, 'early'))
    assert job_body(client, 'early') == '-ERR NORMAL_CLEARING\n'
    assert not client.events('CHANNEL_ANSWER')
    assert sim.wait_idle(2)


def test_play_and_get_digits_accepts_a_bare_terminator_when_no_digit_is_required(make_sim):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never', 'keys': [[10.0, '#']]}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    started = time.monotonic()
    event = completed(
        client, execute(client, call, 'play_and_get_digits', '0 1 3 30000 # silence_stream://100 silence optional \\d')
    )
    assert event['variable_read_terminator_used'] == '#' and 'variable_optional' not in event
    assert time.monotonic() - started < 0.5  # it did not go on to a second try of 30 s


def test_early_media_ignored_leaves_the_originate_waiting_for_the_answer(make_sim):
    sim = make_sim({'default': {'early_media': 2, 'answer_after': 6, 'hangup_after': 'never'}})
    client = login(sim.address)
    call = originate(client, extra=',ignore_early_media=true')
    answered(client, call)
    names = [
        e['Event-Name']
        for e in client.events()
        if e.get('Unique-ID', call) == call
        and e['Event-Name'] in ('CHANNEL_PROGRESS_MEDIA', 'CHANNEL_ANSWER', 'BACKGROUND_JOB')
    ]
    assert names == ['CHANNEL_PROGRESS_MEDIA', 'CHANNEL_ANSWER', 'BACKGROUND_JOB']
    assert client.events('CHANNEL_PROGRESS_MEDIA')[0]['Caller-Channel-Progress-Media-Time'] != '0'


def test_early_media_not_ignored_completes_the_originate_before_the_answer(make_sim):
    sim = make_sim({'default': {'early_media': 2, 'answer_after': 30, 'hangup_after': 'never'}})
    client = login(sim.address)
    call = originate(client)  # no ignore_early_media: the prompt would play into ringback
    assert job_body(client, call) == '+OK %s\n' % call
    answered(client, call)  # parked on early media
    played = completed(client, execute(client, call, 'playback', 'silence_stream://1000'))
    assert played['Application-Response'] == 'FILE PLAYED'
    assert not client.events('CHANNEL_ANSWER')
    assert client.read_until(lambda m: client.events('CHANNEL_ANSWER'), 2)
    client.command('api uuid_kill %s' % call)
    assert hangup_complete(client, call)['variable_answer_epoch'] != '0'


def test_every_connected_client_gets_the_events_it_subscribed_to(make_sim):
    sim = make_sim({'default': {'outcome': 'busy'}})
    dialer = login(sim.address, events='plain BACKGROUND_JOB')
    watcher = login(sim.address, events='json CHANNEL_HANGUP_COMPLETE')
    call = originate(dialer)
    assert job_body(dialer, call) == '-ERR USER_BUSY\n'
    assert watcher.read_until(lambda m: any(b'text/event-json' in x for x in m))
    event = json.loads(split_message([m for m in watcher.messages if b'text/event-json' in m][0])[1])
    assert event['Event-Name'] == 'CHANNEL_HANGUP_COMPLETE' and event['Unique-ID'] == call
    assert not dialer.events('CHANNEL_HANGUP_COMPLETE')


def test_bgapi_of_another_command_answers_in_a_background_job(make_sim):
    sim = make_sim()
    client = login(sim.address, events='plain BACKGROUND_JOB')
    client.command('bgapi version\nJob-UUID: v-1')
    assert client.read_until(lambda m: client.events('BACKGROUND_JOB'))
    assert client.events('BACKGROUND_JOB')[0]['Job-Command'] == 'version'
    body = [event_headers(split_message(m)[1])[1] for m in client.messages if b'BACKGROUND_JOB' in m][0]
    assert body == 'FreeSWITCH Version 1.10.12-release~64bit ( 64bit)\n'


@pytest.mark.parametrize('terminators, stopped', [('none', False), ('any', True), ('#', False)])
def test_playback_terminators_variable_decides_which_key_stops_a_playback(make_sim, tmp_path, terminators, stopped):
    write_wav(str(tmp_path / 'long.wav'), 60.0)
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never', 'keys': [[10, '5']]}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    execute(client, call, 'set', 'playback_terminators=%s' % terminators)
    event = completed(client, execute(client, call, 'playback', str(tmp_path / 'long.wav')))
    assert (int(event['variable_playback_ms']) < 60000) is stopped


def test_an_unknown_application_hangs_the_call_up_like_freeswitch(make_sim):
    sim = make_sim({'default': {'answer_after': 0.1, 'hangup_after': 'never'}})
    client = login(sim.address)
    call = originate(client)
    answered(client, call)
    execute(client, call, 'no_such_app', 'x')
    assert hangup_complete(client, call)['Hangup-Cause'] == 'DESTINATION_OUT_OF_ORDER'


def _order(client, call, first, second):
    """Whether event `first` came before `second` on this call ('NAME' or 'NAME/Channel-Call-State')."""
    names = []
    for event in client.events():
        if event.get('Unique-ID') == call or call in event.get('Job-Command-Arg', ''):
            names += [event['Event-Name'], '%s/%s' % (event['Event-Name'], event.get('Channel-Call-State'))]
    return names.index(first) < names.index(second)


def test_varied_event_order_gives_each_captured_order_of_the_racing_events(make_sim):
    sim = make_sim(
        {
            'event_order': 'varied',
            'random': {'seed': 3, 'weights': {'answer': 1, 'busy': 1}},
            'default': {'answer_after': 0.1, 'hangup_after': 0.5},
        }
    )
    client = login(sim.address)
    calls = [originate(client, '09%08d' % n) for n in range(24)]
    for call in calls:
        hangup_complete(client, call)
        job_body(client, call)
    answered_calls = [c for c in calls if [e for e in client.events('CHANNEL_ANSWER') if e['Unique-ID'] == c]]
    refused_calls = [c for c in calls if c not in answered_calls]
    # 02's order: ACTIVE call state before the job result; 01's: after it
    assert {_order(client, c, 'BACKGROUND_JOB', 'CHANNEL_CALLSTATE/ACTIVE') for c in answered_calls} == {True, False}
    # 03's order: job result after CHANNEL_HANGUP_COMPLETE; 04's: right after CHANNEL_HANGUP
    assert {_order(client, c, 'BACKGROUND_JOB', 'CHANNEL_HANGUP_COMPLETE') for c in refused_calls} == {True, False}


def test_captured_event_order_is_the_default(make_sim):
    sim = make_sim({'default': {'outcome': 'busy'}})
    client = login(sim.address)
    calls = [originate(client, '09%08d' % n) for n in range(6)]
    for call in calls:
        job_body(client, call)
    assert {_order(client, c, 'CHANNEL_HANGUP_COMPLETE', 'BACKGROUND_JOB') for c in calls} == {True}


def test_garbage_from_a_client_closes_only_that_connection(make_sim):
    sim = make_sim()
    good = login(sim.address)
    bad = login(sim.address)
    bad.send(b'sendmsg x\nContent-Length: lots\n\n\xff\xfe')
    assert bad.read_until(lambda m: bad.eof, 2)
    assert b'FreeSWITCH Version' in good.command('api version')


def test_the_event_templates_are_exactly_what_the_generator_makes_from_the_vendored_captures(tmp_path):
    from simulator import gen_templates, templates
    from tests.esl_fixtures import CAPTURES as capture_dir

    out = tmp_path / 'events.txt'
    gen_templates.main([str(capture_dir), str(out)])
    shipped = Path(templates.__file__).with_name(templates.DATA)
    assert out.read_text(encoding='utf-8') == shipped.read_text(encoding='utf-8')
    assert templates.parse(out.read_text(encoding='utf-8')) == templates.EVENTS
