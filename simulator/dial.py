"""Parse an originate argument: `{a=b,c=d}sofia/<profile>/<user>@<host>[:port] &park()` or
`sofia/gateway/<gw>/<user>`, and name the channel as mod_sofia does."""

import logging
import re
from dataclasses import dataclass, replace

logger = logging.getLogger(__name__)
_VARIABLE = re.compile(r'\$\\*\{')  # switch_string_var_check_const: backslashes between do not escape it
USAGE = (
    '-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] '
    '[<cid_name>] [<cid_num>] [<timeout_sec>]\n'
)


@dataclass(frozen=True)
class Target:
    """Where a call goes. `user` is the number the scenario matches on; `url` the dial string.

    A gateway target is complete only after `via_gateway` (the gateway's profile and proxy).
    """

    channel_name: str
    user: str
    req_uri: str
    hostport: str
    port: str
    profile: str | None
    gateway: str | None
    url: str = ''


@dataclass(frozen=True)
class Originate:
    variables: tuple  # ((name, value), ...) in the order given
    url: str
    target: Target | None  # None: not a sofia URL we understand


def parse_originate(arg):
    """Split `originate` arguments; returns None when there is no call URL at all (usage error)."""
    parts = arg.strip().split(' ', 1)
    if not parts[0]:
        return None
    url = parts[0]
    variables = ()
    if url.startswith('{'):
        end = _end_paren(url)
        if end < 0:
            return None
        variables = _checked(tuple(_variables(url[1:end])), arg)
        url = url[end + 1 :]
    return Originate(variables, url, _target(url))


def _end_paren(text):
    """Where the `{` at text[0] closes, nested braces counted (switch_find_end_paren,
    switch_utils.c), so a `${var}` inside a value does not end the block; -1 if it never does."""
    depth = 0
    for i, char in enumerate(text):
        depth += char == '{'
        depth -= char == '}'
        if depth == 0:
            return i
    return -1


def _checked(variables, arg):
    """The variables the switch installs on the channel: a value holding `${` is refused
    (switch_channel_set_variable_var_check, switch_channel.c:1502-1508, logged CRIT) unless
    the originate says origination_nested_vars=true (switch_ivr_originate.c:2269-2273)."""
    nested = 'origination_nested_vars=true' in arg.lower() or any(
        name == 'origination_nested_vars' and value.lower() == 'true' for name, value in variables
    )
    if nested:
        return variables
    for name, value in variables:
        if _VARIABLE.search(value):
            logger.warning('Invalid data (${%s} contains a variable)', name)
    return tuple((name, value) for name, value in variables if not _VARIABLE.search(value))


def _variables(text):
    for item in re.split(r'(?<!\\),', text):
        if not item:
            continue
        name, _, value = item.partition('=')
        value = value.replace('\\,', ',')
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        yield name.strip(), value


def via_gateway(target, profile, proxy):
    """The channel mod_sofia makes for sofia/gateway/<gw>/<user>: named sofia/<profile>/<user>
    (sofia_glue.c:65 names it after the gateway's profile and the part after the gateway), its
    request URI <user>@<proxy> (mod_sofia.c:4855)."""
    return replace(
        target,
        channel_name='sofia/%s/%s' % (profile, target.user),
        req_uri='%s@%s' % (target.user, proxy),
        hostport=proxy,
        port=_port(proxy),
        profile=profile,
    )


def _target(url):
    match = re.fullmatch(r'sofia/gateway/([^/]+)/(.+)', url)
    if match:
        gateway, user = match.groups()
        return Target(url, user, '%s@%s' % (user, gateway), gateway, '5060', None, gateway, url)
    match = re.fullmatch(r'sofia/([^/]+)/([^@]+)(?:@(.+))?', url)
    if match:
        profile, user, hostport = match.groups()
        hostport = hostport or '127.0.0.1'
        return Target(url, user, '%s@%s' % (user, hostport), hostport, _port(hostport), profile, None, url)
    return None


def _port(hostport):
    return hostport.rsplit(':', 1)[1] if ':' in hostport else '5060'
