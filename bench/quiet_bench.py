"""What the daemon costs when there is little to do: idle queues, and calls at a real-life rate.

    .venv/bin/python bench/quiet_bench.py [--runs 3] [--queues 3000] [--seconds 20] [--slow-calls 300]
    .venv/bin/python bench/quiet_bench.py --database postgresql [--runs 3] [--queues 3000]

Each run measures these phases once, in an order that alternates from run to run, every
process real (`autocall-simulator`, `autocall-daemon`) on loopback in a temp directory:

* idle: --queues running queues, each with one customer who is not due for a day; the daemon's
  CPU (utime+stime, all threads, /proc) over --seconds after it connected and settled, as % of
  one core. Target: <= 2%.
* empty: the same with no queue at all (the floor: heartbeats, the node's own timers).
* full: 3,000 calls at full rate (cps 100,000, 500 in flight, time scale 0.1: what
  throughput_bench.py runs); daemon CPU ms per call.
* slow: --slow-calls calls at cps 10 with concurrent_call 30, time scale 1 (each call about
  3 s: a 0.5 s prompt, the menu, key 1 at 2.5 s); daemon CPU ms per call.
* bare full, bare slow: the same two rates driven by `bench/bare_client.py` (originate, answer,
  uuid_kill; no database, no IVR), held 2.5 s at 10 cps: the yardstick, what this machine
  charges any gevent ESL client per call at a low rate compared with a saturated one.
* wake: `bench/wake_cost.py`, the CPU one wake-up from idle costs a process here.

For each call phase it also counts the process's wake-ups per call (voluntary context switches
of all its threads). At a low rate nearly every event is a wake-up of its own, so wake-ups per
call times the cost of one is the floor of the CPU per call, before any work is done.

With --database postgresql only the idle and empty phases run, the daemon's store a fresh schema
of a PostgreSQL server of the bench's own (tests/pg_fixtures.py) for each.

Prints each run, then the medians, the slow/full cost ratio (target <= 2) beside the bare
client's, the wake-ups and that floor, and the idle CPU.
"""

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import call_rig as rig

from daemon.store import customers, records, url
from daemon.store.schema import execute, open_database
from tests.pg_fixtures import PgCluster, close

SETTLE = 3.0  # seconds after the daemon connected before the idle CPU is measured


def idle_phase(
    tmp: Path, queues: int, seconds: float, profile: Path | None = None, cluster: PgCluster | None = None
) -> tuple[float, float | None]:
    """The daemon's CPU as % of a core over `seconds` with `queues` running queues, none due, its
    store the SQLite file in `tmp` or a fresh schema of `cluster`; and then the server's CPU."""
    location = cluster.fresh() if cluster else None
    templates, sounds = rig.make_template(tmp, 0.5, 1.0)
    scenario = rig.write_scenario(tmp / "scenario.toml", 1.0)
    sim, port = rig.start_simulator(scenario, 1.0, sounds, log_path=tmp / "sim.log")
    env = {"AUTOCALL_DB": location.dsn, url.PASSWORD_ENV: location.password} if location else None
    daemon = rig.Daemon(tmp / "daemon", port, templates, sounds, cps=10, channel_limit=30, env=env)
    where = location or daemon.db_path
    try:
        _idle_queues(where, queues)
        daemon.start()
        time.sleep(SETTLE)
        spy = rig.profile(daemon.proc.pid, profile) if profile else None
        s0 = _server_cpu(cluster) if cluster else 0.0
        c0, t0 = rig.cpu_seconds(daemon.proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = rig.cpu_seconds(daemon.proc.pid), time.monotonic()
        s1 = _server_cpu(cluster) if cluster else 0.0
        if spy:
            rig.end_profile(spy)
        started = _attempts(where)
        if started:
            raise SystemExit(f"idle phase: the daemon started {started} calls; nobody was due")
    finally:
        daemon.stop()
        rig.stop(sim)
        if location:
            cluster.end_connections(location)
    return 100 * (c1 - c0) / (t1 - t0), 100 * (s1 - s0) / (t1 - t0) if cluster else None


def _server_cpu(cluster: PgCluster) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster and every process it runs now."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    total = 0.0
    for pid in [postmaster, *map(int, children)]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += rig.cpu_seconds(pid)
    return total


def _idle_queues(where, count: int):
    """`count` running queues of one customer each, on the bench template, due in a day."""
    db = open_database(where)
    try:
        for i in range(count):
            request = records.ImportRequest(
                f"IDLE{i:05d}",
                rig.TEMPLATE,
                {"concurrent_call": 5},
                [records.NewCustomer(f"KH{i:07d}", [f"09{i:08d}"], {})],
            )
            customers.import_customers(db, request, rig.QueueDefaults())
        execute(db, "UPDATE customer SET next_call_at = ?", (time.time() + 86400,))
    finally:
        close(db)


def _attempts(where) -> int:
    db = open_database(where)
    try:
        return execute(db, "SELECT COUNT(*) FROM attempt").fetchone()[0]
    finally:
        close(db)


def calls_phase(
    tmp: Path, calls: int, *, cps: float, in_flight: int, time_scale: float, key_at: float, profile: Path | None = None
) -> dict:
    """`calls` calls through the bench template; the daemon's CPU ms per call and the rate."""
    templates, sounds = rig.make_template(tmp, 0.5, 10.0)
    scenario = rig.write_scenario(tmp / "scenario.toml", key_at)
    sim, port = rig.start_simulator(scenario, time_scale, sounds, log_path=tmp / "sim.log")
    daemon = rig.Daemon(tmp / "daemon", port, templates, sounds, cps=cps, channel_limit=in_flight)
    try:
        rig.build_queue(daemon.db_path, calls, in_flight)
        daemon.start()
        spy = rig.profile(daemon.proc.pid, profile) if profile else None
        c0, t0, w0 = rig.cpu_seconds(daemon.proc.pid), time.monotonic(), rig.wakeups(daemon.proc.pid)
        m0 = rig.wakeups(daemon.proc.pid, main_only=True)
        rig.set_running(daemon.db_path, True)
        rig.wait_for(
            lambda: rig.query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state = 'done'")[0][0] >= calls,
            calls / min(cps, 100) * 3 + 120,
            f"{calls} calls done",
            interval=0.2,
        )
        c1, wall, w1 = rig.cpu_seconds(daemon.proc.pid), time.monotonic() - t0, rig.wakeups(daemon.proc.pid)
        m1 = rig.wakeups(daemon.proc.pid, main_only=True)
        if spy:
            rig.end_profile(spy)
    finally:
        daemon.stop()
        rig.stop(sim)
    rows = rig.query(daemon.db_path, "SELECT ended_at, result FROM attempt")
    return {
        "ms": 1000 * (c1 - c0) / len(rows),
        "wakeups": (w1 - w0) / len(rows),
        "main_wakeups": (m1 - m0) / len(rows),  # the gevent loop's; the rest are the ledger thread's
        "rate": rig.steady_rate([r[0] for r in rows]),
        "pressed": sum(r[1] == "pressed_one" for r in rows),
        "calls": len(rows),
        "cpu_pct": 100 * (c1 - c0) / wall,
    }


def bare_phase(tmp: Path, calls: int, *, cps: float, in_flight: int, time_scale: float, hold: float) -> dict:
    """CPU ms and wake-ups per call of the bare client making `calls` calls."""
    _, sounds = rig.make_template(tmp, 0.5, 10.0)
    scenario = tmp / "bare.toml"
    scenario.write_text('[default]\nanswer_after = 0.0\nhangup_after = "never"\n')
    sim, port = rig.start_simulator(scenario, time_scale, sounds, log_path=tmp / "sim.log")
    try:
        command = [sys.executable, str(Path(__file__).with_name("bare_client.py")), "--port", str(port)]
        command += ["--calls", str(calls), "--concurrency", str(in_flight), "--cps", str(cps), "--hold", str(hold)]
        out = subprocess.run(command, cwd=rig.REPO, capture_output=True, text=True, timeout=calls / cps * 3 + 120)
    finally:
        rig.stop(sim)
    if out.returncode != 0:
        raise SystemExit("bare client failed:\n" + out.stderr[-2000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "ms": 1000 * result["run_cpu"] / result["completed"],
        "wakeups": result["run_wakeups"] / result["completed"],
    }


def wake_phase() -> dict:
    """CPU µs per wake-up from idle of a fresh process (bench/wake_cost.py)."""
    command = [sys.executable, str(Path(__file__).with_name("wake_cost.py"))]
    out = subprocess.run(command, cwd=rig.REPO, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


PHASES = ["idle", "empty", "full", "slow", "bare_full", "bare_slow", "wake"]


def one_run(run: int, args) -> dict:
    order = PHASES if run % 2 == 0 else PHASES[::-1]
    out = {}
    for phase in order:
        profile = args.profile / f"run{run + 1}-{phase}" if args.profile else None
        with tempfile.TemporaryDirectory(prefix=f"autocall-quiet-{phase}-") as tmp:
            tmp = Path(tmp)
            if phase == "wake":
                out[phase] = wake_phase()
            elif phase in ("idle", "empty"):
                out[phase] = idle_phase(tmp, args.queues if phase == "idle" else 0, args.seconds, profile)[0]
            elif phase == "bare_full":
                out[phase] = bare_phase(tmp, 3000, cps=100_000, in_flight=500, time_scale=0.1, hold=0.0)
            elif phase == "bare_slow":
                out[phase] = bare_phase(tmp, args.slow_calls, cps=10, in_flight=30, time_scale=1.0, hold=2.5)
            elif phase == "full":
                out[phase] = calls_phase(
                    tmp, 3000, cps=100_000, in_flight=500, time_scale=0.1, key_at=2.0, profile=profile
                )
            else:
                out[phase] = calls_phase(
                    tmp, args.slow_calls, cps=10, in_flight=30, time_scale=1.0, key_at=2.5, profile=profile
                )
    f, s, bf, bs, wake = out["full"], out["slow"], out["bare_full"], out["bare_slow"], out["wake"]
    print(
        f"run {run + 1}: idle {args.queues} queues {out['idle']:.2f}% of a core, no queue {out['empty']:.2f}%; "
        f"full rate {f['rate']:.0f} calls/s {f['ms']:.3f} ms/call ({f['pressed']}/{f['calls']} pressed 1); "
        f"10 cps {s['rate']:.1f} calls/s {s['ms']:.3f} ms/call ({s['pressed']}/{s['calls']} pressed 1, "
        f"{s['cpu_pct']:.1f}% of a core); ratio {s['ms'] / f['ms']:.2f}; bare client {bf['ms']:.3f} vs "
        f"{bs['ms']:.3f} ms/call, ratio {bs['ms'] / bf['ms']:.2f}; wake-ups per call: daemon "
        f"{f['wakeups']:.1f} vs {s['wakeups']:.1f}, bare client {bf['wakeups']:.1f} vs {bs['wakeups']:.1f}; "
        f"one wake-up {wake['epoll']:.0f} us (epoll), {wake['gevent']:.0f} us (gevent), "
        f"+{wake['thread_trip']:.0f} us (a thread trip)",
        flush=True,
    )
    return {
        "idle": out["idle"],
        "empty": out["empty"],
        "full_ms": f["ms"],
        "slow_ms": s["ms"],
        "ratio": s["ms"] / f["ms"],
        "bare_full_ms": bf["ms"],
        "bare_slow_ms": bs["ms"],
        "bare_ratio": bs["ms"] / bf["ms"],
        "full_wakeups": f["wakeups"],
        "slow_wakeups": s["wakeups"],
        "slow_main_wakeups": s["main_wakeups"],
        "bare_slow_wakeups": bs["wakeups"],
        "wake_epoll_us": wake["epoll"],
        "wake_gevent_us": wake["gevent"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queues", type=int, default=3000, help="running queues in the idle phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each idle measurement")
    parser.add_argument("--slow-calls", type=int, default=300, help="calls of the 10 cps phase")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy the daemon in every phase (figures of such a run are not comparable); "
        "collapsed stacks in DIR/runN-PHASE.txt",
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the daemon's store; postgresql runs only the idle and empty phases",
    )
    args = parser.parse_args(argv)
    print(rig.machine())
    if args.database == "postgresql":
        return main_postgresql(args)
    runs = [one_run(i, args) for i in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(
        f"median: idle {args.queues} queues {med['idle']:.2f}% of a core (target <= 2%: "
        f"{rig.met(med['idle'] <= 2)}), no queue {med['empty']:.2f}%; CPU per call at 10 cps "
        f"{med['slow_ms']:.3f} ms vs full rate {med['full_ms']:.3f} ms, ratio {med['ratio']:.2f} "
        f"(target <= 2: {rig.met(med['ratio'] <= 2)}); bare client {med['bare_slow_ms']:.3f} vs "
        f"{med['bare_full_ms']:.3f} ms, ratio {med['bare_ratio']:.2f}"
    )
    floor = med["slow_wakeups"] * med["wake_epoll_us"] / 1000
    print(
        f"median wake-ups per call: daemon {med['slow_wakeups']:.1f} at 10 cps (the loop's thread "
        f"{med['slow_main_wakeups']:.1f}, the ledger thread the rest) vs {med['full_wakeups']:.1f} at full "
        f"rate, bare client {med['bare_slow_wakeups']:.1f} at 10 cps; one wake-up from idle costs "
        f"{med['wake_epoll_us']:.0f} us here (a bare epoll; {med['wake_gevent_us']:.0f} us through gevent), so the "
        f"daemon's wake-ups alone cost {floor:.3f} ms per call at 10 cps, {floor / med['full_ms']:.2f}x its CPU per "
        f"call at full rate"
    )


def main_postgresql(args):
    """The idle and empty phases against PostgreSQL, alternating, a fresh schema for each; the
    server's CPU beside the daemon's (the queues' reads run there)."""
    cluster = PgCluster().start()
    out: dict[str, list] = {"idle": [], "empty": []}
    try:
        for run in range(args.runs):
            for phase in ("idle", "empty") if run % 2 == 0 else ("empty", "idle"):
                with tempfile.TemporaryDirectory(prefix=f"autocall-quiet-pg-{phase}-") as tmp:
                    count = args.queues if phase == "idle" else 0
                    out[phase].append(idle_phase(Path(tmp), count, args.seconds, cluster=cluster))
            (idle, idle_server), (empty, empty_server) = out["idle"][-1], out["empty"][-1]
            print(
                f"run {run + 1}: idle {args.queues} queues {idle:.2f}% of a core (server {idle_server:.2f}%), "
                f"no queue {empty:.2f}% (server {empty_server:.2f}%)",
                flush=True,
            )
    finally:
        cluster.stop()
    idle, idle_server = (statistics.median(x) for x in zip(*out["idle"], strict=True))
    empty, empty_server = (statistics.median(x) for x in zip(*out["empty"], strict=True))
    print(
        f"median on PostgreSQL: idle {args.queues} queues {idle:.2f}% of a core (target <= 2%: {rig.met(idle <= 2)}; "
        f"the server {idle_server:.2f}%), no queue {empty:.2f}% (the server {empty_server:.2f}%)"
    )


if __name__ == "__main__":
    main()
