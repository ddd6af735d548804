"""Files as the switch sees them: `api file_exists`, the scenario's `unreadable` paths (on disk for
the daemon, out of FreeSWITCH's reach), and what playback, file_string:// and play_and_get_digits
make of a file that cannot be opened. Raw ESL clients on real sockets.
"""

import uuid

import pytest

from simulator import Simulator
from simulator.scenario import ScenarioError, from_dict
from tests.sim_fixtures import login, write_wav

pytestmark = pytest.mark.timeout(30)
SCALE = 0.01


@pytest.fixture
def sounds(tmp_path):
    for name in ('a.wav', 'b.wav', 'locked/c.wav'):
        write_wav(str(tmp_path / name), 1.0)
    return tmp_path


@pytest.fixture
def make_sim():
    started = []

    def make(**scenario):
        scenario.setdefault('default', {'answer_after': 0.1, 'hangup_after': 'never'})
        sim = Simulator(from_dict(scenario), time_scale=SCALE, heartbeat=0).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def api(client, text):
    return client.command('api ' + text).split(b'\n\n', 1)[1].decode()


def parked_call(client):
    call = str(uuid.uuid4())
    client.command('bgapi originate {origination_uuid=%s}sofia/lo/1000@127.0.0.1:5091 &park()' % call)
    assert client.read_until(lambda m: [e for e in client.events('CHANNEL_PARK') if e['Unique-ID'] == call], 5)
    return call


def run_app(client, call, app, arg):
    app_uuid = str(uuid.uuid4())
    client.command(
        'sendmsg %s\ncall-command: execute\nexecute-app-name: %s\nexecute-app-arg: %s\n'
        'event-uuid: %s' % (call, app, arg, app_uuid)
    )

    def done(m):
        return [e for e in client.events('CHANNEL_EXECUTE_COMPLETE') if e.get('Application-UUID') == app_uuid]

    assert client.read_until(done, 5), 'no CHANNEL_EXECUTE_COMPLETE for %s' % app_uuid
    return done(None)[0]


def filestring_events(client):
    return [(e['Event-Subclass'], e['File']) for e in client.events('CUSTOM')]


def test_file_exists_says_true_or_false_without_a_newline(make_sim, sounds):
    client = login(make_sim().address, events=None)
    assert api(client, 'file_exists %s' % (sounds / 'a.wav')) == 'true'
    assert api(client, 'file_exists %s' % (sounds / 'nothere.wav')) == 'false'
    assert api(client, 'file_exists') == 'false'


def test_an_unreadable_directory_hides_its_files_from_file_exists(make_sim, sounds):
    client = login(make_sim(unreadable=[str(sounds / 'locked')]).address, events=None)
    assert api(client, 'file_exists %s' % (sounds / 'locked' / 'c.wav')) == 'false'
    assert api(client, 'file_exists %s' % (sounds / 'a.wav')) == 'true'


def test_playback_of_an_unreadable_file_is_file_not_found_without_playback_events(make_sim, sounds):
    client = login(make_sim(unreadable=[str(sounds / '*' / 'c.wav')]).address)
    done = run_app(client, parked_call(client), 'playback', sounds / 'locked' / 'c.wav')
    assert done['Application-Response'] == 'FILE NOT FOUND'
    assert not client.events('PLAYBACK_START') and not client.events('PLAYBACK_STOP')


def test_file_string_reports_each_member_in_custom_events_and_skips_an_unreadable_one(make_sim, sounds):
    client = login(make_sim(unreadable=[str(sounds / 'locked')]).address)
    a, c, b = sounds / 'a.wav', sounds / 'locked' / 'c.wav', sounds / 'b.wav'
    done = run_app(client, parked_call(client), 'playback', 'file_string://%s!%s!%s' % (a, c, b))
    assert done['Application-Response'] == 'FILE PLAYED'
    assert done['variable_playback_ms'] == '2000'
    assert filestring_events(client) == [
        ('filestring::open', str(a)),
        ('filestring::close', str(a)),
        ('filestring::fail', str(c)),
        ('filestring::open', str(b)),
        ('filestring::close', str(b)),
    ]
    assert all('Unique-ID' not in e for e in client.events('CUSTOM'))


def test_file_string_custom_events_come_around_the_playback_events(make_sim, sounds):
    client = login(make_sim().address)
    run_app(client, parked_call(client), 'playback', 'file_string://%s!%s' % (sounds / 'a.wav', sounds / 'b.wav'))
    names = [
        e['Event-Name'] + e.get('Event-Subclass', '')
        for e in client.events()
        if e['Event-Name'] in ('CUSTOM', 'PLAYBACK_START', 'PLAYBACK_STOP')
    ]
    assert names == [
        'CUSTOMfilestring::open',
        'PLAYBACK_START',
        'CUSTOMfilestring::close',
        'CUSTOMfilestring::open',
        'CUSTOMfilestring::close',
        'PLAYBACK_STOP',
    ]


def test_file_string_with_no_member_to_open_is_file_not_found_after_fail_events(make_sim, sounds):
    client = login(make_sim().address)
    missing = [str(sounds / 'x.wav'), str(sounds / 'y.wav')]
    done = run_app(client, parked_call(client), 'playback', 'file_string://' + '!'.join(missing))
    assert done['Application-Response'] == 'FILE NOT FOUND'
    assert filestring_events(client) == [('filestring::fail', m) for m in missing]
    assert not client.events('PLAYBACK_START')


def test_a_named_subscription_without_custom_gets_no_filestring_events(make_sim, sounds):
    client = login(make_sim().address, events='plain CHANNEL_PARK CHANNEL_EXECUTE_COMPLETE')
    run_app(client, parked_call(client), 'playback', 'file_string://%s!%s' % (sounds / 'a.wav', sounds / 'x.wav'))
    assert not client.events('CUSTOM')


def test_play_and_get_digits_with_an_unreadable_prompt_plays_only_the_invalid_file(make_sim, sounds):
    sim = make_sim(
        unreadable=[str(sounds / 'locked')],
        default={'answer_after': 0.1, 'hangup_after': 'never', 'keys': [[0.5, '1']]},
    )
    client = login(sim.address)
    arg = '1 1 2 4000 # %s %s choice \\d' % (sounds / 'locked' / 'c.wav', sounds / 'a.wav')
    done = run_app(client, parked_call(client), 'play_and_get_digits', arg)
    assert 'variable_choice' not in done and 'variable_read_result' not in done
    assert [e['Playback-File-Path'] for e in client.events('PLAYBACK_START')] == [str(sounds / 'a.wav')] * 2


def test_files_made_unreadable_at_run_time_are_not_found_from_then_on(make_sim, sounds):
    sim = make_sim()
    client = login(sim.address, events=None)
    assert api(client, 'file_exists %s' % (sounds / 'a.wav')) == 'true'
    sim.set_unreadable([str(sounds / 'a.wav')])
    assert api(client, 'file_exists %s' % (sounds / 'a.wav')) == 'false'


def test_sim_fault_unreadable_over_esl_replaces_the_list_and_clears_it_when_empty(make_sim, sounds):
    client = login(make_sim(unreadable=[str(sounds / 'b.wav')]).address, events=None)
    assert api(client, 'sim_fault unreadable %s %s' % (sounds / 'a.wav', sounds / 'locked')).startswith('+OK')
    assert [api(client, 'file_exists %s' % (sounds / name)) for name in ('a.wav', 'b.wav', 'locked/c.wav')] == [
        'false',
        'true',
        'false',
    ]
    api(client, 'sim_fault unreadable')
    assert api(client, 'file_exists %s' % (sounds / 'a.wav')) == 'true'


@pytest.mark.parametrize('value', ['/a/b.wav', ['relative/path.wav'], [3]])
def test_a_bad_unreadable_list_is_refused(value):
    with pytest.raises(ScenarioError, match='unreadable'):
        from_dict({'unreadable': value})
