"""The fault campaign: the whole product under traffic and faults; nothing lost, nobody double-called.

An in-process simulator (FreeSWITCH), the API and the daemon as real processes on one SQLite
file (`tests.soak.rig`), `clients` HTTP clients importing, re-importing, DNC-ing, stopping and starting queues
all along. Each round one fault strikes at a random moment (kill -9 of the daemon, the event
socket dropped, the switch silent with its socket open, the switch restarted, another
process holding the SQLite write lock for a second or past every timeout, the disk under the
database full for ten seconds, the wall clock stepped, an operator editing the template); then
the invariants of `tests.soak.checks` are checked. The processes and files are `tests.soak.rig`'s.
At the end faults stop, every queue is started and the campaign drains: nobody may be left
pending or calling. Seeded, bounded in rounds and time, loopback only.

With `backend="postgresql"` the store is a PostgreSQL server of the campaign's own, and there
may be several daemons (`nodes`, each on its own in-process simulator, all on one clock) and
API processes (`apis`); the database's faults are then the server's (PG_FAULTS).

    python -m tests.soak.campaign --rounds 50
    python -m tests.soak.campaign --rounds 50 --backend postgresql --nodes 3 --apis 2

`run(settings, workdir)` is the library form (tests/test_fault_campaign.py runs a short one).
"""

if __name__ == "__main__":  # a program: patch before anything imports sockets or sqlite
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from daemon.store import schema, url  # noqa: E402
from tests.api_fixtures import TOKEN  # noqa: E402
from tests.daemon_fixtures import start_simulator, wait_until  # noqa: E402
from tests.db_faults import Tmpfs  # noqa: E402
from tests.pg_fixtures import PgCluster, close  # noqa: E402
from tests.soak import checks  # noqa: E402
from tests.soak.db import Reader  # noqa: E402
from tests.soak.faults import Faults  # noqa: E402
from tests.soak.rig import ApiServer, Daemon, copy_templates, scenario  # noqa: E402
from tests.soak.stalls import StallMeter  # noqa: E402
from tests.soak.traffic import Traffic  # noqa: E402
from tests.soak.wallclock import WallClock  # noqa: E402

log = logging.getLogger(__name__)

FAULTS = ("kill9", "drop", "silence", "restart", "db_lock", "db_lock_long", "disk_full", "clock_step", "template_edit")
# On PostgreSQL the database's faults are its own: the server crashing (every connection cut,
# back two seconds later), and another session holding the store's write lock briefly or past
# every timeout. The switch faults strike one node, drawn each round.
PG_FAULTS = (
    "kill9",
    "drop",
    "silence",
    "restart",
    "pg_restart",
    "pg_lock",
    "pg_lock_long",
    "clock_step",
    "template_edit",
)
# The switches stay connected: no call may be lost.
DB_FAULTS = ("db_lock", "db_lock_long", "disk_full", "pg_restart", "pg_lock", "pg_lock_long")
# Not in the default cycle: `refuse` (connection dropped, reconnects refused for 2 s) and `slow`
# (every ESL reply held 1.5 s for 3 s; replies queue up behind each other, as on a stalled switch).
EXTRA_FAULTS = ("refuse", "slow")


@dataclasses.dataclass(frozen=True)
class Settings:
    rounds: int = 8
    seed: int = 1
    round_seconds: float = 3.0  # real seconds of traffic per round, the fault somewhere inside
    time_scale: float = 0.02  # simulated seconds run 50x faster
    clients: int = 20
    queues: int = 3
    heartbeat_timeout: float = 3.0  # the daemon's; the simulator beats every 20 simulated s (0.4 s real)
    # Real seconds the switch stays silent: twice heartbeat_timeout, because a daemon behind on a
    # loaded host reads (and stamps) the last HEARTBEAT before the silence up to a second late.
    silence: float = 6.0
    lock_hold: float = 1.0  # real seconds another process holds the SQLite write lock
    busy_timeout: float = 2.0  # the daemon's database.busy_timeout: db_lock stays inside it
    lock_long: float = 8.0  # real seconds of db_lock_long: four of the daemon's busy timeouts
    disk_full: float = 10.0  # real seconds the disk under the database stays full
    disk_size: int = 256 << 20  # bytes of the tmpfs the database lives on (for disk_full)
    epsilon: float = 0.5  # real seconds a claim already in flight may still originate after a stop/DNC
    result_grace: float = 3.0  # real seconds a call's result may take to be written once it ended
    recovery: float = 40.0  # real seconds the daemon gets to reconnect after a fault
    drain: float = 120.0  # real seconds for the final drain
    daily_cap: int = 4  # the daemon's; re-imports and a second queue push people to it
    template_hold: float = 1.5  # real seconds each version of an edited template stays: over the loaders' 1 s
    pg_down: float = 2.0  # real seconds PostgreSQL stays down in pg_restart
    backend: str = "sqlite"  # or "postgresql": a server of the campaign's own (tests.pg_fixtures)
    nodes: int = 1  # daemons, each with its own simulator (more than one: PostgreSQL)
    apis: int = 1  # API processes; the clients spread their requests over them
    faults: tuple | None = None  # the cycle each run of len(faults) rounds goes through (None: the backend's)


@dataclasses.dataclass
class Result:
    rounds: int
    faults: list
    violations: list
    seconds: float
    counts: dict

    @property
    def results_lost(self) -> int:
        return sum(1 for v in self.violations if v.rule == "result_lost")


class Campaign(Faults):
    def __init__(self, settings: Settings, workdir: Path):
        self.settings, self.workdir = settings, workdir
        self.rng = random.Random(settings.seed)
        self.journal = checks.Journal()
        self.violations: list = []
        if settings.nodes > 1 and settings.backend != "postgresql":
            raise ValueError("several nodes need PostgreSQL (backend='postgresql')")
        self.sims: list = []
        self.daemons: list = []
        self.apis: list = []
        self.traffic = self.clock = self.reader = self.stalls = None
        self._api_seen = 0
        self._reported = set()
        self.disk = None  # the tmpfs under the database, for disk_full
        self.pg = None  # the PostgreSQL server, on that backend
        self._lost_seen: frozenset = frozenset()  # attempts closed CALL_LOST by the last check
        self.faults = settings.faults or (PG_FAULTS if settings.backend == "postgresql" else FAULTS)
        if "disk_full" in self.faults and not Tmpfs.available():
            log.warning("disk_full left out: mounting a tmpfs needs root (CAP_SYS_ADMIN) on this machine")
            self.faults = tuple(f for f in self.faults if f != "disk_full")

    def run(self) -> Result:
        began = time.monotonic()
        faults = self._schedule()
        try:
            self._start()
            for round_no, fault in enumerate(faults, 1):
                self._round(round_no, fault)
            self._finish(len(faults) + 1)
        finally:
            self._stop_all()
        return Result(len(faults), faults, self.violations, time.monotonic() - began, dict(self.journal.counts))

    def _schedule(self) -> list:
        """Every fault once per cycle of len(faults) rounds, in a seeded order."""
        faults = []
        while len(faults) < self.settings.rounds:
            cycle = list(self.faults)
            self.rng.shuffle(cycle)
            faults += cycle
        return faults[: self.settings.rounds]

    def _start(self):
        s = self.settings
        db_path, db_env = self._open_database()
        for _ in range(s.nodes):
            clock = self.sims[0].clock if self.sims else None  # one timeline for every switch
            self.sims.append(start_simulator(scenario(s.seed), s.time_scale, clock))
        self.stalls = StallMeter(self.sims[0].clock).start()
        self.journal.stalls = self.stalls.stalls
        self.templates = copy_templates(self.workdir)
        self.clock = WallClock(self.workdir)
        for i, sim in enumerate(self.sims):
            node = f"pbx{i + 1}" if s.nodes > 1 else None
            workdir = self.workdir / node if node else self.workdir
            workdir.mkdir(exist_ok=True)
            self.daemons.append(
                Daemon(
                    workdir,
                    sim,
                    self.templates,
                    self.clock,
                    db_path,
                    daily_cap=s.daily_cap,
                    heartbeat_timeout=s.heartbeat_timeout,
                    busy_timeout=s.busy_timeout,
                    db_env=db_env,
                    node=node,
                )
            )
        for i in range(s.apis):
            name = f"api{i + 1}" if s.apis > 1 else "api"
            self.apis.append(ApiServer(self.workdir, db_env, self.templates, self.clock, name))
        queues = [f"SOAK-{i}" for i in range(1, s.queues + 1)]
        self.traffic = Traffic(
            [api.url for api in self.apis],
            TOKEN,
            self.reader,
            queues,
            self.journal,
            self.sims[0].clock.now,
            rng=self.rng,
            clients=s.clients,
        )
        self.traffic.create_queues(self.rng)
        for daemon in self.daemons:
            daemon.start(s.recovery)
        self.traffic.start()

    def _open_database(self) -> tuple[Path, dict]:
        """The SQLite file (on a tmpfs of its own when disk_full is in the cycle) or a fresh
        PostgreSQL server; returns the file's path and the environment that names the database."""
        if self.settings.backend == "postgresql":
            # Durable, as production's must be (docs/scale-out.md): an acknowledged claim survives a crash.
            self.pg = PgCluster(durable=True).start()
            location = self.pg.fresh()
            close(schema.open_database(location))  # migrated once, before the processes race to it
            self.reader = Reader(location)
            return self.workdir / "unused.sqlite3", {"AUTOCALL_DB": location.dsn, url.PASSWORD_ENV: location.password}
        if "disk_full" in self.faults:
            self.disk = Tmpfs(self.workdir / "disk", self.settings.disk_size)
            path = self.disk.path / "autocall.sqlite3"
        else:
            path = self.workdir / "autocall.sqlite3"
        self.reader = Reader(path)
        return path, {"AUTOCALL_DB": str(path)}

    def _node(self) -> int:
        """The node a switch fault strikes: drawn each round (the only one, on one node)."""
        return self.rng.randrange(len(self.daemons)) if len(self.daemons) > 1 else 0

    def _round(self, round_no: int, fault: str):
        s = self.settings
        before = s.round_seconds * self.rng.uniform(0.1, 0.6)
        gevent.sleep(before)
        log.info("round %d: %s", round_no, fault)
        self.journal.counts[f"fault_{fault}"] += 1
        self.journal.counts["calls_live_at_faults"] += sum(len(sim.channels) for sim in self.sims)
        getattr(self, f"_fault_{fault}")()
        gevent.sleep(max(0.0, s.round_seconds - before))
        self._check(round_no, fault)

    # --- checks ---

    def _check(self, round_no: int, fault: str | None = None) -> checks.Snapshot:
        s = self.settings
        # On PostgreSQL the clients run while the snapshot is read (the driver yields): a customer
        # counts as accepted if it was before the read began and still is after it, and its
        # queue was not deleted and imported again meanwhile (its customers forgotten and
        # accepted again, while the snapshot may show the queue gone).
        accepted, forgotten = set(self.journal.accepted), dict(self.journal.forgotten)
        snap = checks.take_snapshot(self.sims, self.reader, self.journal.restarts)
        moved = {q for q, n in self.journal.forgotten.items() if forgotten.get(q, 0) != n}
        kept = {key for key in accepted & self.journal.accepted if key[0] not in moved}
        journal = dataclasses.replace(self.journal, accepted=kept)
        found = checks.check(
            snap, journal, round_no, s.epsilon / s.time_scale, s.daily_cap, s.result_grace / s.time_scale
        )
        if fault in DB_FAULTS:
            found += checks.check_none_lost(snap, self._lost_seen, fault, round_no)
        self._lost_seen = snap.lost
        errors = self.journal.api_errors[self._api_seen :]
        self._api_seen = len(self.journal.api_errors)
        found += [checks.Violation(round_no, "api", text) for text in errors]
        found = [v for v in found if (v.rule, v.detail) not in self._reported]  # each once, when first seen
        self._reported.update((v.rule, v.detail) for v in found)
        for v in found:
            log.error("VIOLATION %s", v)
        self.violations += found
        log.info(
            "round %d: %d customers, %d attempts, %d simulator calls, %d violations",
            round_no,
            len(snap.customers),
            len(snap.attempts),
            len(snap.calls),
            len(found),
        )
        return snap

    def _finish(self, round_no: int):
        """Faults off, clients stopped, every queue started: everyone must end final."""
        self.traffic.stop()
        self.traffic.start_all()

        def live() -> int:
            return sum(len(sim.channels) for sim in self.sims)

        try:
            wait_until(lambda: _unfinished(self.reader) == 0 and not live(), self.settings.drain, 0.2)
        except AssertionError:
            log.error("the campaign did not drain within %.0fs", self.settings.drain)
        snap = self._check(round_no)
        self._count_outcomes()
        found = checks.check_drained(snap, round_no, live(), self.settings.daily_cap)
        for daemon in self.daemons:
            code = daemon.proc.terminate()  # SIGTERM with nothing left to drain: a clean exit
            if code != 0:
                found.append(
                    checks.Violation(round_no, "stuck", f"daemon {daemon.node or ''} exited {code} on SIGTERM")
                )
        self.violations += found
        for v in found:
            log.error("VIOLATION %s", v)

    def _count_outcomes(self):
        """How the calls ended, and how many the daemons re-attached, found ended in their hangup
        record, or closed as lost after a fault."""
        outcomes, (lost,), by_node = self.reader.snapshot(
            "SELECT COALESCE(outcome, 'open'), COUNT(*) FROM attempt GROUP BY 1",
            "SELECT COUNT(*) FROM attempt WHERE hangup_cause = 'CALL_LOST'",
            "SELECT node, COUNT(*) FROM attempt GROUP BY 1",
        )
        for outcome, n in outcomes:
            self.journal.counts[f"outcome_{outcome}"] = n
        if len(self.daemons) > 1:
            for node, n in by_node:
                self.journal.counts[f"attempts_{node}"] = n
        self.journal.counts["call_lost"] = lost[0]
        logs = "".join(daemon.proc.read_log() for daemon in self.daemons)
        self.journal.counts["re_attached"] = logs.count("re-attached call")
        self.journal.counts["ended_while_away"] = logs.count("ended while the event socket was down")
        self.journal.counts["wall_steps_logged"] = logs.count("the wall clock stepped")
        self.journal.counts["db_pauses_logged"] = logs.count("dialing paused;")

    def _stop_all(self):
        if self.traffic is not None:
            self.traffic.stop()
        if self.stalls is not None:
            self.stalls.stop()
            self.journal.counts["stalls"] = len(self.stalls.stalls)
            self.journal.counts["stall_longest_ms"] = round(self.stalls.longest() * 1000)
        for daemon in self.daemons:
            daemon.proc.stop_quietly()
        for api in self.apis:
            api.stop()
        for sim in self.sims:
            sim.stop()
        if self.disk is not None:
            self._keep_database()
        if self.pg is not None:  # its log and its rows stay in the work directory
            shutil.copy(self.pg.dir / "server.log", self.workdir / "postgresql.log")
            try:
                self.pg.dump(self.reader.where, self.workdir / "autocall.sql")
            finally:
                self.pg.stop()

    def _keep_database(self):
        """Copy the database off its tmpfs into the work directory, then unmount it."""
        try:
            source = sqlite3.connect(self.disk.path / "autocall.sqlite3")
            kept = sqlite3.connect(self.workdir / "autocall.sqlite3")
            with source, kept:
                source.backup(kept)
            source.close()
            kept.close()
        finally:
            self.disk.unmount()


def _unfinished(reader) -> int:
    """Customers and attempts not finished, leaving out those put off until tomorrow (daily cap)."""
    return reader.rows(
        "SELECT (SELECT COUNT(*) FROM customer WHERE state = 'calling'"
        " OR (state = 'pending' AND next_call_at < ?))"
        " + (SELECT COUNT(*) FROM attempt WHERE state != 'done')",
        checks.tomorrow(),
    )[0][0]


def run(settings: Settings, workdir: Path) -> Result:
    """Run the campaign in `workdir` (logs and the database stay there)."""
    return Campaign(settings, Path(workdir)).run()


def summary(result: Result) -> str:
    lines = [
        f"rounds run: {result.rounds}; faults: {', '.join(result.faults)}",
        f"traffic: {', '.join(f'{k}={v}' for k, v in sorted(result.counts.items()))}",
        f"runtime: {result.seconds:.1f}s",
        f"results lost: {result.results_lost}",
        f"violations: {len(result.violations)}",
    ]
    lines += [f"  {v}" for v in result.violations]
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m tests.soak.campaign", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--round-seconds", type=float, default=Settings.round_seconds)
    parser.add_argument("--clients", type=int, default=Settings.clients)
    parser.add_argument(
        "--faults",
        help=f"comma-separated, from {', '.join(dict.fromkeys(FAULTS + PG_FAULTS + EXTRA_FAULTS))}"
        f" (default on sqlite: {','.join(FAULTS)}; on postgresql: {','.join(PG_FAULTS)})",
    )
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the store: an SQLite file, or a PostgreSQL server the campaign starts (default: %(default)s)",
    )
    parser.add_argument("--nodes", type=int, default=1, help="daemons, each on its own simulator (>1: postgresql)")
    parser.add_argument("--apis", type=int, default=1, help="API processes the clients share (default: %(default)s)")
    parser.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=Settings.heartbeat_timeout,
        help="the daemon's esl.heartbeat_timeout in real seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--daily-cap",
        type=int,
        default=Settings.daily_cap,
        help="the daemon's dialer.daily_cap, checked per id and per number (default: %(default)s)",
    )
    parser.add_argument("--workdir", help="keep logs and the database here (default: a fresh temp dir)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("simulator").setLevel(logging.WARNING)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="autocall-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work directory: {workdir}", flush=True)
    if args.nodes > 1 and args.backend != "postgresql":
        print("several nodes share one database: add --backend postgresql", file=sys.stderr)
        return 2
    default = PG_FAULTS if args.backend == "postgresql" else FAULTS
    faults = tuple(args.faults.split(",")) if args.faults else default
    unknown = set(faults) - set(default + EXTRA_FAULTS)
    if unknown:
        print(f"unknown faults on {args.backend}: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    settings = Settings(
        rounds=args.rounds,
        seed=args.seed,
        round_seconds=args.round_seconds,
        clients=args.clients,
        faults=faults,
        heartbeat_timeout=args.heartbeat_timeout,
        daily_cap=args.daily_cap,
        backend=args.backend,
        nodes=args.nodes,
        apis=args.apis,
    )
    result = run(settings, workdir)
    print(summary(result), flush=True)
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
