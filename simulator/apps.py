"""The dialplan applications the simulator can run on a channel (sendmsg execute / uuid_broadcast).

Each app is `func(channel, arg)`; it may wait (simulated time) through `channel.wait`, which
raises NotReady when switch_channel_ready() turns false meanwhile. Behaviour follows mod_dptools and
switch_ivr_play_say.c of FreeSWITCH 1.10 (see docs/simulator.md for what is simplified).
"""

import logging
import re

from simulator import sequences as seq
from simulator.events import url_encode

logger = logging.getLogger(__name__)
SAMPLE_RATE = 8000


class NotReady(Exception):
    """switch_channel_ready() turned false while an app waited: the app must end now."""


class Hangup(NotReady):
    """The call was hung up."""


class OriginateCompleted(NotReady):
    """The app was started in CS_CONSUME_MEDIA and the originate has now set CS_EXECUTE."""


class FileNotFound(Exception):
    """switch_ivr_play_file: SWITCH_STATUS_NOTFOUND, nothing could be opened."""


def playback(channel, arg):
    """Play a file, file_string://a!b, tone_stream:// or silence_stream://. '*' stops it by default.

    Application-Response as mod_dptools playback_function sets it: FILE PLAYED (also when a key
    stopped it), FILE NOT FOUND, or PLAYBACK ERROR when the channel stopped being ready.
    """
    channel.set_var('playback_terminator_used', None)  # mod_dptools.c:3053 sets it to "", which unsets it
    terminators = _playback_terminators(channel.getvar('playback_terminators'))
    try:
        digit = _play(channel, arg, lambda d: d in terminators)
    except FileNotFound:
        channel.set_var('current_application_response', 'FILE NOT FOUND')
        return
    except NotReady:  # switch_ivr_play_file returns SWITCH_STATUS_FALSE
        channel.set_var('current_application_response', 'PLAYBACK ERROR')
        raise
    if digit is not None:
        channel.set_var('playback_terminator_used', digit)
    channel.set_var('current_application_response', 'FILE PLAYED')


def _playback_terminators(value):
    # mod_dptools on_dtmf: unset -> '*', 'any' -> every key, 'none' -> no key stops it
    if value == '_undef_':
        return '*'
    return {'any': '1234567890*#', 'none': ''}.get(value.lower(), value)


def _play(channel, path, stop):
    """PLAYBACK_START, wait, playback_* variables, PLAYBACK_STOP. Returns the digit that stopped it.

    Raises FileNotFound (no PLAYBACK events) when nothing can be opened. A file_string:// plays
    its members in turn with mod_dptools next_file's CUSTOM events, a missing member only
    firing filestring::fail. When the channel stops being ready meanwhile, PLAYBACK_STOP still
    says 'done' (capture 11) and NotReady goes on to the caller.
    """
    members = channel.switch.media.members(path)
    listed = path.startswith('file_string://')
    current = _next_member(channel, members, listed)
    if current is None:
        raise FileNotFound(path)
    channel.fire(seq.PLAYBACK_START, play_file=url_encode(path))
    started, digit = channel.switch.clock.now(), None
    length = sum(seconds for _member, seconds in members if seconds is not None) + current[1]
    try:
        while current is not None and digit is None:
            digit = channel.wait(current[1], stop)
            if digit is None and listed:  # a key or a hangup closes no member (file_string_file_close)
                _filestring(channel, 'close', current[0])
            current = _next_member(channel, members, listed) if listed else None
    except NotReady:
        _stopped(channel, path, length, started, None)
        raise
    _stopped(channel, path, length, started, digit)
    return digit


def _next_member(channel, members, listed):
    """Take the next member that opens (filestring::open), firing filestring::fail for the others."""
    while members:
        member, seconds = members.pop(0)
        if seconds is not None:
            if listed:
                _filestring(channel, 'open', member)
            return member, seconds
        if listed:
            _filestring(channel, 'fail', member)
    return None


def _filestring(channel, what, member):
    channel.switch.fire(seq.FILESTRING[what], dict(channel.switch.base_fields, file=url_encode(member)))


def _stopped(channel, path, length, started, digit):
    played = min(length, channel.switch.clock.now() - started)
    samples = int(played * SAMPLE_RATE)
    channel.set_var('playback_last_offset_pos', samples)
    channel.set_var('playback_seconds', int(played))
    channel.set_var('playback_ms', int(played * 1000))
    channel.set_var('playback_samples', samples)
    channel.fire(seq.PLAYBACK_STOP, play_file=url_encode(path), play_status='break' if digit else 'done')


def play_and_get_digits(channel, arg):
    """min max tries timeout terminators file invalid_file var_name regexp [digit_timeout] [transfer_on_failure]

    As switch_play_and_get_digits / switch_ivr_read: each try clears var_name and read_result;
    digits go into var_name; read_result says success / timeout / failure; a regexp mismatch puts
    the digits in <var_name>_invalid. A prompt the switch cannot open ends the try before any digit
    is collected (read_result stays unset) and the invalid file plays. When the channel stops
    being ready, the app ends at once (NotReady goes on to the channel).
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
        digits, status, terminator = _read(
            channel, min_digits, max_digits, prompt, var_name, timeout, terminators, digit_timeout
        )
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
            _play_if_found(channel, invalid)


def _read(channel, min_digits, max_digits, prompt, var_name, timeout_ms, terminators, digit_timeout_ms):
    """One try of switch_ivr_read: play the prompt (a key interrupts it), then collect.

    Returns (digits, status, terminator); status 'notfound' when the prompt could not be opened.
    """
    channel.set_var('read_result', None)
    if var_name:
        channel.set_var(var_name, None)
    first = None
    if prompt and prompt != 'silence':
        try:
            first = _play(channel, prompt, lambda d: True)
        except FileNotFound:  # switch_ivr_read: the prompt's NOTFOUND skips to its end
            return '', 'notfound', None
    digits, terminator, status = '', None, 'success'
    if first is not None:
        if first in terminators:
            terminator = first
        else:
            digits = first
    try:
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
    except NotReady:  # switch_ivr_collect_digits_count returns FALSE: read_result 'failure'
        _read_done(channel, var_name, digits, 'failure', terminator)
        raise
    if min_digits and len(digits) < min_digits:
        status = 'failure'
    _read_done(channel, var_name, digits, status, terminator)
    return digits, status, terminator


def _read_done(channel, var_name, digits, status, terminator):
    if terminator is not None:
        channel.set_var('read_terminator_used', terminator)
    channel.set_var('read_result', status)
    if var_name and digits:
        channel.set_var(var_name, digits)


def _play_if_found(channel, path):
    try:
        _play(channel, path, None)
    except FileNotFound:
        pass


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


APPS = {
    'playback': playback,
    'play_and_get_digits': play_and_get_digits,
    'sleep': sleep,
    'hangup': hangup,
    'set': set_variable,
    'answer': nothing,
    'pre_answer': nothing,
    'park': nothing,
    'transfer': nothing,
}


def _split(arg):
    # switch_separate_string: spaces separate, quotes group, backslashes stay (regexps need them)
    return [
        word[1:-1] if word[:1] in '\'"' and word[-1:] == word[:1] and len(word) > 1 else word
        for word in re.findall(r"'[^']*'|\"[^\"]*\"|\S+", arg)
    ]


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0
