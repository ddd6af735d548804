"""What the API benchmarks share: a bench token, a free port, `autocall-api` started as a process."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-000000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(db_path, port: int, **extra_env) -> subprocess.Popen:
    """`autocall-api` on `port` with its database at `db_path` (a path or a URL; a
    PostgreSQL password goes in `extra_env`)."""
    env = {
        **os.environ,
        **extra_env,
        "AUTOCALL_DB": str(db_path),
        "AUTOCALL_API_TOKENS": TOKEN,
        "AUTOCALL_API_LISTEN": f"127.0.0.1:{port}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.server", "--log-level", "WARNING"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"autocall-api did not start: {proc.stderr.read()}")
