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

    python -m tests.soak.campaign --rounds 50

`run(settings, workdir)` is the library form (tests/test_fault_campaign.py runs a short one).
"""

if __name__ == "__main__":  # a program: patch before anything imports sockets or sqlite
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from tests.api_fixtures import TOKEN  # noqa: E402
from tests.daemon_fixtures import start_simulator, wait_until  # noqa: E402
from tests.db_faults import Tmpfs  # noqa: E402
from tests.soak import checks  # noqa: E402
from tests.soak.faults import Faults  # noqa: E402
from tests.soak.rig import ApiServer, Daemon, copy_templates, scenario  # noqa: E402
from tests.soak.traffic import Traffic  # noqa: E402
from tests.soak.wallclock import WallClock  # noqa: E402

log = logging.getLogger(__name__)

FAULTS = ("kill9", "drop", "silence", "restart", "db_lock", "db_lock_long", "disk_full", "clock_step", "template_edit")
DB_FAULTS = ("db_lock", "db_lock_long", "disk_full")  # the switch stays connected: no call may be lost
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
    faults: tuple = FAULTS  # the cycle each run of len(faults) rounds goes through


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
        self.sim = self.api = self.daemon = self.traffic = self.clock = None
        self._api_seen = 0
        self._reported = set()
        self.disk = None  # the tmpfs under the database, for disk_full
        self._lost_seen: frozenset = frozenset()  # attempts closed CALL_LOST by the last check
        self.faults = settings.faults
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
        self.sim = start_simulator(scenario(s.seed), s.time_scale)
        self.templates = copy_templates(self.workdir)
        self.clock = WallClock(self.workdir)
        self.daemon = Daemon(
            self.workdir,
            self.sim,
            self.templates,
            self.clock,
            self._db_path(),
            daily_cap=s.daily_cap,
            heartbeat_timeout=s.heartbeat_timeout,
            busy_timeout=s.busy_timeout,
        )
        self.api = ApiServer(self.workdir, self.daemon.db_path, self.templates, self.clock)
        queues = [f"SOAK-{i}" for i in range(1, s.queues + 1)]
        self.traffic = Traffic(
            self.api.url,
            TOKEN,
            self.daemon.db_path,
            queues,
            self.journal,
            self.sim.clock.now,
            rng=self.rng,
            clients=s.clients,
        )
        self.traffic.create_queues(self.rng)
        self.daemon.start(s.recovery)
        self.traffic.start()

    def _round(self, round_no: int, fault: str):
        s = self.settings
        before = s.round_seconds * self.rng.uniform(0.1, 0.6)
        gevent.sleep(before)
        log.info("round %d: %s", round_no, fault)
        self.journal.counts[f"fault_{fault}"] += 1
        self.journal.counts["calls_live_at_faults"] += len(self.sim.channels)
        getattr(self, f"_fault_{fault}")()
        gevent.sleep(max(0.0, s.round_seconds - before))
        self._check(round_no, fault)

    def _db_path(self) -> Path:
        """Where the database lives: on a tmpfs of its own when disk_full is in the cycle."""
        if "disk_full" not in self.faults:
            return self.workdir / "autocall.sqlite3"
        self.disk = Tmpfs(self.workdir / "disk", self.settings.disk_size)
        return self.disk.path / "autocall.sqlite3"

    # --- checks ---

    def _check(self, round_no: int, fault: str | None = None) -> checks.Snapshot:
        s = self.settings
        snap = checks.take_snapshot(self.sim, self.daemon.db_path, self.journal.restarts)
        found = checks.check(
            snap, self.journal, round_no, s.epsilon / s.time_scale, s.daily_cap, s.result_grace / s.time_scale
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
        db = self.daemon.db_path
        try:
            wait_until(lambda: _unfinished(db) == 0 and not self.sim.channels, self.settings.drain, 0.2)
        except AssertionError:
            log.error("the campaign did not drain within %.0fs", self.settings.drain)
        snap = self._check(round_no)
        self._count_outcomes(db)
        found = checks.check_drained(snap, round_no, len(self.sim.channels), self.settings.daily_cap)
        code = self.daemon.proc.terminate()  # SIGTERM with nothing left to drain: a clean exit
        if code != 0:
            found.append(checks.Violation(round_no, "stuck", f"the daemon exited {code} on SIGTERM"))
        self.violations += found
        for v in found:
            log.error("VIOLATION %s", v)

    def _count_outcomes(self, db_path):
        """How the calls ended, and how many the daemon re-attached, found ended in their hangup
        record, or closed as lost after a fault."""
        conn = sqlite3.connect(db_path, timeout=30)
        try:
            for outcome, n in conn.execute("SELECT COALESCE(outcome, 'open'), COUNT(*) FROM attempt GROUP BY 1"):
                self.journal.counts[f"outcome_{outcome}"] = n
            self.journal.counts["call_lost"] = conn.execute(
                "SELECT COUNT(*) FROM attempt WHERE hangup_cause = 'CALL_LOST'"
            ).fetchone()[0]
        finally:
            conn.close()
        daemon_log = self.daemon.proc.read_log()
        self.journal.counts["re_attached"] = daemon_log.count("re-attached call")
        self.journal.counts["ended_while_away"] = daemon_log.count("ended while the event socket was down")
        self.journal.counts["wall_steps_logged"] = daemon_log.count("the wall clock stepped")

    def _stop_all(self):
        if self.traffic is not None:
            self.traffic.stop()
        if self.daemon is not None:
            self.daemon.proc.stop_quietly()
        if self.api is not None:
            self.api.stop()
        if self.sim is not None:
            self.sim.stop()
        if self.disk is not None:
            self._keep_database()

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


def _unfinished(db_path) -> int:
    """Customers and attempts not finished, leaving out those put off until tomorrow (daily cap)."""
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return conn.execute(
            "SELECT (SELECT COUNT(*) FROM customer WHERE state = 'calling'"
            " OR (state = 'pending' AND next_call_at < ?))"
            " + (SELECT COUNT(*) FROM attempt WHERE state != 'done')",
            (checks.tomorrow(),),
        ).fetchone()[0]
    finally:
        conn.close()


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
        default=",".join(FAULTS),
        help=f"comma-separated, from {', '.join(FAULTS + EXTRA_FAULTS)} (default: %(default)s)",
    )
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
    faults = tuple(args.faults.split(","))
    unknown = set(faults) - set(FAULTS + EXTRA_FAULTS)
    if unknown:
        print(f"unknown faults: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    settings = Settings(
        rounds=args.rounds,
        seed=args.seed,
        round_seconds=args.round_seconds,
        clients=args.clients,
        faults=faults,
        heartbeat_timeout=args.heartbeat_timeout,
        daily_cap=args.daily_cap,
    )
    result = run(settings, workdir)
    print(summary(result), flush=True)
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
