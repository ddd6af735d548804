"""The simulated switch: an ESL inbound server on a gevent StreamServer, its channels and fault hooks.

    sim = Simulator(scenario, password='ClueCon', time_scale=0.01).start()
    host, port = sim.address
    ...
    sim.stop()

Any number of clients may connect at once. Fault hooks exist as methods (for in-process tests)
and as `api sim_fault ...` / `api sim_restart` commands (for tests that run us as a process).
"""

import json
import logging
import socket
import time
import uuid as uuidlib

import gevent
import gevent.event
from gevent.server import StreamServer

from simulator import api as api_commands
from simulator import sequences as seq
from simulator.channel import Channel
from simulator.clock import SimClock
from simulator.connection import Connection
from simulator.dial import USAGE, parse_originate, via_gateway
from simulator.events import (
    DISCONNECT_SHUTDOWN,
    EventFactory,
    disconnect_notice,
    event_name,
    frame_event,
    uptime_text,
    url_encode,
)
from simulator.media import Media
from simulator.scenario import Scenario
from simulator.switch import Switch

logger = logging.getLogger(__name__)


class Simulator:
    """A FreeSWITCH 1.10 stand-in speaking the inbound event socket protocol.

    scenario: a Scenario (callee behaviour); time_scale: real seconds per simulated second;
    heartbeat: simulated seconds between HEARTBEAT events; record_path: JSON-lines file that gets
    one line per originate and per app executed (also kept in `records`).
    """

    def __init__(
        self,
        scenario=None,
        password='ClueCon',
        listen=('127.0.0.1', 0),
        time_scale=1.0,
        heartbeat=20.0,
        record_path=None,
        sound_dir='.',
        wall=time.time,
        hostname='vm',
    ):
        self.scenario = scenario or Scenario()
        self.password = password
        self.clock = SimClock(time_scale, wall=wall)
        self.heartbeat = heartbeat
        self.hostname = hostname
        self.media = Media(sound_dir, unreadable=self.scenario.unreadable)
        self.channels = {}
        self.connections = set()
        self.records = []
        self.sessions_total = 0
        self.sessions_peak = 0
        self.delay_ms = 0
        self.hash_store = {}  # mod_hash's: lives in memory, so a restart empties it
        self.db_store = {}  # mod_db's: in the core SQLite file, so it outlives a restart
        self._listen = listen
        self._record_file = open(record_path, 'a', encoding='utf-8') if record_path else None
        self._silent_until = 0.0
        self._server = None
        self._address = None
        self._greenlets = []
        self.stopped = gevent.event.Event()  # set by stop() (and so by shutdown())
        self._new_core()

    # ---- lifecycle ----------------------------------------------------------------------------------

    def start(self):
        """Bind and start serving; returns self. `address` is then the bound (host, port)."""
        self._server = StreamServer(self._listen, self._handle)
        self._server.start()
        self._address = self._server.address[:2]
        if self.heartbeat:
            self._greenlets.append(gevent.spawn(self._heartbeats))
        logger.info('simulator listening on %s:%d (time scale %s)', *self._address, self.clock.scale)
        return self

    @property
    def address(self):
        return self._address

    def stop(self):
        """Stop at once: no more events, every connection and channel gone, listener closed."""
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        for channel in list(self.channels.values()):
            channel.kill_silently()
            self._forget(channel, 'lost')
        if self._record_file:
            self._record_file.close()
            self._record_file = None
        self.stopped.set()

    def shutdown(self, grace=2.0):
        """What SIGTERM does to FreeSWITCH (capture 08b): SHUTDOWN event, every call hung up with
        SYSTEM_SHUTDOWN, then 'The system is being shut down.' and the connections close."""
        self.fire('SHUTDOWN', dict(self.events.base))
        for channel in list(self.channels.values()):
            channel.hangup('SYSTEM_SHUTDOWN')
        deadline = time.monotonic() + grace
        while self.channels and time.monotonic() < deadline:
            gevent.sleep(0.01)
        for conn in list(self.connections):
            conn.close_after(disconnect_notice(DISCONNECT_SHUTDOWN))
        gevent.sleep(0)
        for conn in list(self.connections):
            conn.wait_closed(grace)
        self.stop()

    def wait_idle(self, timeout=10.0):
        """Block until no channel is left (True) or `timeout` real seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while self.channels:
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(0.005)
        return True

    # ---- fault hooks -----------------------------------------------------------------------------------

    def drop_connections(self):
        """Close every client connection abruptly (no notice), as a network cut or crash would."""
        for conn in list(self.connections):
            conn.abort()

    def silence(self, seconds):
        """Write nothing at all (not even heartbeats) for `seconds` real seconds; sockets stay open."""
        self._silent_until = time.monotonic() + seconds

    def silent_for(self):
        """Real seconds of silence left (0 when writing is allowed)."""
        return max(0.0, self._silent_until - time.monotonic())

    def refuse(self, seconds):
        """Refuse new connections for `seconds` real seconds (the listener is closed, then reopened)."""
        if self._server is None:
            return
        address = self._address
        self._server.close()
        self._greenlets.append(gevent.spawn_later(seconds, self._reopen, address))

    def delay(self, milliseconds):
        """Delay every command's reply by `milliseconds` real ms from now on (0: no delay)."""
        self.delay_ms = max(0, int(milliseconds))

    def set_unreadable(self, patterns):
        """From now on the switch cannot open these paths or globs (replaces the scenario's list)."""
        self.media.set_unreadable(patterns)

    def restart(self):
        """As a FreeSWITCH restart: every channel gone without events (no hangup hook runs),
        every connection dropped, mod_hash's store emptied (mod_db's kept), a new Core-UUID. The
        listener stays up."""
        for channel in list(self.channels.values()):
            channel.kill_silently()
            self._forget(channel, 'lost')
        self.drop_connections()
        self.hash_store.clear()
        self._new_core()

    # ---- used by connections ---------------------------------------------------------------------------

    def api(self, command, args):
        """Run an api command; returns the api/response body. May block (sync originate)."""
        return api_commands.run(self, command, args)

    def originate(self, arg, job=None):
        """Start a call. Returns the Channel, or an '-ERR ...' string when no channel could be made."""
        parsed = parse_originate(arg)
        if parsed is None:
            return USAGE
        target = parsed.target
        error = None
        if target is None:
            error = 'CHAN_NOT_IMPLEMENTED'
        elif target.gateway is not None and not self.scenario.knows_gateway(target.gateway):
            error = 'INVALID_GATEWAY'
        elif target.profile is not None and not self.scenario.knows_profile(target.profile):
            error = 'INVALID_PROFILE'
        if error is None and target.gateway is not None:
            gateway = self.scenario.gateway(target.gateway)
            target = via_gateway(target, gateway.profile, gateway.proxy)
        variables = dict(parsed.variables)
        uuid = variables.get('origination_uuid') or str(uuidlib.uuid4())
        if error is None and uuid in self.channels:
            error = 'DESTINATION_OUT_OF_ORDER'
        if error is not None:
            return self._no_channel(uuid, arg, job, error, parsed)
        behaviour = self.scenario.behaviour_for(target.user, target.req_uri)
        channel = Channel(self._switch(), uuid, target, parsed.variables, behaviour, job=job, origin_arg=arg)
        self.channels[uuid] = channel
        self.sessions_peak = max(self.sessions_peak, len(self.channels))
        return channel.start()

    def connection_opened(self, conn):
        self.connections.add(conn)

    def connection_closed(self, conn):
        self.connections.discard(conn)

    # ---- used by channels ------------------------------------------------------------------------------

    def fire(self, key, fields, body=None):
        """Render template `key` once per format and hand it to every connection subscribed to it."""
        name = event_name(key)
        targets = [conn for conn in self.connections if conn.wants(name)]
        if not targets:
            self.events.skip()
            return
        text = self.events.render(key, fields, body)
        frames = {}
        for conn in targets:
            data = frames.get(conn.format)
            if data is None:
                data = frames[conn.format] = frame_event(text, conn.format)
            conn.deliver(data)

    def api_event(self, command, args):
        """The API event FreeSWITCH fires after an api command ran."""
        fields = dict(self.events.base, api_cmd=url_encode(command), api_arg=url_encode(args))
        self.fire(seq.API_WITH_ARG if args else 'API', fields)

    def job_done(self, job, command, args, result):
        """API event, then BACKGROUND_JOB for a bgapi job (job None: it was a blocking api)."""
        self.api_event(command, args)
        if job is not None:
            fields = dict(self.events.base, job=job, job_cmd=url_encode(command), job_arg=url_encode(args))
            self.fire('BACKGROUND_JOB', fields, body=result)

    def _switch(self):
        """What one new channel gets to see of the switch."""
        return Switch(
            clock=self.clock,
            media=self.media,
            scenario=self.scenario,
            base_fields=self.events.base,
            fire=self.fire,
            record_app=self.record_app,
            job_done=self.job_done,
            gone=self.channel_gone,
            api=self.api,
            session_id=self.next_session_id(),
        )

    def next_session_id(self):
        self.sessions_total += 1
        return self.sessions_total

    def channel_gone(self, channel):
        if self.channels.get(channel.uuid) is channel:
            self._forget(channel, channel.behaviour.outcome)

    def record_app(self, channel, request):
        self._record(
            {
                'event': 'app',
                'time': self.clock.now(),
                'uuid': channel.uuid,
                'app': request.app,
                'arg': request.arg,
                'app_uuid': request.app_uuid,
            }
        )

    # ---- internals -------------------------------------------------------------------------------------

    def _handle(self, sock, address):
        # As mod_event_socket does (listener_run): without it Nagle and delayed ACKs stall
        # small event writes by 40 ms and more.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        Connection(self, sock, address).serve()

    def _new_core(self):
        self.core_uuid = str(uuidlib.uuid4())
        self.started = self.clock.now()
        self.events = EventFactory(self.clock.now, self.core_uuid, hostname=self.hostname)

    def _reopen(self, address):
        self._server = StreamServer(address, self._handle)
        self._server.start()

    def _no_channel(self, uuid, arg, job, error, parsed):
        fields = dict(self.events.base, uuid=uuid, session_id=str(self.next_session_id()))
        for key in seq.NO_CHANNEL:
            self.fire(key, fields)
        result = '-ERR %s\n' % error
        self._record(
            {
                'event': 'originate',
                'time': self.clock.now(),
                'uuid': uuid,
                'job': job,
                'dial': parsed.url,
                'variables': dict(parsed.variables),
                'outcome': error.lower(),
                'cause': error,
                'answer_time': None,
                'end_time': self.clock.now(),
            }
        )
        if job is not None:
            gevent.spawn(self.job_done, job, 'originate', arg, result)
        return result

    def _forget(self, channel, outcome):
        self.channels.pop(channel.uuid, None)
        self._record(
            {
                'event': 'originate',
                'time': channel.created,
                'uuid': channel.uuid,
                'job': channel.job,
                'dial': channel.target.url,
                'variables': dict(channel.variables),
                'outcome': outcome,
                'cause': channel.hangup_cause,
                'answer_time': channel.answered,
                'end_time': channel.ended,
            }
        )

    def _record(self, entry):
        # the same moments in real time, to compare with what the daemon and the API logged
        for name in ('time', 'answer_time', 'end_time'):
            if name in entry:
                entry['wall_' + name] = self.clock.to_wall(entry[name])
        self.records.append(entry)
        if self._record_file:
            self._record_file.write(json.dumps(entry) + '\n')
            self._record_file.flush()

    def _heartbeats(self):
        while True:
            gevent.sleep(self.clock.real(self.heartbeat))
            self.fire('HEARTBEAT', self._heartbeat_fields())

    def _heartbeat_fields(self):
        up = max(0.0, self.clock.now() - self.started)
        return dict(
            self.events.base,
            uptime=url_encode(uptime_text(up)),
            uptime_ms=str(int(up * 1000)),
            sessions=str(len(self.channels)),
            sessions_total=str(self.sessions_total),
            sessions_peak=str(self.sessions_peak),
        )
