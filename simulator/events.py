"""ESL wire formats: URL encoding, event rendering from the captured templates, message framing.

Everything here is pure (no sockets, no greenlets): given a template key and the values of its
slots, produce the exact bytes FreeSWITCH 1.10 would put on the wire.
"""

import itertools
import json
import time
from urllib.parse import unquote

from simulator.templates import EVENTS

# switch_url_encode() escapes these, plus every byte outside printable ASCII
_UNSAFE = set('\r\n "#%&+:;<=>?@[\\]^`{|}')
_ENCODE = {}
for _code in range(256):
    _char = chr(_code)
    _ENCODE[_code] = '%%%02X' % _code if (_char in _UNSAFE or _code < 32 or _code > 126) else _char
del _code, _char

DISCONNECT_GOODBYE = 'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n'
DISCONNECT_SHUTDOWN = 'The system is being shut down.\n'


def url_encode(text):
    """Encode a header value the way FreeSWITCH does (e.g. '#' -> '%23', '/' and ',' kept)."""
    text = str(text)
    if text.isalnum():
        return text
    return ''.join(_ENCODE[b] for b in text.encode('utf-8'))


def event_name(key):
    """The Event-Name a template key renders to: keys are "<tag>:<Event-Name>:<n>" or a bare name."""
    return key.split(':', 2)[1] if ':' in key else key


class EventFactory:
    """Renders events: fills the common headers (Core-UUID, host, dates, sequence) and the slots.

    `clock()` returns the (simulated) epoch time in seconds; sequence numbers are global and
    increase by one for every event created, listened to or not, as in FreeSWITCH.
    """

    def __init__(self, clock, core_uuid, hostname='vm', ipv4='192.0.2.2', ipv6='fd00::2'):
        self._clock = clock
        self._sequence = itertools.count(1)
        self._date_cache = (None, None, None)
        self.base = {
            'core_uuid': core_uuid,
            'hostname': url_encode(hostname),
            'ipv4': url_encode(ipv4),
            'ipv6': url_encode(ipv6),
        }

    def skip(self):
        """Consume a sequence number for an event nobody listens to."""
        next(self._sequence)

    def stamp(self, fields):
        """Put date, timestamp and sequence into `fields` (a dict of slot values) and return it."""
        now = self._clock()
        second = int(now)
        if self._date_cache[0] != second:
            self._date_cache = (
                second,
                url_encode(format_local(now)),
                url_encode(time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime(now))),
            )
        fields['ts'] = str(int(now * 1000000))
        fields['date_local'] = self._date_cache[1]
        fields['date_gmt'] = self._date_cache[2]
        fields['seq'] = str(next(self._sequence))
        return fields

    def render(self, key, fields, body=None):
        """Return the text/event-plain body for template `key` with `fields`; `body` is the event's own."""
        text = EVENTS[key].format_map(self.stamp(fields))
        if body is None:
            return text + '\n'
        return '%sContent-Length: %d\n\n%s' % (text, len(body.encode()), body)


def format_local(epoch):
    """'YYYY-MM-DD HH:MM:SS' in local time, as in Event-Date-Local and the *_stamp variables."""
    return time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(epoch))


def plain_to_json(text):
    """Convert a text/event-plain body to the text/event-json body FreeSWITCH sends.

    Values are decoded and all strings; duplicate header names stay duplicated; an event's own
    body goes in "_body" after its "Content-Length".
    """
    head, sep, body = text.partition('\n\n')
    parts = []
    for line in head.split('\n'):
        name, _, value = line.partition(': ')
        parts.append('%s:%s' % (json.dumps(name), json.dumps(unquote(value), ensure_ascii=False)))
    if sep and body:  # the head's last line is already the inner Content-Length
        parts.append('"_body":%s' % json.dumps(body, ensure_ascii=False))
    return '{' + ','.join(parts) + '}'


def frame_event(text, fmt):
    """Frame an event body for the wire: outer Content-Length first, then Content-Type."""
    if fmt == 'json':
        data = plain_to_json(text).encode()
        return b'Content-Length: %d\nContent-Type: text/event-json\n\n%s' % (len(data), data)
    data = text.encode()
    return b'Content-Length: %d\nContent-Type: text/event-plain\n\n%s' % (len(data), data)


def command_reply(reply_text, **headers):
    """A command/reply message; extra headers (e.g. Job_UUID='x' -> 'Job-UUID: x') follow Reply-Text."""
    extra = ''.join('%s: %s\n' % (name.replace('_', '-'), value) for name, value in headers.items())
    return ('Content-Type: command/reply\nReply-Text: %s\n%s\n' % (reply_text, extra)).encode()


def api_response(body):
    """An api/response message carrying `body` exactly (trailing newline or not, as given)."""
    data = body.encode()
    return b'Content-Type: api/response\nContent-Length: %d\n\n%s' % (len(data), data)


def disconnect_notice(body=DISCONNECT_GOODBYE):
    """The text/disconnect-notice FreeSWITCH sends before it closes a connection."""
    data = body.encode()
    return b'Content-Type: text/disconnect-notice\nContent-Length: %d\n\n%s' % (len(data), data)


AUTH_REQUEST = b'Content-Type: auth/request\n\n'


def uptime_text(seconds):
    """'0 years, 0 days, 0 hours, 0 minutes, 28 seconds, 13 milliseconds, 217 microseconds'."""
    usec = int(seconds * 1000000)
    parts = []
    for unit, size in (
        ('years', 365 * 86400 * 10**6),
        ('days', 86400 * 10**6),
        ('hours', 3600 * 10**6),
        ('minutes', 60 * 10**6),
        ('seconds', 10**6),
        ('milliseconds', 1000),
        ('microseconds', 1),
    ):
        parts.append('%d %s' % (usec // size, unit))
        usec %= size
    return ', '.join(parts)
