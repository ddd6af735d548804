"""Read ESL capture transcripts (`NN-name.log` in esl-captures/) and split ESL messages.

A transcript is a series of records: `#>>> SEND n= t= bytes=N` or `#<<< RECV ... bytes=N`
followed by exactly N bytes and one newline; `#--- NOTE` and `#===` lines are comments.
Used by the template generator and by the tests that hold the simulator to the captures.
"""

import re
from dataclasses import dataclass
from urllib.parse import unquote

_RECORD = re.compile(rb'#(?:>>>|<<<) (SEND|RECV) n=\d+ t=\+([\d.]+) bytes=(\d+)\n')


@dataclass(frozen=True)
class Record:
    """One message as captured: `kind` is 'SEND' (client to switch) or 'RECV'; `data` is its bytes."""

    kind: str
    t: float
    data: bytes


def read_transcript(path):
    """Return the SEND/RECV records of a `.log` transcript in order (notes dropped)."""
    with open(path, 'rb') as f:
        data = f.read()
    records, i = [], 0
    while i < len(data):
        end = data.index(b'\n', i) + 1
        match = _RECORD.match(data, i, end)
        if match:
            size = int(match.group(3))
            records.append(Record(match.group(1).decode(), float(match.group(2)), data[end : end + size]))
            i = end + size + 1
        else:
            i = end
    return records


def split_message(message):
    """Split one ESL message into (outer headers as a list of (name, value), body bytes)."""
    head, _, body = message.partition(b'\n\n')
    return _header_list(head.decode()), body


def event_headers(body):
    """Parse a text/event-plain body: (list of (name, url-decoded value), inner body or None).

    Duplicate names are kept, in order, as FreeSWITCH sends them.
    """
    text = body.decode()
    head, sep, inner = text.partition('\n\n')
    headers = [(name, unquote(value)) for name, value in _header_list(head)]
    return headers, (inner if sep and inner else None)


def raw_event_headers(body):
    """Like event_headers but keeps the values URL-encoded, exactly as on the wire."""
    head, sep, inner = body.decode().partition('\n\n')
    return _header_list(head), (inner if sep and inner else None)


def _header_list(text):
    pairs = []
    for line in text.split('\n'):
        if line:
            name, _, value = line.partition(': ')
            pairs.append((name, value))
    return pairs
