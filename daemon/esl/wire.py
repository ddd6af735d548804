"""The ESL wire format: bytes in, `ESLEvent` out, and the checks on what may go on a line.

No socket here: `read_message` reads from any binary file object, so tests feed it bytes.
Headers are split from the body before each value is URL-decoded (greenswitch decoded first,
so an encoded newline forged a header; docs/esl.md).
"""

import json
from collections import namedtuple
from urllib.parse import unquote

from daemon.esl.errors import ESLConnectionLost, ESLProtocolError, ESLUnsafeArgument

_MAX_HEADER_LINE = 64 * 1024
_MAX_HEADER_LINES = 64  # outer headers of a message; FreeSWITCH sends at most a handful
_MAX_BODY = 64 * 1024 * 1024


class ESLEvent:
    """One parsed ESL message or event.

    `headers` maps each name to its FIRST value (FreeSWITCH repeats e.g. Hangup-Cause
    with the same value); `pairs` keeps every (name, value) in wire order, duplicates
    included. Values are URL-decoded, each on its own after the lines were split, so an
    encoded newline never forges a header. `body` is the message's own body as text
    (BACKGROUND_JOB's `+OK <uuid>\\n`), never mixed into headers; only the raw framed
    messages of `read_message` keep their body as bytes.

    Plain events carry 60-230 headers of which a dialer reads a handful, so they keep
    their header text and `get` finds one header in it; `pairs`/`headers` are built
    only when asked for.
    """

    __slots__ = ('_pairs', '_headers', '_text', 'body', 'content_type')

    def __init__(self, pairs=(), body='', content_type='', *, text=None):
        self._text = text  # '\n' + header lines + '\n', values still URL-encoded
        self._pairs = None if text is not None else list(pairs)
        self._headers = None
        self.body = body
        self.content_type = content_type

    @property
    def pairs(self):
        if self._pairs is None:
            self._pairs = _parse_header_lines(self._text.split('\n'))
        return self._pairs

    @property
    def headers(self):
        if self._headers is None:
            self._headers = {}
            for name, value in self.pairs:
                self._headers.setdefault(name, value)
        return self._headers

    @property
    def name(self):
        """Event-Name, or '' for messages that are not events."""
        return self.get('Event-Name', '')

    @property
    def unique_id(self):
        """The channel's Unique-ID, or None."""
        return self.get('Unique-ID')

    def get(self, name, default=None):
        """First value of header `name` (e.g. 'variable_billsec'), or `default`."""
        if self._headers is not None or self._text is None:
            return self.headers.get(name, default)
        key = '\n' + name + ':'
        at = self._text.find(key)
        if at < 0:
            return default
        start = at + len(key)
        value = self._text[start : self._text.index('\n', start)].rstrip('\r')
        return unquote(value[1:] if value.startswith(' ') else value)

    def get_all(self, name):
        """Every value of header `name`, in wire order."""
        return [value for key, value in self.pairs if key == name]

    def __repr__(self):
        return '<ESLEvent %s %s>' % (self.content_type, self.name or self.get('Reply-Text', ''))


class JobResult(namedtuple('JobResult', 'ok text body')):
    """Result of a bgapi job. `ok` is False when the body starts with '-' (`-ERR USER_BUSY`);
    `text` is the body without its `+OK `/`-ERR ` prefix and trailing newline (the
    originated uuid, or the hangup cause); `body` is the body exactly as received."""

    @classmethod
    def from_body(cls, body):
        stripped = body.strip()
        for prefix, ok in (('+OK', True), ('-ERR', False)):
            if stripped.startswith(prefix):
                return cls(ok, stripped[len(prefix) :].strip(), body)
        return cls(not stripped.startswith('-'), stripped, body)


# --- framing and parsing: bytes in, ESLEvent out, no socket knowledge ---


def _parse_header_lines(lines):
    """(name, decoded value) pairs from header lines (bytes or text); the value is
    URL-decoded only after the line was split off, so an encoded newline stays inside it."""
    pairs = []
    for raw in lines:
        line = (raw.decode('utf-8', 'replace') if isinstance(raw, bytes) else raw).rstrip('\r\n')
        if not line:
            continue
        name, sep, value = line.partition(':')
        if not sep or not name:
            raise ESLProtocolError('header line without a name: %r' % line[:80])
        pairs.append((name, unquote(value[1:] if value.startswith(' ') else value)))
    return pairs


def _content_length(event):
    value = event.get('Content-Length')
    if value is None:
        return 0
    try:
        length = int(value)
    except ValueError:
        raise ESLProtocolError('bad Content-Length %r' % value) from None
    if not 0 <= length <= _MAX_BODY:
        raise ESLProtocolError('Content-Length out of range: %d' % length)
    return length


def read_message(rfile):
    """Read one framed message from a binary file object.

    Returns an ESLEvent holding the outer headers and the raw body bytes as `body`
    (bytes), or None on a clean EOF between messages. Raises ESLConnectionLost on EOF
    inside a message, ESLProtocolError on bytes that cannot be framed.
    """
    lines = []
    while True:
        line = rfile.readline(_MAX_HEADER_LINE)
        if not line:
            if lines:
                raise ESLConnectionLost('EOF inside the headers of a message')
            return None
        if not line.endswith(b'\n'):
            if len(line) >= _MAX_HEADER_LINE:
                raise ESLProtocolError('header line longer than %d bytes' % _MAX_HEADER_LINE)
            raise ESLConnectionLost('EOF inside the headers of a message')
        if line.strip(b'\r\n'):
            lines.append(line)
            if len(lines) > _MAX_HEADER_LINES:
                raise ESLProtocolError('more than %d header lines in one message' % _MAX_HEADER_LINES)
        elif lines:
            break
    message = ESLEvent(_parse_header_lines(lines))
    message.content_type = message.get('Content-Type', '')
    length = _content_length(message)
    body = rfile.read(length) if length else b''
    if len(body) < length:
        raise ESLConnectionLost('EOF after %d of %d body bytes' % (len(body), length))
    message.body = body
    return message


def parse_plain_event(data):
    """Parse a text/event-plain body: header lines, a blank line, then the event's own
    body of its inner Content-Length (BACKGROUND_JOB's result)."""
    head, _, rest = data.partition(b'\n\n')
    # Not split up front: get() matches a name only at the start of a line, so a malformed
    # line cannot forge a header; reading `pairs` still raises ESLProtocolError on one.
    event = ESLEvent(content_type='text/event-plain', text='\n' + head.decode('utf-8', 'replace') + '\n')
    length = _content_length(event)
    if len(rest) < length:
        raise ESLProtocolError('event body shorter than its Content-Length %d' % length)
    event.body = rest[:length].decode('utf-8', 'replace')
    return event


def parse_json_event(data):
    """Parse a text/event-json body: one JSON object; `_body` becomes `.body`, duplicate
    keys are all kept in `.pairs` (first value wins in `.headers`, as for plain)."""
    try:
        pairs = json.loads(data.decode('utf-8', 'replace'), object_pairs_hook=list)
    except RecursionError:
        raise ESLProtocolError('bad event-json: nested too deep') from None
    except ValueError as exc:
        raise ESLProtocolError('bad event-json: %s' % exc) from None
    if not isinstance(pairs, list) or any(not isinstance(p, tuple) for p in pairs):
        raise ESLProtocolError('event-json is not one flat JSON object')
    body = ''.join(str(value) for key, value in pairs if key == '_body')
    kept = [(key, value if isinstance(value, str) else json.dumps(value)) for key, value in pairs if key != '_body']
    return ESLEvent(kept, body, 'text/event-json')


EVENT_PARSERS = {'text/event-plain': parse_plain_event, 'text/event-json': parse_json_event}


def parse_event(message):
    """The event carried by a framed message, or None if it carries no event."""
    parser = EVENT_PARSERS.get(message.content_type)
    return parser(message.body) if parser else None


def check_wire_value(value, what='argument'):
    """Return `value` if it can go on one ESL line; else raise ESLUnsafeArgument.
    A newline in an ESL command would start a forged header or command."""
    if not isinstance(value, str):
        raise ESLUnsafeArgument('%s must be a string, not %s' % (what, type(value).__name__))
    if '\n' in value or '\r' in value or '\0' in value:
        raise ESLUnsafeArgument('%s contains a line break or NUL: %r' % (what, value[:80]))
    return value


def check_token(value, what):
    """Return `value` if it is one non-empty word that can go on one ESL line (a uuid, an
    application or event name); else raise ESLUnsafeArgument."""
    check_wire_value(value, what)
    if not value or value.split() != [value]:
        raise ESLUnsafeArgument('%s must be one non-empty word: %r' % (what, value))
    return value
