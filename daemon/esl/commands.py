"""Every string FreeSWITCH reads from us, built by pure functions (switchio's `commands.py`).

ESL commands (`auth`, `event plain`, `api`, `bgapi`, `sendmsg ... execute`), the api commands
the dialer runs (`originate` with its hangup hook, `uuid_kill`, `show channels`, `file_exists`,
`hash select`), the arguments of
the dialplan applications a call executes (`playback`, `set`, `play_and_get_digits`), and the
character rules that keep free-form text off the wire. FreeSWITCH's escaping has holes
(`}` cannot be escaped, `${` is refused), so the rule is: nothing free-form goes in; anything
else raises `ESLUnsafeArgument` / `UnsafeArgument` before a byte is written.

No I/O here; `daemon.esl.client` sends what these functions return.
"""

import os
import re

from daemon.esl.errors import UnsafeArgument
from daemon.esl.wire import check_token, check_wire_value

NO_INVALID_PROMPT = 'silence_stream://250'  # play_and_get_digits needs a wrong-key file: a quarter second of nothing
# Our tag on every channel we originate: the attempt's id. Only a channel carrying it is ours to
# kill as an orphan (other software may share the switch).
ATTEMPT_VAR = 'autocall_attempt'
# The IVR result so far, kept on the channel too: its hangup record carries it, so a result the
# database could not take before a restart is read back with the call's end.
RESULT_VAR = 'autocall_result'

_IDENT = re.compile(r'[A-Za-z][A-Za-z0-9_]*')
_KEY = re.compile(r'[0-9*#]+')
_CALLER_ID = re.compile(r'\+?[0-9]{1,20}')
_NUMBER = re.compile(r'\+?[0-9]{1,20}')
# Characters FreeSWITCH gives meaning to in an application argument, plus anything invisible.
_UNSAFE_IN_ARG = re.compile(r'[\s!{}\'"\\$,;`]|[^\x21-\x7e]')
# What a dial string or a transfer target may hold: nothing FreeSWITCH reads as syntax.
_DIAL_SAFE = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-@:+')


# What the dialer reads; every event more is parsed for nothing (CHANNEL_HANGUP is
# followed within milliseconds by CHANNEL_HANGUP_COMPLETE, which carries the CDR fields).
# CHANNEL_PARK (one per call) says the channel runs CS_EXECUTE: the first execute waits for it.
DEFAULT_EVENTS = (
    'CHANNEL_ANSWER',
    'CHANNEL_PARK',
    'CHANNEL_HANGUP_COMPLETE',
    'CHANNEL_EXECUTE_COMPLETE',
    'DTMF',
    'BACKGROUND_JOB',
    'HEARTBEAT',
)
# The client itself needs these three, whatever the caller asks for.
REQUIRED_EVENTS = ('BACKGROUND_JOB', 'CHANNEL_EXECUTE_COMPLETE', 'HEARTBEAT')


def subscription(events):
    """The event names to subscribe to: the caller's, plus the ones the client needs."""
    names = []
    for name in list(events) + list(REQUIRED_EVENTS):
        check_token(name, 'event name')
        if name not in names:
            names.append(name)
    return tuple(names)


# --- ESL commands: the text of one command, without its closing blank line ---------------


def auth(password):
    return 'auth ' + password


def subscribe(events):
    """`event plain <names>`: never ALL (FreeSWITCH drops a listener that falls behind)."""
    return 'event plain ' + ' '.join(events)


def api(command):
    return 'api ' + check_wire_value(command, 'api command')


def bgapi(command, job_uuid):
    """`bgapi` under our own Job-UUID, so its BACKGROUND_JOB can be matched to it."""
    check_wire_value(command, 'bgapi command')
    return 'bgapi %s\nJob-UUID: %s' % (command, check_token(job_uuid, 'job_uuid'))


def execute(uuid, app, arg, app_uuid):
    """`sendmsg <uuid>` executing `app arg`, with event-lock and our event-uuid (it comes
    back as Application-UUID on CHANNEL_EXECUTE_COMPLETE)."""
    check_token(uuid, 'channel uuid')
    check_token(app, 'application name')
    check_wire_value(arg, 'application argument')
    lines = ['sendmsg ' + uuid, 'call-command: execute', 'execute-app-name: ' + app]
    if arg:
        lines.append('execute-app-arg: ' + arg)
    lines += ['event-lock: true', 'event-uuid: ' + app_uuid]
    return '\n'.join(lines)


# --- api commands -----------------------------------------------------------------------


def originate(
    *, uuid, number, attempt_id, queue_id, dial_string, caller_id, originate_timeout, park_timeout, slot=None
):
    """The originate for bgapi. Only safe tokens: uuids, integers, digits, validated config
    (`dial_string` holds `{number}` once, see `dial_safe`); customer data never goes in.
    With a `slot`, the channel also carries the hangup hook that records its end (`hangup_hook`)."""
    variables = [
        f"origination_uuid={uuid}",
        "ignore_early_media=true",
        f"originate_timeout={originate_timeout}",
        # An orphaned channel (daemon gone) leaves park by itself instead of sitting in silence.
        f"park_timeout={park_timeout}",
        # No key cuts a prompt unless the IVR asks for barge-in (FreeSWITCH's default stops on '*').
        playback_terminators_arg(False),
        f"{ATTEMPT_VAR}={int(attempt_id)}",
        f"accountcode=autocall_q{queue_id}",
    ]
    if caller_id:
        if not _CALLER_ID.fullmatch(caller_id):
            raise UnsafeArgument('caller id must be digits (a leading + allowed): %r' % (caller_id,))
        variables.append(f"origination_caller_id_number={caller_id}")
    if slot is not None:
        # `${` in an originate variable is refused unless the originate allows it
        # (switch_channel.c:1502-1508; switch_ivr_originate.c:2269-2273); nothing else we set has one.
        variables += ["origination_nested_vars=true", "api_hangup_hook=" + hangup_hook(slot, uuid)]
    if not _NUMBER.fullmatch(number):
        raise UnsafeArgument('number must be digits: %r' % (number,))
    if dial_string.count("{number}") != 1 or not dial_safe(dial_string.replace("{number}", "")):
        raise UnsafeArgument('dial string must hold {number} once and only safe characters: %r' % (dial_string,))
    target = dial_string.replace("{number}", number)
    return "originate {%s}%s &park()" % (",".join(variables), target)


def uuid_kill(uuid):
    return f'uuid_kill {uuid}'


def uuid_exists(uuid):
    return 'uuid_exists ' + check_token(uuid, 'channel uuid')


def uuid_setvar(uuid, name, value):
    """Set a channel variable to `value`, a name (letters, digits, _): `+OK`, or `-ERR No such
    channel!` (mod_commands' uuid_setvar)."""
    if not _IDENT.fullmatch(value):
        raise UnsafeArgument('variable value must be letters, digits and _: %r' % (value,))
    return 'uuid_setvar %s %s %s' % (check_token(uuid, 'channel uuid'), check_token(name, 'variable name'), value)


def uuid_getvar(uuid, name):
    """The channel variable's value, or `_undef_` when it is unset (mod_commands' uuid_getvar)."""
    return 'uuid_getvar %s %s' % (check_token(uuid, 'channel uuid'), check_token(name, 'variable name'))


def file_exists(path):
    return f'file_exists {path}'


SHOW_CHANNELS = 'show channels as json'  # {"row_count": 0} with no "rows" key when empty

# --- the hangup record: what the switch keeps of a call's end while we are away -------------

RECORD_REALM = 'autocall'
RECORD_KEYS = 64  # keys kept of digits_dialed; a record stays one short line
# The facts of the end, `:`-separated after our uuid (daemon/hangup.py reads them back). Each
# is set before the hook runs (switch_core_state_machine.c:839-844, switch_channel.c:4488-4800);
# the IVR result is ours (`uuid_setvar`), empty when none was recorded.
_RECORD_FACTS = ':'.join(
    '${%s}' % name
    for name in (
        'hangup_cause',
        'answer_uepoch',
        'end_uepoch',
        'sip_term_status',
        'digits_dialed:0:%d' % RECORD_KEYS,
        RESULT_VAR,
    )
)


def hangup_hook(slot, uuid):
    """The `api_hangup_hook` of a call: on hangup the switch itself stores the call's end under
    `autocall_<slot>` in mod_hash (`hash insert`, mod_hash.c:493-504), expanded from the
    channel's variables (api_hook, switch_core_state_machine.c:752-790). `::` splits command
    from argument, so the text has no space; it has no `,` or quote either (the originate's
    `{...}` splits on `,`, switch_event.c:1664; `${...}` nests there, switch_utils.c:794)."""
    check_token(uuid, 'channel uuid')
    return 'hash::insert/%s/%d/%s:%s' % (RECORD_REALM, int(slot), uuid, _RECORD_FACTS)


def hangup_record(slot):
    """`hash select/autocall/<slot>`: the record's text, or nothing when none was written."""
    return 'hash select/%s/%d' % (RECORD_REALM, int(slot))


def dial_safe(text):
    """True when `text` (a dial string without its `{number}`, a transfer target without its
    spaces) holds only letters, digits and / . _ - @ : +."""
    return set(text) <= _DIAL_SAFE


# --- application arguments --------------------------------------------------------------


def plain_arg(text):
    """True when `text` has no character FreeSWITCH gives meaning to in an application
    argument (whitespace, ! { } ' " \\ $ , ; `) and nothing outside printable ASCII."""
    return _UNSAFE_IN_ARG.search(text) is None


def safe_path(path):
    """`path` if it is an absolute path of plain characters; else UnsafeArgument."""
    if not isinstance(path, str) or not os.path.isabs(path) or not plain_arg(path):
        raise UnsafeArgument(f'file path {path!r} is not an absolute path of plain characters')
    return path


def playback_arg(files):
    """The `playback` argument for `files`: one path, or file_string://a!b!c."""
    files = [safe_path(path) for path in files]
    if not files:
        raise UnsafeArgument('nothing to play')
    return files[0] if len(files) == 1 else 'file_string://' + '!'.join(files)


def playback_terminators_arg(barge_in):
    """The `set` argument that makes the next playbacks stop on any key (barge-in) or on none.

    mod_dptools' playback stops on a key listed in `playback_terminators` (unset means '*')
    and names it in `playback_terminator_used`; 'any' and 'none' are its fixed words."""
    return 'playback_terminators=' + ('any' if barge_in else 'none')


def play_and_get_digits_arg(menu, var_name):
    """The play_and_get_digits argument for `menu` (an ivr Menu):
    ``min max tries timeout terminators file invalid_file var_name regexp digit_timeout``.

    Give every execution its own `var_name` (channel variables outlive an execution).
    Only our file paths and numbers reach the string; anything else raises UnsafeArgument."""
    if not _IDENT.fullmatch(var_name or ''):
        raise UnsafeArgument(f'variable name {var_name!r} must be letters, digits and _')
    keys = sorted(menu.keys)
    if not keys or not all(_KEY.fullmatch(key) for key in keys):
        raise UnsafeArgument(f'menu {menu.id!r} keys {keys!r} must be digits, * or #')
    invalid = safe_path(menu.invalid_file) if menu.invalid_file else NO_INVALID_PROMPT
    return ' '.join(
        str(part)
        for part in (
            1,
            menu.max_digits,
            menu.tries,
            menu.timeout_ms,
            _terminators(keys),
            playback_arg(menu.files),
            invalid,
            var_name,
            _regexp(keys),
            menu.digit_timeout_ms,
        )
    )


def rest_of_menu_arg(menu, first, var_name):
    """The play_and_get_digits argument that collects the rest of a menu answer whose `first`
    key stopped a prompt (barge-in), with no prompt; None when no key of `menu` is longer and
    starts with `first` (then `first` alone is the answer)."""
    rests = sorted(key[len(first) :] for key in menu.keys if key.startswith(first) and len(key) > len(first))
    if not rests:
        return None
    if not _IDENT.fullmatch(var_name or '') or not all(_KEY.fullmatch(rest) for rest in rests):
        raise UnsafeArgument(f'menu {menu.id!r}: cannot collect after key {first!r} into {var_name!r}')
    # 'silence' is switch_ivr_read's word for "no prompt": the wait for the next key starts at once.
    return ' '.join(
        str(part)
        for part in (
            1,
            menu.max_digits - len(first),
            1,
            menu.digit_timeout_ms,
            _terminators(menu.keys),
            'silence',
            NO_INVALID_PROMPT,
            var_name,
            _regexp(rests),
            menu.digit_timeout_ms,
        )
    )


def _terminators(keys):
    """'#' ends the entry early, unless a key itself holds '#'."""
    return 'none' if any('#' in key for key in keys) else '#'


def _regexp(keys):
    return '^(' + '|'.join(key.replace('*', '[*]') for key in keys) + ')$'
