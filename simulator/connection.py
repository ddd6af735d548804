"""One inbound event-socket client: reads commands, answers them, carries its event subscription.

Replies and events leave through one queue drained by a writer greenlet, so a reply is never
interleaved with an event. Events produced while a command runs are held back and written
after its reply, which is what FreeSWITCH's listener thread does (e.g. blocking `api originate`).
"""

import logging
import socket
import uuid as uuidlib

import gevent
import gevent.event
from gevent.queue import Queue

from simulator.events import AUTH_REQUEST, api_response, command_reply, disconnect_notice, url_encode
from simulator.switch import ExecRequest

logger = logging.getLogger(__name__)
_CLOSE = object()
MAX_BATCH = 256
# mod_event_socket: a listener whose queue is full loses events; after 500 lost it is killed
MAX_QUEUE = 100000
MAX_LOST = 500


class Connection:
    """Serves one client socket until it says exit, fails auth, or the simulator drops it."""

    def __init__(self, sim, sock, address):
        self.sim = sim
        self.sock = sock
        self.address = address
        self.authed = False
        self.all_events = False
        self.events = set()
        self.format = 'plain'
        self.closed = False
        self._out = Queue()
        self._held = None
        self.lost_events = 0
        self._writer = None
        self._done = gevent.event.Event()

    # ---- what the simulator calls ----------------------------------------------------------------

    def wants(self, name):
        return self.all_events or name in self.events

    def deliver(self, data):
        """Queue an event (held back while this connection's command is still running).

        A client that stops reading loses events once MAX_QUEUE are waiting and is disconnected
        after MAX_LOST, as FreeSWITCH does with a listener that falls behind.
        """
        if self._held is not None:
            self._held.append(data)
        elif self._out.qsize() < MAX_QUEUE:
            self._out.put(data)
        else:
            self.lost_events += 1
            if self.lost_events > MAX_LOST and not self.closed:
                logger.warning('killing listener %s: %d events lost', self.address, self.lost_events)
                self.abort()

    def close_after(self, data):
        """Write `data` after everything queued, then close."""
        self._out.put(data)
        self._out.put(_CLOSE)

    def abort(self):
        """Close the socket now, dropping whatever is queued."""
        self.closed = True
        self._out.put(_CLOSE)
        _close(self.sock)
        self._done.set()

    def wait_closed(self, timeout):
        self._done.wait(timeout)

    # ---- serving ------------------------------------------------------------------------------------

    def serve(self):
        self.sim.connection_opened(self)
        self._writer = gevent.spawn(self._write_loop)
        self._out.put(AUTH_REQUEST)
        try:
            rfile = self.sock.makefile('rb')
            while not self.closed:
                message = _read_command(rfile)
                if message is None:
                    break
                if self.sim.delay_ms:
                    gevent.sleep(self.sim.delay_ms / 1000.0)
                self._run(*message)
        except OSError as exc:
            logger.debug('connection %s: %s', self.address, exc)
        finally:
            self.closed = True
            self.sim.connection_closed(self)
            self._out.put(_CLOSE)  # let the writer flush what is queued, then close
            self._writer.join(timeout=5)
            self.abort()

    def _run(self, line, headers):
        self._held = []
        try:
            reply = self._dispatch(line, headers)
        finally:
            held, self._held = self._held, None
        if reply is not None:
            self._out.put(reply)
        for data in held:
            self._out.put(data)

    def _dispatch(self, line, headers):
        command, _, rest = line.partition(' ')
        if not self.authed:
            return self._auth(command, rest)
        handler = _COMMANDS.get(command)
        if handler is None:
            return command_reply('-ERR command not found')
        return handler(self, rest.strip(), headers)

    def _auth(self, command, rest):
        if command != 'auth':
            return command_reply('-ERR command not found')
        if rest.strip() == self.sim.password:
            self.authed = True
            return command_reply('+OK accepted')
        self._finish(command_reply('-ERR invalid'))
        return None

    def _finish(self, reply):
        self._out.put(reply)
        self.close_after(disconnect_notice())
        self.closed = True

    def _write_loop(self):
        while True:
            batch = [self._out.get()]
            while len(batch) < MAX_BATCH and not self._out.empty():
                batch.append(self._out.get_nowait())
            closing = _CLOSE in batch
            if closing:
                batch = batch[: batch.index(_CLOSE)]
            silent = self.sim.silent_for()
            while silent > 0:
                gevent.sleep(silent)
                silent = self.sim.silent_for()
            try:
                if batch:
                    self.sock.sendall(b''.join(batch))
            except OSError:
                closing = True
            if closing:
                self.closed = True
                _close(self.sock)
                self._done.set()
                return

    # ---- commands ------------------------------------------------------------------------------------

    def cmd_event(self, rest, headers):
        fmt, _, names = rest.partition(' ')
        if fmt not in ('plain', 'json', 'xml'):
            return command_reply('-ERR invalid format')
        self.format = 'json' if fmt == 'json' else 'plain'
        for name in names.split():
            if name == 'ALL':
                self.all_events = True
            else:
                self.events.add(name)
        return command_reply('+OK event listener enabled %s' % fmt)

    def cmd_noevents(self, rest, headers):
        self.all_events = False
        self.events.clear()
        return command_reply('+OK no longer listening for events')

    def cmd_nixevent(self, rest, headers):
        for name in rest.split():
            self.events.discard(name)
        return command_reply('+OK events nixed')

    def cmd_exit(self, rest, headers):
        self._finish(command_reply('+OK bye'))
        return None

    def cmd_api(self, rest, headers):
        command, _, args = rest.partition(' ')
        body = self.sim.api(command, args.strip())
        if command != 'originate':  # originate's API event comes from the channel with its result
            self._after_reply(self.sim.api_event, command, args.strip())
        return api_response(body)

    def cmd_bgapi(self, rest, headers):
        command, _, args = rest.partition(' ')
        args = args.strip()
        job = headers.get('Job-UUID') or str(uuidlib.uuid4())
        if command == 'originate':
            self._after_reply(self._bg_originate, job, args)
        else:
            gevent.spawn(self._bg_api, job, command, args)
        return command_reply('+OK Job-UUID: %s' % job, Job_UUID=job)

    def _bg_originate(self, job, args):
        result = self.sim.originate(args, job=job)
        if isinstance(result, str) and not result.startswith('-ERR'):
            self.sim.job_done(job, 'originate', args, result)

    def _bg_api(self, job, command, args):
        body = self.sim.api(command, args)
        self.sim.job_done(job, command, args, body)

    def cmd_sendmsg(self, rest, headers):
        uuid = rest or headers.get('Unique-ID', '')
        channel = self.sim.channels.get(uuid)
        if channel is None:
            return command_reply('-ERR invalid session id [%s]' % uuid)
        call_command = headers.get('call-command', '')
        if call_command == 'hangup':
            channel.hangup(headers.get('hangup-cause', 'NORMAL_CLEARING'))
        elif call_command == 'execute':
            text = 'Command: %s\n' % url_encode('sendmsg ' + uuid)
            text += ''.join(
                '%s: %s\n' % (name, url_encode(value)) for name, value in headers.items() if name != '_body'
            )
            arg = headers.get('execute-app-arg', headers.get('_body', ''))  # a long arg may come as the body
            channel.execute(ExecRequest(headers.get('execute-app-name', ''), arg, headers.get('event-uuid'), text))
        return command_reply('+OK')

    def _after_reply(self, func, *args):
        """Run `func` once the current command's reply is queued (its events then follow the reply)."""
        gevent.spawn(func, *args)


_COMMANDS = {
    'event': Connection.cmd_event,
    'noevents': Connection.cmd_noevents,
    'nixevent': Connection.cmd_nixevent,
    'exit': Connection.cmd_exit,
    'api': Connection.cmd_api,
    'bgapi': Connection.cmd_bgapi,
    'sendmsg': Connection.cmd_sendmsg,
}


def _close(sock):
    # shutdown first: the reader's makefile() keeps the descriptor open past close()
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _read_command(rfile):
    """Read one client message: the command line, its headers and an optional body. None at EOF."""
    line = rfile.readline()
    while line in (b'\n', b'\r\n'):
        line = rfile.readline()
    if not line:
        return None
    headers = {}
    while True:
        header = rfile.readline()
        if not header:
            return None
        header = header.rstrip(b'\r\n')
        if not header:
            break
        name, _, value = header.decode('utf-8', 'replace').partition(':')
        headers[name.strip()] = value.strip()
    if 'Content-Length' in headers:
        try:
            length = int(headers['Content-Length'])
        except ValueError:
            return None  # not ESL: hang up on it as on EOF
        headers['_body'] = rfile.read(length).decode('utf-8', 'replace')
    return line.decode('utf-8', 'replace').rstrip('\r\n'), headers
