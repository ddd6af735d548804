"""Import benchmark: N customers in one POST /v2/autocall/queue to a real autocall-api
process, against a raw sqlite3 `executemany` of the same rows into the same tables; with
--database postgresql, into a PostgreSQL server of its own (tests/pg_fixtures.py, durable)
against a raw `COPY` of the same rows.

Prints the machine and its load, each run, then the medians and their ratio (target on SQLite:
API / raw <= 2). Runs alternate so that machine noise falls on both sides alike.

    .venv/bin/python bench/import_bench.py [--customers 100000] [--runs 5] [--database sqlite|postgresql]
"""

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_rig import TOKEN, free_port, start_api  # noqa: E402
from queued_db import machine  # noqa: E402

from daemon.store import url  # noqa: E402
from daemon.store.schema import open_database  # noqa: E402
from tests.pg_fixtures import PgCluster, close  # noqa: E402


def make_customers(n, rng):
    return [
        {
            "id": f"KH{i:07d}",
            "mobiles": [f"09{rng.randrange(10**8):08d}", f"03{rng.randrange(10**8):08d}"],
            "contract_number": f"HD{rng.randrange(10**6):06d}",
            "upcoming_due_date": "2021-07-13",
            "upcoming_amount": rng.randrange(1, 500) * 10000,
            "due_date": "2021-07-13",
            "dpd": rng.randrange(0, 90),
            "number_of_ovd_inst": rng.randrange(0, 12),
            "total_ovd_amount": rng.randrange(0, 900) * 10000,
        }
        for i in range(n)
    ]


def via_api(body: bytes, workdir: Path, location=None) -> float:
    """Seconds for the POST; into `location` (a PostgreSQL DatabaseUrl) or an SQLite file."""
    port = free_port()
    if location is None:
        proc = start_api(workdir / "api.sqlite3", port)
    else:
        proc = start_api(location.dsn, port, **{url.PASSWORD_ENV: location.password})
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/autocall/queue",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        t0 = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            reply = json.loads(response.read())
        elapsed = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if reply["data"]["fail"]:
        raise SystemExit(f"the API rejected {len(reply['data']['fail'])} customers")
    return elapsed


def raw_rows(customers) -> list[tuple]:
    """The customer rows of queue 1 as the import writes them, made before any clock starts."""
    known = ("id", "mobiles")
    return [
        (
            1,
            c["id"],
            json.dumps(c["mobiles"]),
            json.dumps({k: v for k, v in c.items() if k not in known}),
            0.0,
            0.0,
            0.0,
        )
        for c in customers
    ]


QUEUE_ROW = (
    "INSERT INTO queue (code, template, concurrent_call, max_recall_count, min_recall_duration,"
    " state, created_at, updated_at) VALUES ('Q', 'IVR-1', 5, 3, 3, 'running', 0, 0)"
)


def via_raw_copy(customers, location) -> float:
    """The same rows by one `COPY` into the same schema (its indexes and triggers) on PostgreSQL."""
    import psycopg

    close(open_database(location))  # the same schema and indexes
    rows = raw_rows(customers)
    with psycopg.connect(location.dsn, password=location.password) as conn:
        t0 = time.perf_counter()
        conn.execute(QUEUE_ROW)
        with conn.cursor().copy(
            "COPY customer (queue_id, ext_id, mobiles, fields, next_call_at, created_at, updated_at,"
            " state, round, number_index, dead_numbers) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row((*row, "pending", 0, 0, "[]"))
        conn.commit()
        return time.perf_counter() - t0


def via_raw_sqlite(customers, workdir: Path) -> float:
    path = workdir / "raw.sqlite3"
    open_database(path).close()  # the same schema and indexes
    rows = raw_rows(customers)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=normal")
    t0 = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    db.execute(QUEUE_ROW)
    db.executemany(
        "INSERT INTO customer (queue_id, ext_id, mobiles, fields, state, round, number_index, dead_numbers,"
        " next_call_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, 0, '[]', ?, ?, ?)",
        rows,
    )
    db.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    if args.database == "postgresql":
        return main_postgresql(args)
    customers = make_customers(args.customers, random.Random(42))
    body = json.dumps({"queue_code": "BENCH", "template": "IVR-1", "customers": customers}).encode()
    print(
        f"import of {args.customers:,} customers ({len(body) / 1e6:.1f} MB body), {args.runs} runs, "
        f"{os.cpu_count()} cores"
    )
    print(f"{machine()}; load average {os.getloadavg()[0]:.2f} at the start")
    api_times, raw_times = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            api_times.append(via_api(body, Path(tmp)))
            raw_times.append(via_raw_sqlite(customers, Path(tmp)))
        print(f"  run {run + 1}: api {api_times[-1]:.3f} s   raw executemany {raw_times[-1]:.3f} s")
    api, raw = statistics.median(api_times), statistics.median(raw_times)
    print(
        f"median: api {api:.3f} s ({args.customers / api:,.0f} customers/s)   raw {raw:.3f} s   "
        f"ratio {api / raw:.2f} (target <= 2)"
    )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def main_postgresql(args):
    customers = make_customers(args.customers, random.Random(42))
    body = json.dumps({"queue_code": "BENCH", "template": "IVR-1", "customers": customers}).encode()
    print(f"import of {args.customers:,} customers into PostgreSQL, {args.runs} runs")
    print(f"{machine()}; load average {os.getloadavg()[0]:.2f} at the start")
    cluster = PgCluster(durable=True).start()
    api_times, raw_times = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):
                location = cluster.fresh()
                api_times.append(via_api(body, Path(tmp), location))
                cluster.end_connections(location)
                raw_times.append(via_raw_copy(customers, cluster.fresh()))
                print(f"  run {run + 1}: api {api_times[-1]:.3f} s   raw COPY {raw_times[-1]:.3f} s", flush=True)
    finally:
        cluster.stop()
    api, raw = statistics.median(api_times), statistics.median(raw_times)
    print(
        f"median: api {api:.3f} s ({args.customers / api:,.0f} customers/s)   raw COPY {raw:.3f} s   "
        f"ratio {api / raw:.2f} (reported; the target of 2 is the SQLite one's)"
    )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
