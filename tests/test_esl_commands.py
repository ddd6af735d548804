"""daemon.esl.commands: the exact text of what we send FreeSWITCH (the arguments of a call's
applications are held to the same in tests/test_ivr.py, built from real templates)."""

import pytest

from daemon.esl import ESLUnsafeArgument, commands


def test_originate_carries_only_our_tokens_in_a_fixed_order():
    assert commands.originate(
        uuid='5b1c',
        number='0901234567',
        attempt_id=7,
        queue_id=3,
        dial_string='sofia/gateway/carrier/{number}',
        caller_id='02812345',
        originate_timeout=30,
        park_timeout=600,
    ) == (
        'originate {origination_uuid=5b1c,ignore_early_media=true,originate_timeout=30,park_timeout=600,'
        'playback_terminators=none,autocall_attempt=7,accountcode=autocall_q3,'
        'origination_caller_id_number=02812345}sofia/gateway/carrier/0901234567 &park()'
    )


def _originate(**given) -> str:
    """commands.originate with plain settings, no caller id, and `given` on top."""
    settings = dict(
        number='1',
        attempt_id=1,
        queue_id=1,
        dial_string='loopback/{number}',
        caller_id='',
        originate_timeout=5,
        park_timeout=5,
    )
    return commands.originate(**(settings | given))


def test_originate_without_caller_id_sets_none():
    text = _originate(uuid='u')
    assert 'origination_caller_id_number' not in text


def test_originate_with_a_slot_carries_the_hangup_hook_that_records_the_end():
    text = _originate(uuid='5b1c', slot=12)
    assert text.endswith(
        ',origination_nested_vars=true,api_hangup_hook=hash::insert/autocall/12/5b1c:${hangup_cause}:'
        '${answer_uepoch}:${end_uepoch}:${sip_term_status}:${digits_dialed:0:64}:${autocall_result}}loopback/1 &park()'
    )
    hook = commands.hangup_hook(12, '5b1c')
    # one word (the originate splits on spaces), no , or quote (its {...} splits on them)
    assert ' ' not in hook and ',' not in hook and "'" not in hook and '\\' not in hook
    assert commands.hangup_record(12) == 'hash select/autocall/12'
    with pytest.raises(ESLUnsafeArgument):
        commands.hangup_hook(1, 'a b')


def test_the_result_goes_on_the_channel_only_as_a_name():
    assert commands.uuid_setvar('5b1c', commands.RESULT_VAR, 'promise_to_pay') == (
        'uuid_setvar 5b1c autocall_result promise_to_pay'
    )
    for value in ('', 'two words', 'a:b', 'x}', '${hangup_cause}', 'a\n'):
        with pytest.raises(ESLUnsafeArgument):
            commands.uuid_setvar('5b1c', commands.RESULT_VAR, value)


def test_execute_is_one_sendmsg_with_event_lock_and_our_event_uuid():
    assert commands.execute('u1', 'playback', '/s/a.wav', 'e1') == (
        'sendmsg u1\ncall-command: execute\nexecute-app-name: playback\nexecute-app-arg: /s/a.wav\n'
        'event-lock: true\nevent-uuid: e1'
    )
    assert 'execute-app-arg' not in commands.execute('u1', 'answer', '', 'e2')


@pytest.mark.parametrize(
    'build',
    [
        lambda: commands.execute('u1 x', 'playback', '', 'e'),
        lambda: commands.execute('u1', 'playback', 'a\nb', 'e'),
        lambda: commands.bgapi('originate x', 'job id'),
        lambda: commands.api('status\nauth x'),
    ],
)
def test_a_line_break_or_a_split_token_never_reaches_the_wire(build):
    with pytest.raises(ESLUnsafeArgument):
        build()


@pytest.mark.parametrize(
    'text, safe',
    [
        ('sofia/gateway/carrier/', True),
        ('user/1000@example.com:5060+', True),
        ('sofia/gateway/{x}/', False),
        ('a b', False),
        ('a,b', False),
        ("a'b", False),
    ],
)
def test_dial_safe_allows_only_plain_characters(text, safe):
    assert commands.dial_safe(text) is safe
