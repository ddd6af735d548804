"""Reads at scale (issue 14): a real `autocall-api` over a database of 10 million customers and
30 million calls (bench/reads_db.py builds it once and keeps it in its cache directory).

Side by side in one invocation, runs alternating:
- `GET /queue/BIG/customers`: the first page and the last page, the last reached by the
  cursor (`after`, keyset) and by `page=` (read from the nearer end); target last/first <= 2;
- the same with `?state=failed` (a fifth of the queue); target last/first <= 2;
- `GET /queue/BIG` (counts per state of 10 million customers): target p50 <= 50 ms;
- `attempts.csv` of 1,000,000 calls vs of 10,000, each in a fresh API process: peak VmRSS
  (sampled every 20 ms), target 1M/10k <= 1.2; and `/queue/stop` sent every 0.25 s during
  the large export: target answered within 100 ms (the slowest one).
Before them, once, the SQL the API ran before issue 14 (COUNT(*) per state, OFFSET to the last
page) straight on the database, for comparison. Prints each run, the medians, the ratios and
the machine line. `--customers 300000 --csv-rows 100000` makes a quick run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import sqlite3
import statistics
import threading
import time

import reads_db
from api_rig import TOKEN, free_port, start_api
from queued_db import machine

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PER_PAGE = 100
BASE = "/v2/autocall/queue"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--csv-rows", type=int, default=1_000_000, help="calls in the large export")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="requests of each kind per run")
    parser.add_argument("--rebuild", action="store_true", help="build the database again")
    args = parser.parse_args()
    print(machine())
    path = reads_db.cached(args.customers, args.csv_rows, rebuild=args.rebuild)
    kinds = page_kinds(path)
    before(path)
    figures: dict[str, list[float]] = {}
    for run in range(args.runs):
        line = reads_run(path, kinds, args.requests) | export_run(path)
        for name, value in line.items():
            figures.setdefault(name, []).append(value)
        print(f"  run {run + 1}: " + "  ".join(f"{name} {value:.2f}" for name, value in line.items()))
    report({name: statistics.median(values) for name, values in figures.items()}, figures)


def page_kinds(path) -> dict[str, str]:
    """The request of each kind of page read: query strings of BIG's customers, and the counts."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (queue_id,) = con.execute("SELECT id FROM queue WHERE code = ?", (reads_db.BIG,)).fetchone()
        kinds = {"counts": f"{BASE}/{reads_db.BIG}"}
        for label, state in (("", None), ("state ", "failed")):
            where, params = (
                ("queue_id = ?", [queue_id]) if state is None else ("queue_id = ? AND state = ?", [queue_id, state])
            )
            total = con.execute(f"SELECT SUM(n) FROM queue_count WHERE {where}", params).fetchone()[0]
            # The cursor of the last page: the id just before its PER_PAGE customers.
            (cursor,) = con.execute(
                f"SELECT id FROM customer WHERE {where} ORDER BY id DESC LIMIT 1 OFFSET ?", (*params, PER_PAGE)
            ).fetchone()
            query = f"{BASE}/{reads_db.BIG}/customers?per_page={PER_PAGE}" + (f"&state={state}" if state else "")
            kinds[f"{label}first"] = query
            kinds[f"{label}last after"] = f"{query}&after={cursor}"
            kinds[f"{label}last page"] = f"{query}&page={math.ceil(total / PER_PAGE)}"
        # A page by number in the middle (of state=failed) still skips half of it (no target; docs/api.md).
        kinds["middle page"] = f"{kinds['state first']}&page={math.ceil(total / PER_PAGE / 2)}"
        return kinds
    finally:
        con.close()


def before(path):
    """The SQL of the reads before issue 14, once, straight on the database."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (queue_id,) = con.execute("SELECT id FROM queue WHERE code = ?", (reads_db.BIG,)).fetchone()
        t = time.perf_counter()
        per_state = con.execute(
            "SELECT state, COUNT(*) FROM customer WHERE queue_id = ? GROUP BY state", (queue_id,)
        ).fetchall()
        counted = time.perf_counter() - t
        total = sum(n for _, n in per_state)
        t = time.perf_counter()
        con.execute(
            "SELECT id, ext_id, state FROM customer WHERE queue_id = ? ORDER BY id LIMIT ? OFFSET ?",
            (queue_id, PER_PAGE, total - PER_PAGE),
        ).fetchall()
        offset = time.perf_counter() - t
    finally:
        con.close()
    print(
        f"before issue 14 (its SQL run directly, once): COUNT(*) per state of {total:,} customers "
        f"{counted * 1000:.0f} ms, last page by OFFSET {offset * 1000:.0f} ms (each page also counted its total)"
    )


def reads_run(path, kinds: dict[str, str], requests: int) -> dict[str, float]:
    """p50 ms of each kind, requests interleaved, on one kept-alive connection."""
    port = free_port()
    api = start_api(path, port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for query in kinds.values():  # warm: the first touch of each part of the file
            get(conn, query)
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(requests):
            for kind, query in kinds.items():
                t = time.perf_counter()
                get(conn, query)
                times[kind].append((time.perf_counter() - t) * 1000)
        conn.close()
    finally:
        api.terminate()
        api.wait(timeout=30)
    return {f"{kind} ms": statistics.median(values) for kind, values in times.items()}


def get(conn, query: str) -> dict:
    conn.request("GET", query, headers=AUTH)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"GET {query}: {response.status} {body[:300]!r}")
    return json.loads(body)


def export_run(path) -> dict[str, float]:
    small = export(path, reads_db.CSV_SMALL, stops=False)
    large = export(path, reads_db.CSV_LARGE, stops=True)
    return {
        "csv small MiB": small["peak"] / 1024,
        "csv large MiB": large["peak"] / 1024,
        "csv large s": large["seconds"],
        "stop p50 ms": statistics.median(large["stops"]),
        "stop max ms": max(large["stops"]),
    }


def export(path, code: str, *, stops: bool) -> dict:
    """One export in a fresh API process: its peak VmRSS, its seconds, and (with `stops`) the
    ms each /queue/stop sent during it took to be answered."""
    port = free_port()
    api = start_api(path, port)
    done = threading.Event()
    peak = [rss_kib(api.pid)]
    stop_ms: list[float] = []
    watchers = [threading.Thread(target=_sample, args=(api.pid, peak, done))]
    if stops:
        watchers.append(threading.Thread(target=_stops, args=(port, code, stop_ms, done)))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("GET", f"{BASE}/{code}/attempts.csv", headers=AUTH)
        t = time.perf_counter()
        for watcher in watchers:
            watcher.start()
        response = conn.getresponse()
        lines = 0
        while chunk := response.read(65536):
            lines += chunk.count(b"\n")
        seconds = time.perf_counter() - t
        done.set()
        for watcher in watchers:
            watcher.join()
        post(port, "start", code)
    finally:
        done.set()
        api.terminate()
        api.wait(timeout=30)
    if lines < 2:
        raise SystemExit(f"the export of {code} had {lines} lines")
    return {"peak": peak[0], "seconds": seconds, "stops": stop_ms or [0.0], "lines": lines}


def _sample(pid: int, peak: list, done: threading.Event):
    while not done.is_set():
        peak[0] = max(peak[0], rss_kib(pid))
        time.sleep(0.02)


def _stops(port: int, code: str, stop_ms: list, done: threading.Event):
    while not done.wait(0.25):
        t = time.perf_counter()
        post(port, "stop", code)
        stop_ms.append((time.perf_counter() - t) * 1000)


def post(port: int, command: str, code: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST",
            f"{BASE}/{command}",
            body=json.dumps({"queue_code": code}),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        if response.status != 200:
            raise SystemExit(f"/queue/{command}: {response.status} {response.read()[:300]!r}")
        response.read()
    finally:
        conn.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def report(m: dict[str, float], figures: dict[str, list[float]]):
    print("medians: " + "  ".join(f"{name} {value:.2f}" for name, value in m.items()))
    rows = (
        ("customers last/first (after)", m["last after ms"] / m["first ms"], "<= 2"),
        ("customers last/first (page=)", m["last page ms"] / m["first ms"], "(no target)"),
        ("state=failed last/first (after)", m["state last after ms"] / m["state first ms"], "<= 2"),
        ("state=failed last/first (page=)", m["state last page ms"] / m["state first ms"], "(no target)"),
        ("state=failed middle page=/first", m["middle page ms"] / m["state first ms"], "(no target)"),
        ("counts p50 ms", m["counts ms"], "<= 50"),
        ("csv RSS 1M-export/10k-export", m["csv large MiB"] / m["csv small MiB"], "<= 1.2"),
        ("stop during export, slowest ms (all runs)", max(figures["stop max ms"]), "<= 100"),
    )
    for name, value, target in rows:
        print(f"  {name}: {value:.2f}   target {target}")


if __name__ == "__main__":
    main()
