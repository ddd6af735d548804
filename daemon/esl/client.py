"""The connection: our inbound ESL client, built on greenswitch's `InboundESL`.

greenswitch 0.0.19 stays the dependency, but the parts of it that are broken are
replaced here (docs/esl.md lists them): messages are framed from bytes (`wire`), sends are
`sendall` under a lock with a timeout, replies are matched to commands in order, and any
EOF, parser error, disconnect notice or heartbeat silence marks the connection dead and
fails every pending waiter at once with `ESLConnectionLost`. The text of every command
comes from `commands`. greenswitch's own handler machinery (`register_handle`,
`process_events`...) is not ours: calling it raises NotImplementedError.

One object is one TCP connection. Reconnecting means building a new `ESLClient`.
"""

import logging
import time
import uuid as uuidlib
from collections import deque

import gevent
import gevent.event
import gevent.lock
import gevent.socket
from greenswitch.esl import InboundESL

from daemon.esl import commands
from daemon.esl.errors import (
    ESLAuthError,
    ESLChannelGone,
    ESLCommandError,
    ESLConnectionLost,
    ESLError,
    ESLProtocolError,
    ESLTimeout,
    ESLUnsafeArgument,
)
from daemon.esl.wire import EVENT_PARSERS, JobResult, check_wire_value, parse_event, read_message

logger = logging.getLogger("autocall.esl")

# --- the client ---


class ESLClient(InboundESL):
    """One inbound ESL connection to FreeSWITCH.

    Build it, `connect()` once, use `api` / `bgapi` / `execute` from any greenlet
    except an event handler. When the connection dies, `dead` is set, `dead_reason`
    says why, and every pending reply, job and application future raises
    ESLConnectionLost from `.get()`. To reconnect, build a new client.

    Event handlers (`subscribe_channel`, `on_unowned_event`) run in the reader greenlet:
    they must return quickly and must not call commands on this client (that raises
    ESLError); hand the event to another greenlet instead. A handler's exception is
    logged and does not hurt the connection.
    """

    def __init__(
        self,
        host,
        port,
        password,
        *,
        events=commands.DEFAULT_EVENTS,
        timeout=5.0,
        heartbeat_timeout=60.0,
        clock=time.monotonic,
        on_unowned_event=None,
    ):
        super().__init__(host, port, check_wire_value(password, 'password'), timeout=timeout)
        if not heartbeat_timeout > 0 or not timeout > 0:
            raise ValueError('timeout and heartbeat_timeout must be positive seconds')
        self.events = commands.subscription(events)
        self.heartbeat_timeout = heartbeat_timeout
        self.on_unowned_event = on_unowned_event
        self.dead = gevent.event.Event()
        self.dead_reason = None
        self.last_heartbeat = None
        self._clock = clock
        self._commands_sent = deque()
        self._jobs = {}
        self._apps = {}
        self._channels = {}
        self._send_lock = gevent.lock.Semaphore()
        self._rfile = None
        self._reader = None
        self._connect_started = False
        self._ready = False

    # -- lifecycle

    def connect(self):
        """TCP connect, authenticate, subscribe `event plain <events>`.

        Returns when the connection is ready. Raises ESLAuthError on a wrong password,
        ESLConnectionLost if the socket fails or FreeSWITCH hangs up, ESLTimeout if it
        does not answer in `timeout`, ESLError if called twice on one object.
        """
        if self._connect_started:
            raise ESLError('connect() runs once per ESLClient; build a new client to reconnect')
        self._connect_started = True
        try:
            self.sock = gevent.socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            self._die('cannot connect to %s:%s: %s' % (self.host, self.port, exc))
            raise ESLConnectionLost(self.dead_reason) from exc
        self.sock.settimeout(None)
        self._rfile = self.sock.makefile('rb')
        self.connected = True
        self.last_heartbeat = self._clock()
        self.start_event_handlers()
        try:
            self._wait_auth_request()
            self.authenticate()
            self._expect_ok(self._command(commands.subscribe(self.events)), 'event subscription')
        except ESLError as exc:
            self._die('connect failed: %s' % exc)
            raise
        self._ready = True
        logger.info('ESL connected to %s:%s, events: %s', self.host, self.port, ' '.join(self.events))

    def start_event_handlers(self):
        """Start the reader and the heartbeat watchdog (replaces greenswitch's pair)."""
        self._reader = gevent.spawn(self.receive_events)
        gevent.spawn(self._watch_heartbeat)

    def _wait_auth_request(self):
        gevent.wait([self._auth_request_event, self.dead], timeout=self.timeout, count=1)
        if self.dead.is_set():
            raise ESLConnectionLost(self.dead_reason)
        if not self._auth_request_event.is_set():
            self._die('no auth/request within %.1fs' % self.timeout)
            raise ESLConnectionLost(self.dead_reason)

    def authenticate(self):
        """Send `auth <password>`; raise ESLAuthError (and close) if refused."""
        reply = self._command(commands.auth(self.password))
        text = reply.get('Reply-Text', '')
        if not text.startswith('+OK'):
            self._die('authentication refused: %s' % text)
            raise ESLAuthError('FreeSWITCH refused the ESL password (%s)' % text)

    def is_alive(self):
        """True between a successful connect() and the connection's death."""
        return self._ready and not self.dead.is_set()

    def close(self):
        """Close the socket. Idempotent; pending waiters raise ESLConnectionLost."""
        self._die('closed by client', level=logging.INFO)

    def stop(self):
        """greenswitch's name for close()."""
        self.close()

    # -- commands

    def api(self, command, timeout=None):
        """Run `api <command>` and return the api/response body as text, exactly as
        sent (some bodies end in a newline, some do not; `-ERR ...` bodies are returned,
        not raised). Raises ESLTimeout, ESLConnectionLost, ESLUnsafeArgument."""
        reply = self._command(commands.api(command), timeout)
        return reply.body.decode('utf-8', 'replace')

    def bgapi(self, command, job_uuid=None, timeout=None):
        """Start `bgapi <command>` under our own Job-UUID and return a gevent AsyncResult.

        Its `.get()` returns a JobResult once the BACKGROUND_JOB with that Job-UUID
        arrives (whatever the order relative to channel events), or raises
        ESLConnectionLost if the connection dies first. This call itself waits only for
        the command reply: ESLCommandError if FreeSWITCH refused it, ESLTimeout.
        """
        job_uuid = job_uuid or str(uuidlib.uuid4())
        text = commands.bgapi(command, job_uuid)
        if job_uuid in self._jobs:
            raise ESLError('job %s is already pending' % job_uuid)
        future = gevent.event.AsyncResult()
        self._jobs[job_uuid] = future
        try:
            reply = self._command(text, timeout)
            self._expect_ok(reply, 'bgapi')
        except ESLTimeout as exc:
            exc.pending = future  # the switch may still run it: its BACKGROUND_JOB resolves this
            raise
        except ESLError:
            self._jobs.pop(job_uuid, None)
            raise
        return future

    def execute(self, uuid, app, arg='', *, timeout=None):
        """Execute dialplan application `app arg` on channel `uuid` via sendmsg, with
        event-lock and our own event-uuid. Returns a gevent AsyncResult whose `.get()`
        returns the CHANNEL_EXECUTE_COMPLETE ESLEvent whose Application-UUID is ours
        (Application-Response, variables...), or raises ESLConnectionLost /
        ESLChannelGone. `timeout` bounds the wait for the sendmsg reply only.
        """
        app_uuid = str(uuidlib.uuid4())
        text = commands.execute(uuid, app, arg, app_uuid)
        future = gevent.event.AsyncResult()
        self._apps[app_uuid] = (uuid, future)
        try:
            self._expect_ok(self._command(text, timeout), 'sendmsg %s' % app)
        except ESLTimeout as exc:
            exc.pending = future  # the app may still run: its CHANNEL_EXECUTE_COMPLETE resolves this
            raise
        except ESLError:
            self._apps.pop(app_uuid, None)
            raise
        return future

    def _expect_ok(self, reply, what):
        text = reply.get('Reply-Text', '')
        if not text.startswith('+OK'):
            raise ESLCommandError('%s refused: %s' % (what, text))
        return reply

    def send(self, data, timeout=None):
        """greenswitch's raw send, made safe: one command (header lines allowed, no blank
        line, no CR or NUL); returns the reply ESLEvent. Prefer api/bgapi/execute."""
        for line in data.split('\n'):
            if not line.strip():
                raise ESLUnsafeArgument('raw command contains a blank line: %r' % data[:80])
            check_wire_value(line, 'raw command')
        return self._command(data, timeout)

    def _command(self, text, timeout=None):
        """Send one command and wait for its reply (command/reply or api/response)."""
        timeout = self.timeout if timeout is None else timeout
        if gevent.getcurrent() is self._reader:
            raise ESLError('ESL commands cannot be sent from an event handler; hand off to a greenlet')
        waiter = gevent.event.AsyncResult()
        with self._send_lock:
            self._raise_if_dead()
            self._commands_sent.append(waiter)
            self._sendall((text + '\n\n').encode('utf-8'), timeout)
        try:
            return waiter.get(timeout=timeout)
        except gevent.Timeout:
            # The waiter stays queued so a late reply is consumed in order and dropped.
            raise ESLTimeout('no reply to %r within %.1fs' % (text.split(None, 1)[0], timeout)) from None

    def _sendall(self, data, timeout):
        timer = gevent.Timeout(timeout)
        try:
            with timer:
                self.sock.sendall(data)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            # A partial write leaves the stream unusable: nothing after it would parse.
            self._die('send did not finish within %.1fs' % timeout)
            raise ESLConnectionLost(self.dead_reason) from None
        except OSError as exc:
            self._die('send failed: %s' % exc)
            raise ESLConnectionLost(self.dead_reason) from None

    def _raise_if_dead(self):
        if self.dead.is_set():
            raise ESLConnectionLost(self.dead_reason)
        if not self.connected:
            raise ESLConnectionLost('not connected')

    # -- channel ownership

    def subscribe_channel(self, uuid, handler):
        """Send every event whose Unique-ID is `uuid` to `handler(event)`."""
        self._channels[uuid] = handler

    def unsubscribe_channel(self, uuid):
        """Stop dispatching `uuid`'s events; its pending execute futures raise ESLChannelGone."""
        self._channels.pop(uuid, None)
        for app_uuid, (channel, future) in list(self._apps.items()):
            if channel == uuid:
                del self._apps[app_uuid]
                future.set_exception(ESLChannelGone('channel %s unsubscribed before %s completed' % (uuid, app_uuid)))

    # -- greenswitch's handler machinery, replaced: fail loudly instead of never running

    def register_handle(self, name, handler):
        """Not supported: events are dispatched by channel, in the reader greenlet."""
        raise NotImplementedError(
            'ESLClient does not run greenswitch handlers; use subscribe_channel(uuid, '
            'handler) for a channel, or ESLClient(on_unowned_event=handler) for the rest'
        )

    def unregister_handle(self, name, handler):
        """Not supported: see register_handle."""
        raise NotImplementedError('ESLClient does not run greenswitch handlers; use unsubscribe_channel(uuid)')

    def process_events(self):
        """Not supported: there is no event queue; the reader (`receive_events`) dispatches."""
        raise NotImplementedError(
            'ESLClient has no event queue to process: receive_events() dispatches each '
            'event as it is read (subscribe_channel, on_unowned_event)'
        )

    # -- reader side

    def receive_events(self):
        """Reader greenlet: frame messages until EOF or error, then mark the connection dead."""
        try:
            while not self.dead.is_set():
                message = read_message(self._rfile)
                if message is None:
                    self._die('FreeSWITCH closed the connection')
                    return
                self.handle_event(message)
        except ESLConnectionLost as exc:
            self._die(str(exc))
        except (ESLError, OSError, ValueError) as exc:
            self._die('%s: %s' % (type(exc).__name__, exc))
        except Exception as exc:  # noqa: BLE001 -- a reader that dies silently is the bug we fix
            logger.exception('ESL reader crashed')
            self._die('reader crashed: %r' % exc)
        finally:
            self._rfile.close()

    def handle_event(self, message):
        """Route one framed message by Content-Type."""
        kind = message.content_type
        if kind == 'auth/request':
            self._auth_request_event.set()
        elif kind in ('command/reply', 'api/response'):
            self._resolve_reply(message)
        elif kind in EVENT_PARSERS:
            self._dispatch(parse_event(message))
        elif kind == 'text/disconnect-notice':
            if message.get('Content-Disposition') == 'linger':
                logger.info('ESL disconnect notice with linger; staying')
                return
            self._die('FreeSWITCH disconnected: %s' % message.body.decode('utf-8', 'replace').strip())
        elif kind == 'text/rude-rejection':
            self._die('FreeSWITCH rejected us: %s' % message.body.decode('utf-8', 'replace').strip())
        else:
            logger.debug('ignoring ESL message of type %r', kind)

    def _resolve_reply(self, message):
        if not self._commands_sent:
            raise ESLProtocolError('a %s arrived with no command waiting' % message.content_type)
        self._commands_sent.popleft().set(message)

    def _dispatch(self, event):
        name = event.name
        if name == 'HEARTBEAT':
            self.last_heartbeat = self._clock()
            return
        owned = False
        if name == 'BACKGROUND_JOB':
            future = self._jobs.pop(event.get('Job-UUID'), None)
            if future is not None:
                future.set(JobResult.from_body(event.body))
                owned = True
        elif name == 'CHANNEL_EXECUTE_COMPLETE':
            entry = self._apps.pop(event.get('Application-UUID'), None)
            if entry is not None:
                entry[1].set(event)
                owned = True
        handler = self._channels.get(event.unique_id)
        if handler is not None:
            self._run_handler(handler, event)
        elif not owned and self.on_unowned_event is not None:
            self._run_handler(self.on_unowned_event, event)

    def _run_handler(self, handler, event):
        try:
            handler(event)
        except Exception:  # noqa: BLE001 -- one bad handler must not kill the connection
            logger.exception('ESL handler %r failed on %s %s', handler, event.name, event.unique_id)

    def _watch_heartbeat(self):
        interval = min(1.0, self.heartbeat_timeout / 4.0)
        while not self.dead.wait(interval):
            silent = self._clock() - self.last_heartbeat
            if silent > self.heartbeat_timeout:
                self._die('no HEARTBEAT for %.1fs' % silent)

    # -- death

    def _die(self, reason, level=logging.WARNING):
        """Mark the connection dead once: fail every waiter, close the socket, set `dead`."""
        if self.dead_reason is not None:
            return
        self.dead_reason = reason
        self.connected = False
        self._run = False
        logger.log(level, 'ESL connection to %s:%s is dead: %s', self.host, self.port, reason)
        waiters = list(self._commands_sent) + list(self._jobs.values())
        waiters += [future for _, future in self._apps.values()]
        self._commands_sent.clear()
        self._jobs.clear()
        self._apps.clear()
        for waiter in waiters:
            if not waiter.ready():
                waiter.set_exception(ESLConnectionLost(reason))
        self._close_socket()
        self.dead.set()

    def _close_socket(self):
        sock = getattr(self, 'sock', None)
        if sock is None:
            return
        try:
            sock.shutdown(gevent.socket.SHUT_RDWR)  # wakes the reader with EOF; it closes its file
        except OSError:
            pass  # already closed by the peer
        sock.close()
