"""Helpers shared by queue_bench.py and memory_bench.py: a database with N customers
queued, built once, and a line describing the machine the figures come from."""

import json
import os
import platform
import random
import sqlite3
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from daemon.config import QueueDefaults  # noqa: E402
from daemon.store.customers import import_customers  # noqa: E402
from daemon.store.records import ImportRequest, NewCustomer  # noqa: E402
from daemon.store.schema import open_database  # noqa: E402

QUEUE_CODE = "BENCH"
TEMPLATE = "IVR-1"


def machine():
    """One line: cores, CPU model, Python version."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"machine: nproc {os.cpu_count()}, {model}, Python {platform.python_version()}"


def customer(i, rng):
    """The i-th bench customer: two numbers and the fields IVR-1 reads aloud."""
    return NewCustomer(
        ext_id=f"KH{i:07d}",
        mobiles=[f"09{rng.randrange(10**8):08d}", f"03{rng.randrange(10**8):08d}"],
        fields={
            "contract_number": f"HD{rng.randrange(10**6):06d}",
            "upcoming_due_date": "2021-07-13",
            "upcoming_amount": rng.randrange(1, 500) * 10000,
            "due_date": "2021-07-13",
            "dpd": rng.randrange(0, 90),
            "number_of_ovd_inst": rng.randrange(0, 12),
            "total_ovd_amount": rng.randrange(0, 900) * 10000,
        },
    )


def build(path, n, *, method="import", concurrent_call=5, seed=42, batch=100_000, now=time.time):
    """Create the database at `path` with one running queue of `n` pending customers, all due
    now. `method` "import" goes through daemon.store.customers.import_customers (the API's path,
    chunked), "raw" through sqlite3 executemany into the same schema. Returns seconds taken."""
    rng = random.Random(seed)
    started = time.perf_counter()
    db = open_database(path)
    try:
        if method == "import":
            _build_by_import(db, n, rng, concurrent_call, batch, now)
        else:
            db.close()
            _build_raw(path, n, rng, concurrent_call, batch, now())
    finally:
        db.close()
    return time.perf_counter() - started


def _build_by_import(db, n, rng, concurrent_call, batch, now):
    defaults = QueueDefaults(concurrent_call=concurrent_call)
    # Batches of requests keep the bench's own memory flat; each is chunked inside as the API does.
    for start in range(0, n, batch):
        customers = [customer(i, rng) for i in range(start, min(n, start + batch))]
        result = import_customers(db, ImportRequest(QUEUE_CODE, TEMPLATE, {}, customers), defaults, now=now)
        if result.rejected:
            raise SystemExit(f"import rejected {len(result.rejected)} customers: {result.rejected[:3]}")


def _build_raw(path, n, rng, concurrent_call, batch, at):
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute(
            "INSERT INTO queue (code, template, concurrent_call, max_recall_count, min_recall_duration,"
            " state, created_at, updated_at) VALUES (?, ?, ?, 3, 3, 'running', ?, ?)",
            (QUEUE_CODE, TEMPLATE, concurrent_call, at, at),
        )
        queue_id = con.execute("SELECT last_insert_rowid()").fetchone()[0]
        for start in range(0, n, batch):
            rows = []
            for i in range(start, min(n, start + batch)):
                c = customer(i, rng)
                rows.append((queue_id, c.ext_id, json.dumps(c.mobiles), json.dumps(c.fields), at, at, at))
            con.executemany(
                "INSERT INTO customer (queue_id, ext_id, mobiles, fields, state, round, number_index,"
                " dead_numbers, next_call_at, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'pending', 0, 0, '[]', ?, ?, ?)",
                rows,
            )
        # New rows count themselves only through the import (daemon/store/counts.py).
        con.execute("DELETE FROM queue_count")
        con.execute(
            "INSERT INTO queue_count (queue_id, state, n) SELECT queue_id, state, COUNT(*) FROM customer GROUP BY 1, 2"
        )
        con.execute("COMMIT")
    finally:
        con.close()
