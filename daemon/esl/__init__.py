"""FreeSWITCH's event socket, in one package: every piece of FreeSWITCH knowledge lives here.

    wire.py      bytes → ESLEvent / JobResult (framing, parsing, what may go on a line)
    client.py    ESLClient: the connection (send under a lock, waiters, death, heartbeat)
    commands.py  pure functions that build every string FreeSWITCH reads
    errors.py    ESLError and the few named errors

The names callers use are re-exported here: `from daemon import esl; esl.ESLClient`.
"""

from daemon.esl.client import ESLClient
from daemon.esl.commands import DEFAULT_EVENTS, REQUIRED_EVENTS
from daemon.esl.errors import (
    ESLAuthError,
    ESLChannelGone,
    ESLCommandError,
    ESLConnectionLost,
    ESLError,
    ESLProtocolError,
    ESLTimeout,
    ESLUnsafeArgument,
    UnsafeArgument,
)
from daemon.esl.wire import (
    ESLEvent,
    JobResult,
    check_wire_value,
    parse_event,
    parse_json_event,
    parse_plain_event,
    read_message,
)

__all__ = [
    'DEFAULT_EVENTS',
    'REQUIRED_EVENTS',
    'ESLClient',
    'ESLEvent',
    'JobResult',
    'ESLError',
    'ESLAuthError',
    'ESLChannelGone',
    'ESLCommandError',
    'ESLConnectionLost',
    'ESLProtocolError',
    'ESLTimeout',
    'ESLUnsafeArgument',
    'UnsafeArgument',
    'check_wire_value',
    'parse_event',
    'parse_json_event',
    'parse_plain_event',
    'read_message',
]
