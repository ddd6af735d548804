"""The simulator's api_hangup_hook and its two key-value stores, as FreeSWITCH 1.10.12 has them:
the hook runs once at hangup with `${...}` expanded from the channel (switch_core_state_machine.c
752-861), `hash`/`db` answer mod_hash's and mod_db's exact replies, an originate variable holding
`${` is refused unless origination_nested_vars=true."""

import uuid as uuidlib

import pytest

from simulator import Simulator
from simulator.hook import expand, split
from simulator.kv import HASH_USAGE
from simulator.scenario import from_dict
from tests.sim_fixtures import login

FACTS = '${hangup_cause}:${answer_uepoch}:${end_uepoch}:${sip_term_status}:${digits_dialed:0:3}'


@pytest.fixture
def sim():
    scenario = {
        'originate_completes_after': 0,
        'default': {'answer_after': 1, 'hangup_after': 5, 'keys': [[2, '1234']]},
        'numbers': [{'number': '2000', 'outcome': 'busy'}, {'number': '3000', 'hangup_after': 'never'}],
    }
    sim = Simulator(from_dict(scenario), time_scale=0.01, heartbeat=0).start()
    yield sim
    sim.stop()


def originate(sim, user='1000', nested=True, hook=None):
    call = str(uuidlib.uuid4())
    variables = ['origination_uuid=' + call] + (['origination_nested_vars=true'] if nested else [])
    variables.append('api_hangup_hook=' + (hook or 'hash::insert/autocall/7/%s:%s' % (call, FACTS)))
    sim.originate('{%s}sofia/lo/%s@127.0.0.1:5091 &park()' % (','.join(variables), user))
    return call


def test_the_hook_stores_the_calls_end_expanded_from_its_variables(sim):
    client = login(sim.address, events='plain CHANNEL_HANGUP_COMPLETE')
    call = originate(sim)
    assert client.read_until(lambda m: client.events('CHANNEL_HANGUP_COMPLETE'), 5)
    [done] = client.events('CHANNEL_HANGUP_COMPLETE')
    record = client.command('api hash select/autocall/7').split(b'\n\n', 1)[1].decode()
    assert record == '%s:NORMAL_CLEARING:%s:%s:200:123' % (
        call,
        done['variable_answer_uepoch'],
        done['variable_end_uepoch'],
    )
    assert done['variable_digits_dialed'] == '1234'  # ${digits_dialed:0:3} kept three


def test_a_variable_set_with_uuid_setvar_before_the_hangup_is_in_the_record(sim):
    call = originate(sim, user='3000', hook='hash::insert/autocall/8/${autocall_result}')
    assert sim.api('uuid_setvar', '%s autocall_result wants_agent' % call) == '+OK\n'
    assert sim.api('uuid_setvar', '%s autocall_result promise_to_pay' % call) == '+OK\n'
    assert sim.api('uuid_getvar', '%s autocall_result' % call) == 'promise_to_pay'
    assert sim.api('uuid_kill', call) == '+OK\n'
    assert sim.wait_idle(5)
    assert sim.api('hash', 'select/autocall/8') == 'promise_to_pay'


def test_uuid_setvar_answers_as_mod_commands(sim):
    call = originate(sim, user='3000')
    assert sim.api('uuid_setvar', '%s some_var' % call) == '+OK\n'  # no value: unset
    assert sim.api('uuid_getvar', '%s some_var' % call) == '_undef_'
    assert sim.api('uuid_setvar', 'no-such-call v x') == '-ERR No such channel!\n'
    assert [sim.api('uuid_setvar', bad) for bad in ('', call)] == ['-USAGE: <uuid> <var> [value]\n'] * 2


def test_an_unanswered_call_runs_its_hook_too(sim):
    call = originate(sim, user='2000')
    assert sim.wait_idle(5)
    [record] = [r for r in sim.records if r['uuid'] == call]
    # no key: digits_dialed is "none", of which ${digits_dialed:0:3} keeps "non"
    ended = int(record['end_time'] * 1000000)
    assert sim.api('hash', 'select/autocall/7') == '%s:USER_BUSY:0:%d:486:non' % (call, ended)


def test_a_hook_variable_holding_a_variable_is_refused_without_origination_nested_vars(sim, caplog):
    call = originate(sim, nested=False)
    assert sim.channels[call].getvar('api_hangup_hook') == '_undef_'
    assert 'Invalid data (${api_hangup_hook} contains a variable)' in caplog.text
    assert sim.wait_idle(5)
    assert sim.api('hash', 'select/autocall/7') == ''
    assert [r['variables'] for r in sim.records][-1] == {'origination_uuid': call}


def test_nested_braces_do_not_end_the_originate_variables(sim):
    call = originate(sim, user='3000')
    channel = sim.channels[call]
    assert channel.target.user == '3000'
    assert channel.getvar('api_hangup_hook') == 'hash::insert/autocall/7/%s:%s' % (call, FACTS)


def test_a_switch_that_crashes_runs_no_hook_and_forgets_its_hash_but_not_its_db(sim):
    sim.api('db', 'insert/autocall/1/kept')
    call = originate(sim, user='3000')
    sim.api('hash', 'insert/autocall/9/old')
    sim.restart()
    assert call not in sim.channels
    assert (sim.api('hash', 'select/autocall/7'), sim.api('hash', 'select/autocall/9')) == ('', '')
    assert sim.api('db', 'select/autocall/1') == 'kept'


@pytest.mark.parametrize(
    'hook, parts',
    [('hash::insert/a/b/c:d', ('hash', 'insert/a/b/c:d')), ('db insert/a/b/c', ('db', 'insert/a/b/c'))],
)
def test_the_hook_splits_at_a_double_colon_else_at_a_space(hook, parts):
    assert split(hook) == parts


def test_expansion_of_names_and_substrings_and_of_unset_variables():
    values = {'a': 'abcdef', 'n': 'none'}.get
    assert expand('${a}/${a:2}/${a:0:3}/${n:0:64}/[${unset}]', values) == 'abcdef/cdef/abc/none/[]'


def test_hash_answers_as_mod_hash(sim):
    run = lambda args: sim.api('hash', args)  # noqa: E731
    assert run('select/r/k') == ''
    assert run('insert/r/k/v/with/slashes') == '+OK\n'
    assert run('select/r/k') == 'v/with/slashes'
    assert run('insert_ifempty/r/k/w') == '-ERR key already exists\n'
    assert run("delete_ifmatch/r/k/w") == "-ERR Doesn't match\n"
    assert run('delete_ifmatch/r/k/v/with/slashes') == '+OK\n'
    assert run('delete/r/k') == '-ERR Not found\n'
    assert [run(bad) for bad in ('', 'select/r', 'insert/r/k', 'frob/r/k')] == [HASH_USAGE] * 4
    assert HASH_USAGE == '-ERR Usage: hash insert|insert_ifempty|select|delete|delete_ifmatch/realm/key[/value]\n'


def test_db_answers_as_mod_db(sim):
    run = lambda args: sim.api('db', args)  # noqa: E731
    assert (run('select/r/k'), run('exists/r/k')) == ('', 'false')
    assert run('insert/r/k/' + 'x' * 300) == '+OK'
    assert run('select/r/k') == 'x' * 255  # read into a 256-byte buffer
    assert (run('insert/r/k2/y'), run('count/r'), run('count'), run('list/r'), run('exists/r/k2')) == (
        '+OK',
        '2',
        '1',
        'k,k2',
        'true',
    )
    assert run('delete/r/k') == '+OK'
    assert [run(bad) for bad in ('', 'insert/r/k', 'select/r', 'frob/r/k')] == ['!err!'] * 4
