"""Claims per second of N daemons on one PostgreSQL, each with its own simulator (target: N=4 >= 3x N=1).

    .venv/bin/python bench/nodes_bench.py [--nodes 1,2,4] [--customers 6000] [--runs 3]

Starts one PostgreSQL server of its own (tests/pg_fixtures.py: durable, synchronous_commit on,
as production must run; fsync off, as on any throw-away server). Each run measures every N once,
the order alternating from run to run: a fresh schema with one stopped queue of --customers
customers (concurrent_call above them all, no recall), N `autocall-simulator` processes whose
callees are all busy (the call ends at once: the claim, not the call, is timed), N
`autocall-daemon` processes (nodes pbx1..pbxN, cps and channel_limit far above what they reach),
then the queue is started and every customer is claimed.

The rate is claims (attempts started) per second between the 10th and 90th percentile of
`attempt.started_at`, summed over the nodes; the CPU line is the daemons' CPU seconds (all of
them) per claim. Prints each run, the medians, and the ratio of each N to N=1.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import call_rig as rig

from daemon.store import queue_state, url
from daemon.store.schema import execute, open_database
from tests.pg_fixtures import PgCluster, close

BUSY = '[default]\noutcome = "busy"\n'


def one(cluster: PgCluster, tmp: Path, nodes: int, customers: int, templates: Path, sounds: Path) -> dict:
    location = cluster.fresh()
    rig.build_queue(location, customers, concurrent_call=customers + 1)
    env = {"AUTOCALL_DB": location.dsn, url.PASSWORD_ENV: location.password}
    scenario = tmp / "busy.toml"
    scenario.write_text(BUSY)
    sims, daemons = [], []
    try:
        for i in range(nodes):
            sim, port = rig.start_simulator(scenario, 1.0, sounds)
            sims.append(sim)
            daemon = rig.Daemon(
                tmp / f"n{nodes}-{i}-{time.monotonic_ns()}",
                port,
                templates,
                sounds,
                cps=100_000,
                channel_limit=10_000,
                env=env,
                node=f"pbx{i + 1}",
            )
            daemons.append(daemon.start())
        db = open_database(location)
        try:
            cpu0 = sum(rig.cpu_seconds(d.proc.pid) for d in daemons)
            queue_state.set_running(db, rig.QUEUE, True)

            def claimed() -> int:
                return execute(db, "SELECT COUNT(*) FROM attempt").fetchone()[0]

            rig.wait_for(lambda: claimed() >= customers, 600, "every customer claimed", interval=0.2)
            cpu = sum(rig.cpu_seconds(d.proc.pid) for d in daemons) - cpu0
            started = [t for (t,) in execute(db, "SELECT started_at FROM attempt")]
            by_node = dict(execute(db, "SELECT node, COUNT(*) FROM attempt GROUP BY node").fetchall())
        finally:
            close(db)
    finally:
        for daemon in daemons:
            daemon.stop()
        for sim in sims:
            rig.stop(sim)
        cluster.end_connections(location)
    return {"rate": rig.steady_rate(started), "cpu_per_claim": cpu / customers, "by_node": by_node}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="1,2,4", help="the N to measure, comma-separated (default: %(default)s)")
    parser.add_argument("--customers", type=int, default=6000, help="customers claimed per N per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.nodes.split(",")]
    print(rig.machine())
    rates = {n: [] for n in counts}
    cpus = {n: [] for n in counts}
    cluster = PgCluster(durable=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="autocall-nodes-bench-") as tmp:
            templates, sounds = rig.make_template(Path(tmp), 0.5, 1.0)
            for run in range(args.runs):
                for n in counts if run % 2 == 0 else counts[::-1]:
                    got = one(cluster, Path(tmp), n, args.customers, templates, sounds)
                    rates[n].append(got["rate"])
                    cpus[n].append(got["cpu_per_claim"])
                    spread = ", ".join(f"{node} {k}" for node, k in sorted(got["by_node"].items()))
                    print(
                        f"  run {run + 1} N={n}: {got['rate']:7.0f} claims/s   daemons' CPU"
                        f" {got['cpu_per_claim'] * 1e3:.2f} ms per claim   ({spread})",
                        flush=True,
                    )
    finally:
        cluster.stop()
    base = statistics.median(rates[counts[0]])
    print(f"median over {args.runs} runs of {args.customers:,} claims each:")
    for n in counts:
        rate = statistics.median(rates[n])
        print(
            f"  N={n}: {rate:7.0f} claims/s   x{rate / base:.2f} of N={counts[0]}"
            f"   daemons' CPU {statistics.median(cpus[n]) * 1e3:.2f} ms per claim"
        )
    if 1 in counts and 4 in counts:
        ratio = statistics.median(rates[4]) / statistics.median(rates[1])
        print(f"  N=4 / N=1: {ratio:.2f} (target >= 3: {rig.met(ratio >= 3)})")


if __name__ == "__main__":
    main()
