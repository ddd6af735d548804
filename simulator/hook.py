"""`api_hangup_hook`: the api command a channel runs on itself when it hangs up.

FreeSWITCH 1.10.12, switch_core_session_hangup_state (switch_core_state_machine.c:793-861): on
entering CS_HANGUP it sets `hangup_cause` and `hangup_cause_q850` (839-840), the CDR times
(`switch_channel_set_timestamps`, 843: `answer_uepoch`, `end_uepoch`, `billsec`,
`digits_dialed`, ...; switch_channel.c:4488-4800) and the HANGUP call state (844), runs the
endpoint's hangup handler (846), then, if the channel has `api_hangup_hook`, `api_hook` (856;
752-790): the text is split into command and argument at the first `::` (else the first
space), `${...}` in the argument is expanded from the channel's variables, and the api command
runs with no session. All of it before CS_REPORTING fires CHANNEL_HANGUP_COMPLETE (943). A
channel that vanishes without a hangup (a crash: `sim.restart()`) runs nothing.
"""

import logging
import re
from urllib.parse import unquote

logger = logging.getLogger(__name__)
VARIABLE = 'api_hangup_hook'  # SWITCH_API_HANGUP_HOOK_VARIABLE (switch_types.h:176)
# ${name} or ${name:offset[:length]}; what switch_event_expand_headers also does (${api(...)},
# nesting, indexes, negative offsets) is not modelled
_EXPANSION = re.compile(r'\$\{([A-Za-z0-9_]+)(?::(\d+)(?::(\d+))?)?\}')


def split(hook):
    """(command, argument) as api_hook splits the text: at a `::`, else at the first space."""
    first = hook.find(':')
    if first >= 0 and hook[first + 1 : first + 2] == ':':
        return hook[:first], hook[first + 2 :]
    command, _, argument = hook.partition(' ')
    return command, argument


def expand(text, lookup):
    """`text` with each ${name} or ${name:offset:length} replaced by `lookup(name)` (None: unset,
    which expands to nothing), as switch_event_expand_headers_check (switch_event.c:2251)."""

    def value(match):
        found = lookup(match.group(1))
        if found is None:
            return ''
        offset, length = int(match.group(2) or 0), int(match.group(3) or 0)
        found = found[offset:]
        return found[:length] if 0 < length < len(found) else found

    return _EXPANSION.sub(value, text)


def hangup_variable(channel, name):
    """A variable switch_core_session_hangup_state sets before the hook runs, else the channel's
    own; None when unset."""
    fields = channel.fields
    if name == 'hangup_cause':
        return channel.hangup_cause
    if name == 'hangup_cause_q850':
        return fields['q850']
    if name == 'digits_dialed':
        return channel.digits_dialed or 'none'
    if name == 'sip_term_status' and fields['sip_status']:
        return fields['sip_status']
    if 't_' + name in fields:  # the CDR times: *_epoch, *_uepoch, *_stamp, billsec, duration...
        return unquote(fields['t_' + name])
    found = channel.getvar(name)
    return None if found == '_undef_' else found


def run(channel):
    """Run the channel's api_hangup_hook, if it has one (once its hangup variables are set)."""
    hook = channel.getvar(VARIABLE)
    if hook == '_undef_' or not hook:
        return
    command, argument = split(hook)
    expanded = expand(argument, lambda name: hangup_variable(channel, name))
    reply = channel.switch.api(command, expanded)
    logger.debug('Hangup Command with no Session %s(%s):\n%s', command, expanded, reply)
