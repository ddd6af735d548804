"""The dialplan applications the simulator can run on a channel (sendmsg execute / uuid_broadcast).

Each app is `func(channel, arg)`; it may wait (simulated time) through `channel.wait`, which
raises Hangup when the call ends meanwhile. Behaviour follows mod_dptools and
switch_ivr_play_say.c of FreeSWITCH 1.10 (see docs/simulator.md for what is simplified).
"""
import logging
import re

from daemon.simulator import sequences as seq
from daemon.simulator.events import url_encode

logger = logging.getLogger(__name__)
SAMPLE_RATE = 8000


def playback(channel, arg):
    """Play a file, file_string://a!b, tone_stream:// or silence_stream://. '*' stops it by default."""
    duration = channel.sim.media.duration(arg)
    if duration is None:
        channel.set_var('current_application_response', 'FILE NOT FOUND')
        return
    terminators = _playback_terminators(channel.getvar('playback_terminators'))
    digit = _play(channel, arg, duration, lambda d: d in terminators)
    if digit is not None:
        channel.set_var('playback_terminator_used', digit)
    channel.set_var('current_application_response', 'FILE PLAYED')


def _playback_terminators(value):
    # mod_dptools on_dtmf: unset -> '*', 'any' -> every key, 'none' -> no key stops it
    if value == '_undef_':
        return '*'
    return {'any': '1234567890*#', 'none': ''}.get(value.lower(), value)


def _play(channel, path, duration, stop):
    """PLAYBACK_START, wait, playback_* variables, PLAYBACK_STOP. Returns the digit that stopped it."""
    channel.fire(seq.PLAYBACK_START, play_file=url_encode(path))
    started = channel.sim.clock.now()
    digit = channel.wait(duration, stop)
    played = min(duration, channel.sim.clock.now() - started)
    samples = int(played * SAMPLE_RATE)
    channel.set_var('playback_last_offset_pos', samples)
    channel.set_var('playback_seconds', int(played))
    channel.set_var('playback_ms', int(played * 1000))
    channel.set_var('playback_samples', samples)
    channel.fire(seq.PLAYBACK_STOP, play_file=url_encode(path), play_status='break' if digit else 'done')
    return digit


def play_and_get_digits(channel, arg):
    """min max tries timeout terminators file invalid_file var_name regexp [digit_timeout] [transfer_on_failure]

    Digits go into var_name (cleared at the start of every try, as switch_ivr_read does); read_result
    says success / timeout / failure; a regexp mismatch puts the digits in <var_name>_invalid.
    With no valid input the app just ends: var_name stays unset and read_result is not 'success'.
    """
    args = _split(arg)
    if len(args) < 5:
        logger.warning('channel %s: play_and_get_digits needs at least 5 arguments, got %r', channel.uuid, arg)
        return
    args += [''] * (11 - len(args))
    min_digits, max_digits, tries, timeout = (_int(a) for a in args[:4])
    terminators, prompt, invalid, var_name, regexp = args[4:9]
    # the corrections play_and_get_digits_function makes before it starts
    min_digits = max(min_digits, 0)
    max_digits = max(max_digits, min_digits)
    timeout = max(timeout, 1000)
    terminators = terminators or '#'
    digit_timeout = _int(args[9]) or timeout
    if regexp and var_name:
        channel.set_var(var_name + '_invalid', None)
    while tries > 0:
        digits, status, terminator = _read(channel, min_digits, max_digits, prompt, var_name, timeout,
                                           terminators, digit_timeout)
        if status == 'timeout' and len(digits) >= min_digits:
            status = 'success'
        if min_digits == 0 and not digits and terminator is not None:
            return  # an empty answer closed by a terminator is a valid one when none is required
        if status == 'success' and digits:
            if not regexp or re.search(regexp, digits):
                return
            channel.set_var(var_name, None)
            if var_name:
                channel.set_var(var_name + '_invalid', digits)
        tries -= 1
        if invalid and invalid != 'silence':
            _play_prompt(channel, invalid, None)


def _read(channel, min_digits, max_digits, prompt, var_name, timeout_ms, terminators, digit_timeout_ms):
    """One try of switch_ivr_read: play the prompt (a key interrupts it), then collect."""
    channel.set_var('read_result', None)
    if var_name:
        channel.set_var(var_name, None)
    digits, terminator, status = '', None, 'success'
    first = _play_prompt(channel, prompt, lambda d: True) if prompt and prompt != 'silence' else None
    if first is not None:
        if first in terminators:
            terminator = first
        else:
            digits = first
    while terminator is None and len(digits) < max_digits:
        wait_ms = digit_timeout_ms if digits else timeout_ms
        digit = channel.wait(wait_ms / 1000.0, lambda d: True)
        if digit is None:
            status = 'timeout'
            break
        if digit in terminators:
            terminator = digit
        else:
            digits += digit
    if terminator is not None:
        channel.set_var('read_terminator_used', terminator)
    if min_digits and len(digits) < min_digits:
        status = 'failure'
    channel.set_var('read_result', status)
    if var_name and digits:
        channel.set_var(var_name, digits)
    return digits, status, terminator


def _play_prompt(channel, path, stop):
    duration = channel.sim.media.duration(path)
    if duration is None:
        return None
    return _play(channel, path, duration, stop)


def sleep(channel, arg):
    """sleep <ms>: time passes; keys are heard (DTMF events) but do not end it."""
    channel.wait(_int(arg) / 1000.0)


def hangup(channel, arg):
    """hangup [cause]: CHANNEL_HANGUP goes out before this app's EXECUTE_COMPLETE."""
    channel.hangup(arg.strip() or 'NORMAL_CLEARING')


def set_variable(channel, arg):
    """set name=value (value empty: unset)."""
    name, _, value = arg.partition('=')
    channel.set_var(name.strip(), value or None)


def nothing(channel, arg):
    """answer / pre_answer / park / transfer: the outbound leg is already answered and parked."""


APPS = {'playback': playback, 'play_and_get_digits': play_and_get_digits, 'sleep': sleep,
        'hangup': hangup, 'set': set_variable, 'answer': nothing, 'pre_answer': nothing,
        'park': nothing, 'transfer': nothing}


def _split(arg):
    # switch_separate_string: spaces separate, quotes group, backslashes stay (regexps need them)
    return [word[1:-1] if word[:1] in '\'"' and word[-1:] == word[:1] and len(word) > 1 else word
            for word in re.findall(r"'[^']*'|\"[^\"]*\"|\S+", arg)]


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0
