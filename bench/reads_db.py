"""The big database reads_bench.py reads: N customers and about 3 calls each, built once and
kept (a few GB for 10 million) in a cache directory it names, for the next invocation.

Three queues: BIG holds nearly every customer (3 calls each; states mixed, so `?state=`
has pages to walk: a fifth each success and failed, the rest pending), CSV_LARGE holds the
customers of the large export (--csv-rows calls, 4 per customer) and CSV_SMALL those of the
10,000-call export. Built fast and honestly: the schema is the product's own (open_database,
every index and trigger), the rows go in by raw sqlite3 executemany in big transactions with
the indexes and triggers dropped, then every index and trigger is made again from its own
DDL (read back from sqlite_master) and the counts are refilled from the rows
(daemon.store.counts.refill). Not analysed: the product never runs ANALYZE on SQLite.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

from queued_db import REPO  # noqa: F401 - puts the repository on sys.path

from daemon.store import counts
from daemon.store.schema import SCHEMA_VERSION, open_database

BIG, CSV_LARGE, CSV_SMALL = "BIG", "CSV_LARGE", "CSV_SMALL"
SMALL_ROWS = 10_000
CALLS_PER_CUSTOMER = {BIG: 3, CSV_LARGE: 4, CSV_SMALL: 4}
CACHE = Path(os.environ.get("AUTOCALL_BENCH_CACHE", "/tmp/autocall-reads-bench"))
BATCH = 500_000
T0 = 1_760_000_000.0
_FIELDS = (
    '{"contract_number":"HD%06d","upcoming_due_date":"2021-07-13","upcoming_amount":%d0000,'
    '"due_date":"2021-07-13","dpd":%d,"number_of_ovd_inst":6,"total_ovd_amount":3211100}'
)


def plan(customers: int, csv_rows: int) -> dict[str, int]:
    """Customers per queue."""
    large = csv_rows // CALLS_PER_CUSTOMER[CSV_LARGE]
    small = SMALL_ROWS // CALLS_PER_CUSTOMER[CSV_SMALL]
    if customers <= large + small:
        raise SystemExit(f"--customers must be more than the exports' {large + small:,} customers")
    return {BIG: customers - large - small, CSV_LARGE: large, CSV_SMALL: small}


def cached(customers: int, csv_rows: int, *, rebuild: bool = False, log=print) -> Path:
    """The database for these sizes, built now if the cache has none (or `rebuild`)."""
    path = CACHE / f"reads-{customers}-{csv_rows}-schema{SCHEMA_VERSION}.sqlite3"
    if path.exists() and not rebuild:
        log(f"database: {path} (cached; --rebuild to build it again)")
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    need = customers * 1500  # bytes, measured: ~1.3 kB per customer with its 3 calls and indexes
    free = shutil.disk_usage(CACHE).free
    if free < need * 1.2:
        raise SystemExit(f"{CACHE} has {free / 1e9:.1f} GB free; the database needs about {need / 1e9:.1f} GB")
    partial = path.with_suffix(".partial")
    for leftover in CACHE.glob(f"{partial.name}*"):
        leftover.unlink()
    log(f"building {path}: {customers:,} customers, about {customers * 3:,} calls (needs ~{need / 1e9:.0f} GB)")
    started = time.perf_counter()
    build(partial, plan(customers, csv_rows), log=log)
    partial.rename(path)
    log(f"built in {time.perf_counter() - started:.0f} s, {path.stat().st_size / 1e9:.1f} GB")
    return path


def build(path: Path, sizes: dict[str, int], *, log=print):
    open_database(path).close()  # the product's schema, current version
    con = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -1000000", "temp_store = FILE"):
            con.execute(f"PRAGMA {pragma}")
        ddl = con.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL"
        ).fetchall()
        for kind, name, _ in ddl:
            con.execute(f"DROP {kind.upper()} {name}")
        first_customer = 1
        for code, n in sizes.items():
            t = time.perf_counter()
            _queue(con, code, n, first_customer)
            calls = n * CALLS_PER_CUSTOMER[code]
            log(f"  {code}: {n:,} customers and {calls:,} calls in {time.perf_counter() - t:.0f} s")
            first_customer += n
        t = time.perf_counter()
        for _, _, sql in ddl:
            con.execute(sql)
        con.execute("BEGIN")
        counts.refill(_Peewee(con))
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode = WAL")
        log(f"  indexes, triggers and counts in {time.perf_counter() - t:.0f} s")
    finally:
        con.close()


class _Peewee:
    """Just enough of a peewee database for counts.refill on a raw sqlite3 connection."""

    def __init__(self, con):
        self.execute_sql = con.execute


def _queue(con, code: str, n: int, first: int):
    con.execute(
        "INSERT INTO queue (code, template, concurrent_call, max_recall_count, min_recall_duration,"
        " state, created_at, updated_at) VALUES (?, 'IVR-1', 5, 3, 3, 'running', ?, ?)",
        (code, T0, T0),
    )
    queue_id = con.execute("SELECT id FROM queue WHERE code = ?", (code,)).fetchone()[0]
    calls = CALLS_PER_CUSTOMER[code]
    for start in range(0, n, BATCH):
        ids = range(first + start, first + min(n, start + BATCH))
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO customer (id, queue_id, ext_id, mobiles, fields, state, round, number_index,"
            " dead_numbers, next_call_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, '[]', ?, ?, ?)",
            (_customer(i, queue_id) for i in ids),
        )
        con.executemany(
            "INSERT INTO attempt (customer_id, queue_id, round, number, uuid, job_uuid, state, started_at,"
            " answered_at, ended_at, hangup_cause, sip_status, talk_seconds, keys, outcome, result)"
            " VALUES (?, ?, ?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_attempt(i, k, queue_id) for k in range(calls) for i in ids),
        )
        con.execute("COMMIT")


_STATES = ("pending", "success", "pending", "failed", "pending")


def _customer(i: int, queue_id: int) -> tuple:
    return (
        i,
        queue_id,
        f"KH{i:09d}",
        f'["09{i % 10**8:08d}","03{(i * 7) % 10**8:08d}"]',
        _FIELDS % (i % 10**6, i % 500 + 1, i % 90),
        _STATES[i % 5],
        i % 3,
        T0 + i % 86400,
        T0,
        T0,
    )


def _attempt(i: int, k: int, queue_id: int) -> tuple:
    started = T0 + i * 0.01 + k * 3600
    answered = k == 2
    return (
        i,
        queue_id,
        k,
        f"09{i % 10**8:08d}" if k % 2 == 0 else f"03{(i * 7) % 10**8:08d}",
        f"{i:08x}-{k:04x}-4000-8000-000000000000",
        f"{i:08x}-{k:04x}-4000-8000-00000000j0b0",
        started,
        started + 4 if answered else None,
        started + 30,
        "NORMAL_CLEARING" if answered else "NO_ANSWER",
        "200" if answered else "480",
        25.0 if answered else None,
        "9" if answered else "",
        "success" if answered else "retry",
        "promise_to_pay" if answered else None,
    )
