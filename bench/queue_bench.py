"""Next-customer claim latency with a big queue vs a small one (target: 1M / 10k <= 2).

    .venv/bin/python bench/queue_bench.py [--small 10000] [--large 1000000] [--claims 2000] [--batches 200]
        [--runs 5] [--database sqlite|postgresql]

Builds each database once (through daemon.store.customers.import_customers, the API's chunked import
path; --build raw uses sqlite3 executemany into the same schema instead), then times two
transactions on a `now` inside the calling window with every customer due:

* single: `Ledger.claim`, one customer per transaction (--claims of them per size);
* batch: `Ledger.claim_many(queue, CLAIM_BATCH)`, what the dialer runs: one transaction takes
  daemon.dialer.CLAIM_BATCH (32) customers (--batches of them per size).

With --database postgresql both databases are schemas of one PostgreSQL server the bench starts
(tests/pg_fixtures.py: durable, synchronous_commit on; fsync off).

Each run does 1/--runs of each on the small database, then on the large one (the order
alternates per run, so machine noise falls on both alike). Prints p50/p99 per run, size and
kind, then the medians over runs and the large/small ratios (target <= 2 for each).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from queued_db import build, machine

from daemon.dialer import CLAIM_BATCH
from daemon.ledger import Ledger
from daemon.store.schema import open_database
from tests.pg_fixtures import PgCluster, close

DAY = 86400.0


def time_claims(ledger, queue, count, now, batch):
    """Latencies in seconds of `count` claim transactions, each taking `batch` customers into calls."""
    latencies = []
    for _ in range(count):
        t0 = time.perf_counter()
        claims = ledger.claim_many(queue, batch, now=now, day_start=now - 3600, next_day=now + DAY, daily_cap=5)
        latencies.append(time.perf_counter() - t0)
        if len(claims) < batch:
            raise SystemExit("a claim found too few due: the queue ran dry, lower --claims or --batches")
    return latencies


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=2000, help="claims per size, over all runs")
    parser.add_argument(
        "--batches",
        type=int,
        default=200,
        help=f"claim_many transactions of {CLAIM_BATCH} customers per size, over all runs",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--build", choices=("import", "raw"), default="import")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="SQLite files, or a PostgreSQL server of the bench's own (durable; --build import only)",
    )
    args = parser.parse_args(argv)
    if args.database == "postgresql" and args.build != "import":
        parser.error("--build raw writes SQLite files only")
    print(machine())
    kinds = {
        "single": (1, args.claims // args.runs),
        f"batch of {CLAIM_BATCH}": (CLAIM_BATCH, args.batches // args.runs),
    }
    cluster = PgCluster(durable=True).start() if args.database == "postgresql" else None
    with tempfile.TemporaryDirectory(prefix="autocall-queue-bench-") as tmp:
        ledgers = {}
        for n in (args.small, args.large):
            path = cluster.fresh() if cluster else Path(tmp) / f"q{n}.sqlite3"
            seconds = build(path, n, method=args.build, concurrent_call=10_000)  # the claims, not the cap, are timed
            how = "import_customers, chunked" if args.build == "import" else "raw executemany"
            print(f"built {n:,} customers via {how} in {seconds:.1f} s")
            ledger = Ledger(open_database(path))
            ledgers[n] = (ledger, ledger.running_queues()[0])
        now = time.time() + 1  # every customer is due; the ledger does not look at the clock itself
        p50s = {(k, n): [] for k in kinds for n in ledgers}
        p99s = {(k, n): [] for k in kinds for n in ledgers}
        for run in range(args.runs):
            sizes = list(ledgers) if run % 2 == 0 else list(ledgers)[::-1]
            for kind, (batch, count) in kinds.items():
                for n in sizes:
                    lat = time_claims(*ledgers[n], count, now, batch)
                    p50s[kind, n].append(percentile(lat, 0.50))
                    p99s[kind, n].append(percentile(lat, 0.99))
                print(
                    f"  run {run + 1} {kind:>11}: "
                    + "   ".join(
                        f"{n:>9,}: p50 {p50s[kind, n][-1] * 1e6:6.0f} us p99 {p99s[kind, n][-1] * 1e6:6.0f} us"
                        for n in ledgers
                    )
                )
        for ledger, _ in ledgers.values():
            close(ledger.db)
    if cluster:
        cluster.stop()
    small, large = args.small, args.large
    for kind, (batch, count) in kinds.items():
        print(f"{kind}: median over {args.runs} runs of {count} transactions each:")
        for n in (small, large):
            p50, p99 = statistics.median(p50s[kind, n]), statistics.median(p99s[kind, n])
            print(
                f"  {n:>9,} customers: p50 {p50 * 1e6:.0f} us   p99 {p99 * 1e6:.0f} us   "
                f"(p50 per customer {p50 / batch * 1e6:.0f} us)"
            )
        ratio50 = statistics.median(p50s[kind, large]) / statistics.median(p50s[kind, small])
        ratio99 = statistics.median(p99s[kind, large]) / statistics.median(p99s[kind, small])
        print(
            f"  ratio {large:,} / {small:,}: p50 {ratio50:.2f}   p99 {ratio99:.2f}   (target <= 2: "
            f"{'met' if max(ratio50, ratio99) <= 2 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
