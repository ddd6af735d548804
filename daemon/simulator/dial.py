"""Parse an originate argument: `{a=b,c=d}sofia/<profile>/<user>@<host>[:port] &park()`."""
import re
from dataclasses import dataclass

USAGE = ('-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] '
         '[<cid_name>] [<cid_num>] [<timeout_sec>]\n')


@dataclass(frozen=True)
class Target:
    """Where a call goes. `user` is the number the scenario matches on."""
    channel_name: str
    user: str
    req_uri: str
    hostport: str
    port: str
    profile: str | None
    gateway: str | None


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
        end = url.find('}')
        if end < 0:
            return None
        variables = tuple(_variables(url[1:end]))
        url = url[end + 1:]
    return Originate(variables, url, _target(url))


def _variables(text):
    for item in re.split(r'(?<!\\),', text):
        if not item:
            continue
        name, _, value = item.partition('=')
        value = value.replace('\\,', ',')
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        yield name.strip(), value


def _target(url):
    match = re.fullmatch(r'sofia/gateway/([^/]+)/(.+)', url)
    if match:
        gateway, user = match.groups()
        return Target(url, user, '%s@%s' % (user, gateway), gateway, '5060', None, gateway)
    match = re.fullmatch(r'sofia/([^/]+)/([^@]+)(?:@(.+))?', url)
    if match:
        profile, user, hostport = match.groups()
        hostport = hostport or '127.0.0.1'
        port = hostport.rsplit(':', 1)[1] if ':' in hostport else '5060'
        return Target(url, user, '%s@%s' % (user, hostport), hostport, port, profile, None)
    return None
