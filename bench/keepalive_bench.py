"""Keep-alive benchmark: the same API requests on one kept-alive connection and on a new
connection each, against a real autocall-api process, in one run.

Each round sends `--requests` requests (a queue read and a `/queue/start` command, in
turn) one way, then the other; the order alternates by round so machine noise falls on
both sides alike. Prints per-round medians, then the overall medians and their ratio
(target: kept-alive <= new connection; before TCP_NODELAY and the one-send response it
was 44 ms against 3 ms: Nagle + delayed ACK).

    .venv/bin/python bench/keepalive_bench.py [--requests 200] [--rounds 5]
"""

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_rig import TOKEN, free_port, start_api  # noqa: E402
from queued_db import machine  # noqa: E402

HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
SEED = {
    "queue_code": "Autocall-Q1",
    "template": "IVR-1",
    "customers": [
        {
            "id": "TEL4VN_Test",
            "mobiles": ["0982596021"],
            "contract_number": "HD123456",
            "upcoming_due_date": "2021-07-13",
            "upcoming_amount": 5000000,
        }
    ],
}


def one_request(conn: http.client.HTTPConnection, i: int):
    if i % 2:
        conn.request("POST", "/v2/autocall/queue/start", body=b'{"queue_code": "Autocall-Q1"}', headers=HEADERS)
    else:
        conn.request("GET", "/v2/autocall/queue/Autocall-Q1", headers=HEADERS)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"unexpected answer {response.status}: {body[:200]!r}")


def kept_alive(port: int, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    one_request(conn, 0)  # the connection is made before the clock starts
    times = []
    for i in range(n):
        start = time.perf_counter()
        one_request(conn, i)
        times.append(time.perf_counter() - start)
    conn.close()
    return times


def new_connections(port: int, n: int) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        one_request(conn, i)
        times.append(time.perf_counter() - start)
        conn.close()
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per way per round (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start_api(Path(tmp) / "autocall.sqlite3", port)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/v2/autocall/queue", body=json.dumps(SEED), headers=HEADERS)
            assert conn.getresponse().status == 200
            conn.close()
            kept, new = [], []
            for r in range(args.rounds):
                ways = [(kept_alive, kept), (new_connections, new)]
                for measure, sink in ways if r % 2 == 0 else ways[::-1]:
                    sink.append(statistics.median(measure(port, args.requests)) * 1000)
                print(f"round {r + 1}: kept-alive median {kept[-1]:.2f} ms, new connection median {new[-1]:.2f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    k, n = statistics.median(kept), statistics.median(new)
    print(
        f"medians over {args.rounds} rounds of {args.requests} requests: kept-alive {k:.2f} ms, "
        f"new connection {n:.2f} ms, kept-alive / new {k / n:.2f} (target <= 1)"
    )


if __name__ == "__main__":
    main()
