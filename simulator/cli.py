"""`autocall-simulator`: run the FreeSWITCH stand-in as a process."""

import argparse
import logging
import signal
import sys

DESCRIPTION = """\
A FreeSWITCH 1.10 stand-in speaking the ESL inbound protocol byte for byte as the real switch
(held to captures). Callees behave as the scenario file says (see docs/simulator.md).
SIGTERM behaves like FreeSWITCH's: SHUTDOWN event, every call hung up with SYSTEM_SHUTDOWN,
'The system is being shut down.' to every client, then exit.
Scenario keys beyond the callees: originate_completes_after (simulated seconds from
CHANNEL_ANSWER to the originate's completion, default 0.02: an execute sent before CHANNEL_PARK
may be cut short, as on the real switch), show_channels_lag (simulated seconds
before a new channel is in `show channels`, default 0), unreadable = [paths or globs the switch cannot open],
gateways (names, or tables of profile/proxy/user_agent/allow).
Fault hooks over ESL: 'api sim_fault drop|silence S|refuse S|delay MS',
'api sim_fault unreadable [PATH ...]' (replaces the unreadable list), 'api sim_restart'."""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='autocall-simulator', description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        '--listen',
        default='127.0.0.1:8021',
        metavar='HOST:PORT',
        help='address to listen on (default 127.0.0.1:8021; port 0 picks a free one)',
    )
    parser.add_argument('--password', default='ClueCon', help='ESL password (default ClueCon)')
    parser.add_argument(
        '--scenario',
        metavar='FILE',
        help='scenario TOML file (default: everyone answers after 1 s and hangs up after 30 s)',
    )
    parser.add_argument(
        '--time-scale',
        type=float,
        default=1.0,
        metavar='X',
        help='real seconds per simulated second: 0.01 runs 100x faster (default 1)',
    )
    parser.add_argument('--record', metavar='FILE', help='append one JSON line per originate and per app')
    parser.add_argument(
        '--heartbeat',
        type=float,
        default=20.0,
        metavar='SECONDS',
        help='simulated seconds between HEARTBEAT events (default 20; 0 disables)',
    )
    parser.add_argument('--sound-dir', default='.', metavar='DIR', help='base of relative playback paths')
    parser.add_argument('--seed', type=int, help="override the scenario's random seed")
    parser.add_argument('--log-level', default='INFO', help='DEBUG, INFO, WARNING (default INFO)')
    args = parser.parse_args(argv)
    host, sep, port = args.listen.rpartition(':')
    if not sep or not port.isdigit():
        parser.error('--listen must be HOST:PORT, got %r' % args.listen)
    if args.time_scale <= 0:
        parser.error('--time-scale must be > 0')
    args.address = (host or '127.0.0.1', int(port))
    return args


def main(argv=None):
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import gevent.event

    from simulator import scenario as scenario_module
    from simulator.server import Simulator

    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format='%(asctime)s %(levelname)s %(name)s: %(message)s'
    )
    try:
        scenario = scenario_module.load(args.scenario, seed=args.seed) if args.scenario else None
    except scenario_module.ScenarioError as exc:
        print('autocall-simulator: %s' % exc, file=sys.stderr)
        return 2
    sim = Simulator(
        scenario,
        password=args.password,
        listen=args.address,
        time_scale=args.time_scale,
        heartbeat=args.heartbeat,
        record_path=args.record,
        sound_dir=args.sound_dir,
    )
    try:
        sim.start()
    except OSError as exc:
        print('autocall-simulator: cannot listen on %s:%d: %s' % (args.address + (exc,)), file=sys.stderr)
        return 2
    # print the bound address so a parent process using port 0 can find us
    print('listening %s:%d' % sim.address, flush=True)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, lambda: stopping.set())
    gevent.signal_handler(signal.SIGINT, lambda: stopping.set())
    gevent.wait([stopping, sim.stopped], count=1)  # a signal, or `api shutdown` over ESL
    if not sim.stopped.is_set():
        logging.getLogger(__name__).info('shutting down')
        sim.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
