"""`autocall-daemon`: the dialer as a process.

Config is loaded and checked once here and passed down. Signals only set flags:
SIGTERM/SIGINT drain and exit, SIGHUP re-reads the config and applies what can change
while running (pacing, calling window, caps, dial string). systemd hears READY=1 once
the event socket is authenticated and subscribed, and WATCHDOG=1 while the dialer's loop
comes round (also while FreeSWITCH is away or the database unavailable). Exit status: 0
stopped, 2 bad configuration (ESL password refused included), 75 something unavailable right
now (the database at start-up, or still at stop with writes unwritten; systemd restarts it).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after patching, as every entry point does)
import faulthandler  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

from daemon import config as config_mod  # noqa: E402
from daemon import (  # noqa: E402
    dbfile,
    ivr,
    logs,  # noqa: E402
    metrics,
    sdnotify,
    statefile,
)
from daemon.dialer import Dialer  # noqa: E402
from daemon.errors import EX_TEMPFAIL, AutocallError, exit_code  # noqa: E402
from daemon.esl import DEFAULT_EVENTS, ESLClient  # noqa: E402
from daemon.ledger import Ledger, LedgerThread  # noqa: E402
from daemon.listener import bind  # noqa: E402
from daemon.outage import DatabaseOutage  # noqa: E402
from daemon.store.schema import open_database  # noqa: E402

log = logging.getLogger("autocall.daemon")

REPORT_EVERY = 2.0  # seconds between two rewrites of the state file (and systemd pings at most)
# At stop, how long writes still waiting for an unavailable database may take (at most
# dialer.drain_timeout): with the drain (30 s) and the hang-ups, within TimeoutStopSec=60.
FLUSH_TIMEOUT = 10.0


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="autocall-daemon",
        description="The autocall dialer: calls the customers of running queues through FreeSWITCH's "
        "event socket, plays their IVR template and records every call in the database "
        "it shares with autocall-api. Settings: the config file and the AUTOCALL_* "
        "environment variables (see docs/autocall.example.toml).",
        epilog="Signals: TERM/INT stop dialing and drain calls in progress (dialer.drain_timeout); "
        "HUP re-reads the config for pacing, window, caps and dial string.",
    )
    parser.add_argument(
        "--config", metavar="PATH", help="TOML config file (default: $AUTOCALL_CONFIG, else built-in defaults)"
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser.parse_args(argv)


def esl_factory(config: config_mod.Config):
    """A function that returns a new, connected ESL client each time (reconnect = new object)."""

    def connect():
        client = ESLClient(
            config.esl.address.host,
            config.esl.address.port,
            config.esl.password,
            events=DEFAULT_EVENTS,
            timeout=config.esl.timeout,
            heartbeat_timeout=config.esl.heartbeat_timeout,
        )
        client.connect()
        log.info("connected to FreeSWITCH at %s", config.esl.address)
        return client

    return connect


def main(argv=None) -> int:
    args = parse_args(argv)
    logs.setup(args.log_level)
    faulthandler.enable()  # if the watchdog's SIGABRT ever fires, the journal shows where we were stuck
    try:
        config = config_mod.load(args.config)
        listen = config.metrics.listen
        listener = bind(listen, "metrics.listen") if listen else None  # a wrong address stops us at once
        db = open_database(config.database, busy_timeout=config.db_busy_timeout)
        if config.db_path:  # before the recovery reads which calls are live: they could be another dialer's
            dbfile.hold(config.db_path)  # held till exit
    except AutocallError as e:
        print(f"autocall-daemon: {e}", file=sys.stderr)
        return exit_code(e)
    templates = ivr.TemplateLoader.from_config(config)
    outage = DatabaseOutage()
    counted = metrics.DialerMetrics(config.dialer.node)
    ledger = LedgerThread(Ledger(db, node=config.dialer.node), outage, on_write=counted.db_write)
    dialer = Dialer(config, ledger, templates, esl_factory(config), outage=outage, metrics=counted)
    if listener is not None:
        counted.watch(dialer)
        log.info("metrics on http://%s:%d/metrics", *metrics.serve(listener, counted.registry).address[:2])

    def reload():
        try:
            loaded = config_mod.load(args.config)
        except AutocallError as e:
            log.error("SIGHUP: configuration not reloaded, keeping the running one: %s", e)
            return
        dialer.apply_config(loaded)
        pending = config_mod.restart_only_changes(config, loaded)
        if pending:
            log.warning(
                "SIGHUP: configuration reloaded, except %s: still the start-up value until "
                "`systemctl restart autocall-daemon`",
                ", ".join(pending),
            )
        else:
            log.info("SIGHUP: configuration reloaded")

    gevent.signal_handler(signal.SIGTERM, dialer.stop)
    gevent.signal_handler(signal.SIGINT, dialer.stop)
    gevent.signal_handler(signal.SIGHUP, lambda: gevent.spawn(reload))
    # Beside an SQLite file only; on PostgreSQL the node's state waits for its heartbeat row (issue 13).
    state_file = statefile.StateFile(config.db_path) if config.db_path else None
    supervisor = gevent.spawn(_report, dialer, state_file)
    log.info(
        "autocall-daemon starting: node %s, database %s, FreeSWITCH %s, templates %s",
        config.dialer.node,
        config.database,
        config.esl.address,
        config.templates.dir,
    )
    code = 0
    try:
        dialer.run()
    except AutocallError as e:  # e.g. FreeSWITCH keeps refusing the ESL password
        log.error("autocall-daemon stopped: %s", e)
        code = exit_code(e)
    finally:
        supervisor.kill()
        sdnotify.notify("STOPPING=1")
        unwritten = ledger.close(min(FLUSH_TIMEOUT, dialer.dialer_config.drain_timeout))
        if state_file is not None:  # the last word: `autocall status` then says stopped, not "0 calls"
            state_file.write(
                {
                    "pid": os.getpid(),
                    "at": time.time(),
                    "status": "stopped",
                    "stopped": True,
                    "calls": 0,
                    "unwritten": unwritten,
                }
            )
            state_file.close()
    if unwritten:
        log.error(
            "autocall-daemon stopped with %d writes unwritten (%s): the next start reads their "
            "calls' ends back from FreeSWITCH (those it has no record of are recalled)",
            unwritten,
            outage.reason or "database unavailable",
        )
        return code or EX_TEMPFAIL
    if code == 0:
        log.info("autocall-daemon stopped")
    return code


def _report(dialer: Dialer, state_file: statefile.StateFile | None):
    """The state file for `autocall status`, every REPORT_EVERY s; to systemd READY=1 once
    connected, then WATCHDOG=1 unless the dialer's own loop is stuck (waiting for FreeSWITCH
    or the database is not stuck: systemd must not kill us during their outage) and STATUS=
    for `systemctl status`."""
    period = min(sdnotify.watchdog_period() or REPORT_EVERY, REPORT_EVERY)
    told_ready = False
    while True:
        if told_ready:
            gevent.sleep(period)
        elif dialer.ready.wait(period):
            sdnotify.notify("READY=1", "STATUS=connected to FreeSWITCH")
            told_ready = True
        state = _state(dialer)
        if state_file is not None:
            state_file.write(state)
        if told_ready:
            sdnotify.notify(*([] if dialer.wedged() else ["WATCHDOG=1"]), f"STATUS={state['status']}")


def _state(dialer: Dialer) -> dict:
    """What `autocall status` shows of the dialer (daemon.status.render_dialer)."""
    outage, database = dialer.outage, None
    if outage.active:
        database = {"since": outage.since_wall, "reason": outage.reason[:300], "waiting": outage.waiting}
    status = dialer.describe()
    return {"pid": os.getpid(), "at": time.time(), "status": status, "calls": len(dialer.calls), "database": database}


if __name__ == "__main__":
    sys.exit(main())
