"""`make demo`: the whole product on the embedded default, as real processes.

Starts `autocall-api` on a fresh SQLite file with a generated token, then replays the
seed's sample requests over HTTP and prints each response.
"""
import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SEED_REQUESTS = [
    ("POST /queue (import)", "/queue", {
        "queue_code": "Autocall-Q1", "template": "IVR-1", "concurrent_call": 5, "max_recall_count": 3,
        "min_recall_duration": 3,
        "customers": [{
            "id": "TEL4VN_Test", "mobiles": ["0982596021"], "contract_number": "HD123456",
            "upcoming_due_date": "2021-07-13", "upcoming_amount": 5000000, "due_date": "2021-07-13",
            "dpd": 5, "number_of_ovd_inst": 6, "total_ovd_amount": 3211100}]}),
    ("POST /queue/dnc", "/queue/dnc",
     {"queue_code": "Autocall-Q1", "customers": [{"id": "KH_01"}, {"id": "KH_02"}, {"id": "KH_03"}]}),
    ("POST /queue/stop", "/queue/stop", {"queue_code": "Autocall-Q1"}),
    ("POST /queue/start", "/queue/start", {"queue_code": "Autocall-Q1"}),
    ("POST /queue/stop (before delete)", "/queue/stop", {"queue_code": "Autocall-Q1"}),
    ("POST /queue/delete", "/queue/delete", {"queue_code": "Autocall-Q1"}),
    ("POST /queue/stop (error response: unknown queue)", "/queue/stop", {"queue_code": "Autocall-Q404"}),
    ("POST /queue (error response: unknown template)", "/queue",
     {"queue_code": "Autocall-Q1", "template": "IVR-404", "customers": [{"id": "x", "mobiles": ["0982596021"]}]}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[-1]} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered at {url}")


def call(base: str, token: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m daemon.demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="where the SQLite file and logs go (default: a new temp dir)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="autocall-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    port = free_port()
    env = {**os.environ, "AUTOCALL_DB": str(workdir / "autocall.sqlite3"), "AUTOCALL_API_TOKENS": token,
           "AUTOCALL_API_LISTEN": f"127.0.0.1:{port}"}
    base = f"http://127.0.0.1:{port}"
    print(f"autocall demo — working directory {workdir}")
    with open(workdir / "api.log", "w") as log:
        api = subprocess.Popen([sys.executable, "-m", "api.server"], env=env, stdout=log, stderr=log)
    try:
        wait_for(base + "/healthz", api)
        print(f"autocall-api is up on {base}; this run's bearer token: {token}\n")
        for title, path, body in SEED_REQUESTS:
            status, reply = call(base + "/v2/autocall", token, path, body)
            print(f"{title}\n  HTTP {status}  {json.dumps(reply, ensure_ascii=False)}\n")
    finally:
        api.terminate()
        api.wait(timeout=15)
    print(f"done; database and logs kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
