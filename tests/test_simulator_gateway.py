"""Calls through sofia/gateway/<gw>/<number>: named and addressed as mod_sofia does it (no gateway
call was captured; docs/simulator.md cites the source). Raw ESL clients on real sockets."""

import json
import uuid

import pytest

from simulator import Simulator
from simulator.scenario import ScenarioError, from_dict
from tests.sim_fixtures import login

pytestmark = pytest.mark.timeout(30)
ANSWERING = {'answer_after': 0.1, 'hangup_after': 'never'}


@pytest.fixture
def make_sim():
    started = []

    def make(gateways):
        sim = Simulator(from_dict({'gateways': gateways, 'default': ANSWERING}), time_scale=0.01, heartbeat=0)
        started.append(sim.start())
        return sim

    yield make
    for sim in started:
        sim.stop()


def parked_call(client, dial):
    call = str(uuid.uuid4())
    client.command('bgapi originate {origination_uuid=%s}%s &park()' % (call, dial))
    assert client.read_until(lambda m: [e for e in client.events('CHANNEL_PARK') if e['Unique-ID'] == call], 5)
    return call


def event(client, name, call):
    return next(e for e in client.events(name) if e['Unique-ID'] == call)


def test_a_gateway_call_is_named_after_the_gateways_profile_and_addressed_to_its_proxy(make_sim):
    sim = make_sim({'carrier': {'profile': 'external', 'proxy': '203.0.113.7:5070'}})
    client = login(sim.address)
    call = parked_call(client, 'sofia/gateway/carrier/0901000001')
    create = event(client, 'CHANNEL_CREATE', call)
    assert create['Channel-Name'] == 'sofia/external/0901000001'
    assert create['variable_sip_gateway_name'] == 'carrier'
    assert create['variable_sip_profile_name'] == 'gateway'
    assert create['variable_sofia_profile_name'] == 'external'
    assert create['variable_sip_req_uri'] == '0901000001@203.0.113.7:5070'
    assert create['variable_sip_destination_url'] == 'sip:0901000001@203.0.113.7:5070'


def test_a_gateway_calls_answer_carries_the_far_ends_user_agent_and_allow(make_sim):
    sim = make_sim({'carrier': {'user_agent': 'Acme SBC 5.1', 'allow': 'INVITE, ACK, BYE'}})
    client = login(sim.address)
    call = parked_call(client, 'sofia/gateway/carrier/0901000001')
    answer = event(client, 'CHANNEL_ANSWER', call)
    assert (answer['variable_sip_user_agent'], answer['variable_sip_allow']) == ('Acme SBC 5.1', 'INVITE, ACK, BYE')
    assert 'variable_sip_user_agent' not in event(client, 'CHANNEL_CREATE', call)


def test_a_listed_gateway_uses_the_external_profile_and_its_name_as_proxy(make_sim):
    sim = make_sim(['carrier'])
    client = login(sim.address)
    call = parked_call(client, 'sofia/gateway/carrier/0901000001')
    create = event(client, 'CHANNEL_CREATE', call)
    assert (create['Channel-Name'], create['variable_sip_req_uri']) == (
        'sofia/external/0901000001',
        '0901000001@carrier',
    )
    rows = json.loads(client.command('api show channels as json').split(b'\n\n', 1)[1])['rows']
    assert [row['name'] for row in rows] == ['sofia/external/0901000001']


def test_a_direct_sofia_call_has_no_gateway_variables(make_sim):
    sim = make_sim(['carrier'])
    client = login(sim.address)
    call = parked_call(client, 'sofia/lo/1000@127.0.0.1:5091')
    answer = event(client, 'CHANNEL_ANSWER', call)
    assert answer['variable_sip_profile_name'] == 'lo' and answer['Channel-Name'] == 'sofia/lo/1000@127.0.0.1:5091'
    assert not {'variable_sip_gateway_name', 'variable_sip_user_agent', 'variable_sip_allow'} & set(answer)


def test_the_record_keeps_the_dial_string_of_a_gateway_call(make_sim):
    sim = make_sim(['carrier'])
    client = login(sim.address)
    call = parked_call(client, 'sofia/gateway/carrier/0901000001')
    client.command('api uuid_kill %s' % call)
    assert sim.wait_idle(5)
    assert [r['dial'] for r in sim.records if r['event'] == 'originate'] == ['sofia/gateway/carrier/0901000001']


@pytest.mark.parametrize('value', ['carrier', {'carrier': {'realm': 'x'}}, {'carrier': 'external'}])
def test_a_bad_gateways_setting_is_refused(value):
    with pytest.raises(ScenarioError, match='gateways'):
        from_dict({'gateways': value})
