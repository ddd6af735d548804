"""Test helpers for the ESL client: reading the capture logs, and small ESL servers on
real loopback sockets (a byte streamer, a capture replayer and a scriptable fake switch)."""

import os
import re
import socket
from collections import namedtuple
from pathlib import Path
from urllib.parse import quote

import gevent
import gevent.event
import gevent.queue
from gevent.server import StreamServer

GOODBYE = 'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n'


# Every capture the tests are held to; a missing one is a failure, never a skip.
EXPECTED_CAPTURES = (
    '01-answered-playback-dtmf-uuid_kill',
    '02-callee-bye-after-answer',
    '03-busy-486',
    '04-no-answer-timeout',
    '05-decline-603-and-unreachable',
    '06-sync-api-originate-show-hupall',
    '07a-wrong-password',
    '07b-event-json-answered-call',
    '08-shutdown-while-connected',
    '08b-sigterm-while-connected',
    '09-named-events-only',
    '10-play_and_get_digits',
    '11-callee-bye-during-playback',
    '12-missing-files',
    '13-three-concurrent-originates',
)


def _captures_dir():
    """$AUTOCALL_ESL_CAPTURES, else the copy vendored in tests/data/esl-captures."""
    if os.environ.get('AUTOCALL_ESL_CAPTURES'):
        return Path(os.environ['AUTOCALL_ESL_CAPTURES'])
    return Path(__file__).resolve().parent / 'data' / 'esl-captures'


CAPTURES = _captures_dir()

Record = namedtuple('Record', 'kind data')  # kind: 'SEND' (client->switch) or 'RECV'
Capture = namedtuple('Capture', 'name raw records notes')  # notes: (records seen so far, text)

_RECORD_HEAD = re.compile(rb'^#(>>> SEND|<<< RECV) n=\d+ t=\+[\d.]+ bytes=(\d+)$')


def capture_names():
    """Every capture: the expected ones (a missing file fails in load_capture) and any new one."""
    return sorted(set(EXPECTED_CAPTURES) | {p.stem for p in CAPTURES.glob('*.raw')})


def load_capture(name):
    """Split a capture's .log into SEND/RECV records (exact bytes) and NOTE lines."""
    log = (CAPTURES / (name + '.log')).read_bytes()
    records, notes, pos = [], [], 0
    while pos < len(log):
        end = log.index(b'\n', pos)
        line = log[pos:end]
        pos = end + 1
        match = _RECORD_HEAD.match(line)
        if match:
            size = int(match.group(2))
            records.append(Record(match.group(1)[-4:].decode(), log[pos : pos + size]))
            pos += size + 1
        elif line.startswith(b'#--- NOTE'):
            notes.append((len(records), line.decode('utf-8')))
    return Capture(name, (CAPTURES / (name + '.raw')).read_bytes(), records, notes)


# --- building ESL messages by hand ---


def reply(text, *extra):
    lines = ['Content-Type: command/reply', 'Reply-Text: ' + text] + list(extra)
    return ('\n'.join(lines) + '\n\n').encode()


def api_response(body):
    data = body.encode()
    return b'Content-Type: api/response\nContent-Length: %d\n\n' % len(data) + data


def plain_event(pairs, body=''):
    """A text/event-plain message with URL-encoded values, as FreeSWITCH writes them."""
    head = ''.join('%s: %s\n' % (name, quote(value, safe="/,@=()&+'")) for name, value in pairs)
    data = body.encode()
    if data:
        inner = head.encode() + b'Content-Length: %d\n\n' % len(data) + data
    else:
        inner = head.encode() + b'\n'
    return b'Content-Length: %d\nContent-Type: text/event-plain\n\n' % len(inner) + inner


def disconnect_notice(text):
    data = text.encode()
    return b'Content-Type: text/disconnect-notice\nContent-Length: %d\n\n' % len(data) + data


def heartbeat():
    return plain_event([('Event-Name', 'HEARTBEAT'), ('Event-Info', 'System Ready')])


# --- servers ---


def read_command(rfile):
    """One client command (lines up to the blank line) as text, or None at EOF."""
    lines = []
    while True:
        line = rfile.readline()
        if not line:
            return None
        if line == b'\n':
            if lines:
                return ''.join(lines).rstrip('\n')
            continue
        lines.append(line.decode())


class _Server:
    """A gevent StreamServer on 127.0.0.1:0 that counts its connections."""

    def __init__(self, port=0):
        self.server = StreamServer(('127.0.0.1', port), self._handle)
        self.server.start()
        self.port = self.server.server_port
        self.connections = gevent.queue.Queue()

    def _handle(self, sock, address):
        raise NotImplementedError

    def stop(self):
        self.server.stop(timeout=1)


class ByteStreamer(_Server):
    """Writes fixed bytes to each client in random-sized chunks, then closes."""

    def __init__(self, data, rng, max_chunk=1500):
        self.data, self.rng, self.max_chunk = data, rng, max_chunk
        super().__init__()

    def _handle(self, sock, address):
        pos = 0
        while pos < len(self.data):
            size = self.rng.randint(1, self.max_chunk)
            sock.sendall(self.data[pos : pos + size])
            pos += size
        sock.close()


class CaptureReplayer(_Server):
    """Plays a capture back: each RECV record is sent as recorded; at each SEND record it
    waits for the client's next command, checks its verb and records it. The capture's
    Job-UUIDs and event-uuids are rewritten to the client's own (same length), so the
    client's futures can resolve."""

    def __init__(self, capture):
        self.capture = capture
        self.commands = []
        self.mismatches = []
        self.done = gevent.event.Event()
        super().__init__()

    def _handle(self, sock, address):
        rfile = sock.makefile('rb')
        subs, job_from_client = {}, None
        try:
            for record in self.capture.records:
                if record.kind == 'RECV':
                    data = record.data
                    if job_from_client and data.startswith(b'Content-Type: command/reply'):
                        theirs = re.search(rb'\nJob-UUID: (\S+)', data).group(1)
                        subs[theirs] = job_from_client.encode()
                        job_from_client = None
                    for theirs, ours in subs.items():
                        data = data.replace(theirs, ours)
                    sock.sendall(data)
                    continue
                command = read_command(rfile)
                if command is None:
                    break
                self.commands.append(command)
                expected = record.data.decode()
                if expected.split(None, 1)[0] != command.split(None, 1)[0]:
                    self.mismatches.append((expected, command))
                job_from_client = _header(command, 'Job-UUID')
                theirs, ours = _header(expected, 'event-uuid'), _header(command, 'event-uuid')
                if theirs and ours:
                    subs[theirs.encode()] = ours.encode()
        except OSError:
            pass  # the client went away first; that is its right
        finally:
            rfile.close()
            sock.close()
            self.done.set()


def _header(command, name):
    match = re.search(r'^%s: (\S+)$' % re.escape(name), command, re.M)
    return match.group(1) if match else None


class FakeSwitch(_Server):
    """A scriptable switch: sends auth/request, checks the password, then answers
    commands through `respond(conn, command)` (default: `default_respond`). Each accepted
    connection is put on `connections` as a SwitchConnection the test can drive."""

    def __init__(self, password='ClueCon', respond=None, port=0):
        self.password = password
        self.respond = respond or default_respond
        super().__init__(port)

    def _handle(self, sock, address):
        conn = SwitchConnection(sock)
        self.connections.put(conn)
        conn.send(b'Content-Type: auth/request\n\n')
        command = conn.read()
        if command != 'auth ' + self.password:
            conn.send(reply('-ERR invalid'))
            conn.send(disconnect_notice(GOODBYE))
            conn.close()
            conn.rfile.close()
            return
        conn.send(reply('+OK accepted'))
        while True:
            command = conn.read()
            if command is None:
                break
            if command == 'exit':
                conn.send(reply('+OK bye') + disconnect_notice(GOODBYE))
                break
            answer = self.respond(conn, command)
            if answer:
                conn.send(answer)
        conn.close()
        conn.rfile.close()  # only the reading greenlet may close its reader


class SwitchConnection:
    """The server side of one client connection: what the client sent, and a way to talk back."""

    def __init__(self, sock):
        self.sock = sock
        self.rfile = sock.makefile('rb')
        self.commands = []
        self.new_command = gevent.event.Event()
        self.jobs = []  # Job-UUIDs the client chose, in order
        self.apps = []  # (channel uuid, event-uuid) of each sendmsg

    def read(self):
        try:
            command = read_command(self.rfile)
        except OSError:
            return None
        if command is not None:
            self.commands.append(command)
            self.new_command.set()
        return command

    def send(self, data):
        self.sock.sendall(data)

    def wait_for_command(self, prefix, timeout=3):
        """The first command starting with `prefix`, waiting for it if needed."""
        with gevent.Timeout(timeout):
            while True:
                for command in self.commands:
                    if command.startswith(prefix):
                        return command
                self.new_command.clear()
                self.new_command.wait()

    def close(self):
        """Close for real (shutdown first: the open makefile would keep the fd alive)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed
        self.sock.close()


def default_respond(conn, command):
    """Answer like FreeSWITCH: subscriptions +OK, `api X` from API_BODIES, bgapi and
    sendmsg +OK (remembering their uuids); `api hang` is never answered."""
    verb = command.split(None, 1)[0]
    if verb == 'event':
        return reply('+OK event listener enabled plain')
    if verb == 'api':
        name = command[4:].strip()
        if name == 'hang':
            return None
        return api_response(API_BODIES.get(name, '-ERR %s Command not found!\n' % name))
    if verb == 'bgapi':
        job = _header(command, 'Job-UUID')
        conn.jobs.append(job)
        return reply('+OK Job-UUID: ' + job, 'Job-UUID: ' + job)
    if verb == 'sendmsg':
        conn.apps.append((command.split()[1], _header(command, 'event-uuid')))
        return reply('+OK')
    return reply('-ERR command not found')


API_BODIES = {
    'version': 'FreeSWITCH Version 1.10.12-release~64bit ( 64bit)\n',
    'uuid_exists 7e5a0c6e-0000-4000-8000-000000000001': 'true',
    'show channels as json': '{"row_count": 0}\n',
}
