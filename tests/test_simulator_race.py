"""The answer/park race: an execute that reaches the channel before the originate has completed
runs in CS_CONSUME_MEDIA and is cut short when the originate sets CS_EXECUTE. Also park's own
park_timeout.

Raw ESL clients on real sockets; the window (`originate_completes_after`) is made long enough
that a client reacting to CHANNEL_ANSWER always lands inside it.
"""

import uuid

import pytest

from simulator import Simulator
from simulator.scenario import ScenarioError, from_dict
from tests.sim_fixtures import login, write_wav

pytestmark = pytest.mark.timeout(30)
SCALE = 0.01
WINDOW = 2.0  # simulated seconds from CHANNEL_ANSWER to the originate's completion: 20 ms real


@pytest.fixture
def prompt(tmp_path):
    path = str(tmp_path / 'prompt.wav')
    write_wav(path, 3.0)
    return path


@pytest.fixture
def sim():
    scenario = {'originate_completes_after': WINDOW, 'default': {'answer_after': 0.1, 'hangup_after': 'never'}}
    sim = Simulator(from_dict(scenario), time_scale=SCALE, heartbeat=0).start()
    yield sim
    sim.stop()


def call_and_play_on(client, event_name, app, arg):
    """Originate, wait for `event_name` of the call, send the execute at once; returns the
    call uuid and the Application-UUID."""
    call, app_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    client.command('bgapi originate {origination_uuid=%s}sofia/lo/1000@127.0.0.1:5091 &park()' % call)
    assert client.read_until(lambda m: _of(client, event_name, call), 5)
    client.command(
        'sendmsg %s\ncall-command: execute\nexecute-app-name: %s\nexecute-app-arg: %s\n'
        'event-uuid: %s' % (call, app, arg, app_uuid)
    )
    return call, app_uuid


def completion(client, app_uuid):
    def done(m):
        return [e for e in client.events('CHANNEL_EXECUTE_COMPLETE') if e.get('Application-UUID') == app_uuid]

    assert client.read_until(done, 5), 'no CHANNEL_EXECUTE_COMPLETE for %s' % app_uuid
    return done(None)[0]


def _of(client, name, call):
    return [e for e in client.events(name) if e.get('Unique-ID') == call]


def names_of(client, call):
    """The call's events in order; the job result counts as the call's."""
    return [
        e['Event-Name'] + ('(%s)' % e['Application'] if 'Application' in e else '')
        for e in client.events()
        if e.get('Unique-ID') == call or call in e.get('Job-Command-Arg', '')
        if e['Event-Name'] not in ('API', 'CHANNEL_STATE', 'CHANNEL_CALLSTATE', 'CALL_UPDATE')
    ]


def test_playback_sent_on_channel_answer_loses_the_race_with_playback_error(sim, prompt):
    client = login(sim.address)
    _call, app_uuid = call_and_play_on(client, 'CHANNEL_ANSWER', 'playback', prompt)
    done = completion(client, app_uuid)
    assert done['Application-Response'] == 'PLAYBACK ERROR'
    assert done['variable_current_application_response'] == 'PLAYBACK ERROR'
    assert int(done['variable_playback_ms']) < 3000


def test_playback_sent_on_channel_park_plays_the_whole_file(sim, prompt):
    client = login(sim.address)
    _call, app_uuid = call_and_play_on(client, 'CHANNEL_PARK', 'playback', prompt)
    done = completion(client, app_uuid)
    assert done['Application-Response'] == 'FILE PLAYED'
    assert done['variable_playback_ms'] == '3000'


def test_a_cut_playback_ends_after_the_job_result_and_before_park(sim, prompt):
    client = login(sim.address)
    call, app_uuid = call_and_play_on(client, 'CHANNEL_ANSWER', 'playback', prompt)
    completion(client, app_uuid)
    assert client.read_until(lambda m: _of(client, 'CHANNEL_PARK', call), 5)
    assert names_of(client, call)[-9:] == [
        'CHANNEL_ANSWER',
        'CHANNEL_EXECUTE(playback)',
        'PLAYBACK_START',
        'BACKGROUND_JOB',
        'PLAYBACK_STOP',
        'CHANNEL_EXECUTE_COMPLETE(playback)',
        'PRIVATE_COMMAND',
        'CHANNEL_EXECUTE(park)',
        'CHANNEL_PARK',
    ]
    assert _of(client, 'PLAYBACK_STOP', call)[0]['Playback-Status'] == 'done'


def test_play_and_get_digits_cut_by_the_race_ends_without_digits_or_read_result(sim, prompt):
    client = login(sim.address)
    arg = '1 1 3 4000 # %s silence_stream://250 choice ^[129]$' % prompt
    call, app_uuid = call_and_play_on(client, 'CHANNEL_ANSWER', 'play_and_get_digits', arg)
    done = completion(client, app_uuid)
    assert done['Application-Response'] == '_none_'
    assert 'variable_choice' not in done and 'variable_read_result' not in done
    assert len(_of(client, 'PLAYBACK_START', call)) == 1  # no invalid_file, no further try


def test_executes_after_park_run_normally_once_the_race_was_lost(sim, prompt):
    client = login(sim.address)
    call, first = call_and_play_on(client, 'CHANNEL_ANSWER', 'playback', prompt)
    completion(client, first)
    second = str(uuid.uuid4())
    client.command(
        'sendmsg %s\ncall-command: execute\nexecute-app-name: playback\nexecute-app-arg: %s\n'
        'event-uuid: %s' % (call, prompt, second)
    )
    assert completion(client, second)['Application-Response'] == 'FILE PLAYED'


def test_channel_park_reaches_a_client_that_names_it(sim, prompt):
    client = login(sim.address, events='plain CHANNEL_PARK CHANNEL_EXECUTE_COMPLETE')
    _call, app_uuid = call_and_play_on(client, 'CHANNEL_PARK', 'playback', prompt)
    assert completion(client, app_uuid)['Application-Response'] == 'FILE PLAYED'
    assert {e['Event-Name'] for e in client.events()} == {'CHANNEL_PARK', 'CHANNEL_EXECUTE_COMPLETE'}


def test_without_a_window_the_job_result_follows_the_answer_at_once():
    scenario = {'originate_completes_after': 0, 'default': {'answer_after': 0.1, 'hangup_after': 'never'}}
    sim = Simulator(from_dict(scenario), time_scale=SCALE, heartbeat=0).start()
    try:
        client = login(sim.address)
        call = str(uuid.uuid4())
        client.command('bgapi originate {origination_uuid=%s}sofia/lo/1000@127.0.0.1:5091 &park()' % call)
        assert client.read_until(lambda m: _of(client, 'CHANNEL_PARK', call), 5)
        assert names_of(client, call)[-4:] == [
            'CHANNEL_ANSWER',
            'BACKGROUND_JOB',
            'CHANNEL_EXECUTE(park)',
            'CHANNEL_PARK',
        ]
    finally:
        sim.stop()


@pytest.mark.parametrize('value', [-1, 'soon', True])
def test_a_bad_originate_completes_after_is_refused(value):
    with pytest.raises(ScenarioError, match='originate_completes_after'):
        from_dict({'originate_completes_after': value})


def test_park_consumes_park_timeout_and_hangs_up_with_its_cause_when_it_expires(sim):
    client = login(sim.address)
    call = str(uuid.uuid4())
    client.command(
        'bgapi originate {origination_uuid=%s,park_timeout=5:ALLOTTED_TIMEOUT}sofia/lo/1000@127.0.0.1:5091'
        ' &park()' % call
    )
    assert client.read_until(lambda m: _of(client, 'CHANNEL_HANGUP_COMPLETE', call), 5)
    [park_execute] = [e for e in _of(client, 'CHANNEL_EXECUTE', call) if e['Application'] == 'park']
    assert park_execute['variable_park_timeout'] == '5:ALLOTTED_TIMEOUT'
    assert 'variable_park_timeout' not in _of(client, 'CHANNEL_PARK', call)[0]
    done = _of(client, 'CHANNEL_HANGUP_COMPLETE', call)[0]
    assert done['Hangup-Cause'] == 'ALLOTTED_TIMEOUT' and 'variable_park_timeout' not in done
    parked_at = int(_of(client, 'CHANNEL_PARK', call)[0]['Event-Date-Timestamp']) // 10**6
    assert 4 <= int(done['variable_end_epoch']) - parked_at <= 5  # whole epoch seconds, as park counts
