"""The dialer as a real process against an in-process simulator, over a real socket, on a
real SQLite file that the test also writes to (as the API would)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
import wave
from pathlib import Path

import gevent
import pytest

from daemon import ivr
from daemon.config import QueueDefaults
from daemon.store import customers as store_customers
from daemon.store import records
from daemon.store.schema import open_database
from simulator import Simulator
from simulator.scenario import from_dict

REPO = Path(__file__).resolve().parent.parent
TIME_SCALE = 0.02  # 50 simulated seconds per real second


def start_simulator(scenario: dict, time_scale: float = TIME_SCALE, clock=None) -> Simulator:
    """A simulator on a free loopback port; `clock`: another simulator's, so that several
    switches (one per node) count simulated time on one timeline."""
    # The simulator's own default answer/park gap stays on: every daemon test runs the race.
    sim = Simulator(
        from_dict(scenario), listen=("127.0.0.1", 0), time_scale=time_scale, heartbeat=20.0, sound_dir=str(REPO)
    )
    if clock is not None:
        sim.clock = clock
    return sim.start()


class DaemonProcess:
    """`autocall-daemon` with a config file in `tmp_path`; its log goes to `daemon.log`.
    `database` adds keys to the config's [database] (e.g. busy_timeout); `db_path` puts the
    database elsewhere than in `tmp_path`; `extra_toml` is appended (e.g. [[trunks]] tables)."""

    def __init__(self, tmp_path: Path, sim: Simulator, *, database=None, db_path=None, extra_toml="", **dialer):
        self.tmp_path, self.db_path = tmp_path, Path(db_path or tmp_path / "autocall.sqlite3")
        settings = {
            "dial_string": "sofia/gateway/carrier/{number}",
            "window_start": "00:00",
            "window_end": "23:59:59",
            "recall_delay": 0.3,
            "cps": 200,
            "channel_limit": 50,
            "drain_timeout": 5,
            **dialer,
        }
        lines = (
            [f'[database]\npath = "{self.db_path}"']
            + [f"{k} = {_toml(v)}" for k, v in (database or {}).items()]
            + [f'[esl]\naddress = "127.0.0.1:{sim.address[1]}"', "[dialer]"]
            + [f"{k} = {_toml(v)}" for k, v in settings.items()]
        )
        self.config = tmp_path / "autocall.toml"
        self.config.write_text("\n".join(lines) + "\n" + extra_toml)
        self.log_path = tmp_path / "daemon.log"
        self.env: dict = {}  # added to the environment it starts with
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.main", "--config", str(self.config)],
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: "connected to FreeSWITCH" in self.read_log() or self.proc.poll() is not None, 20)
        assert self.proc.poll() is None, self.read_log()
        return self

    def read_log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def terminate(self, timeout=30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self._wait(timeout)

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self._wait(10)

    def _wait(self, timeout) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "daemon did not exit:\n" + self.read_log()[-3000:]
            gevent.sleep(0.05)
        self.log.close()
        return self.proc.returncode

    def stop_quietly(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _toml(value):
    if isinstance(value, dict):  # an inline table
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def wait_until(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        gevent.sleep(interval)


def import_customers(db_path: Path, customers, code="Q", **settings):
    """Import as the API does: [(id, [numbers])] with the fields IVR-1 reads."""
    db = open_database(db_path)
    request = records.ImportRequest(
        code,
        "IVR-1",
        settings,
        [
            records.NewCustomer(
                ext_id,
                list(numbers),
                {"contract_number": "HD123456", "upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"},
            )
            for ext_id, numbers in customers
        ],
    )
    store_customers.import_customers(db, request, QueueDefaults())
    db.close()


def query(db_path: Path, sql: str, *params):
    with sqlite3.connect(db_path, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def all_final(db_path: Path) -> bool:
    return query(db_path, "SELECT COUNT(*) FROM customer WHERE state IN ('pending', 'calling')")[0][0] == 0


def menu_offset() -> float:
    """Simulated seconds from answer to the IVR-1 menu prompt (greeting and info played)."""
    loader = ivr.TemplateLoader(REPO / "ivr_templates", REPO / "ivr_templates" / "sounds")
    script = loader.get("IVR-1").render(
        {"contract_number": "HD123456", "upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"}
    )
    total = 0.0
    for step_id in ("greeting", "info"):
        for path in script.steps[step_id].files:
            with wave.open(path) as w:
                total += w.getnframes() / w.getframerate()
    return total


def overlapping_calls(records, customer_of: dict) -> list:
    """Pairs of simulator calls of one customer whose times overlap (must be none)."""
    calls = sorted(
        (customer_of[r["uuid"]], r["time"], r["end_time"] or float("inf"), r["uuid"])
        for r in records
        if r["event"] == "originate" and r["uuid"] in customer_of
    )
    return [(a, b) for a, b in zip(calls, calls[1:]) if a[0] == b[0] and b[1] < a[2]]


@pytest.fixture
def run(tmp_path):
    """run(scenario, **dialer) -> (simulator, daemon); both stopped after the test."""
    started = []

    def start(scenario, time_scale=TIME_SCALE, **dialer):
        sim = start_simulator({"gateways": ["carrier"], **scenario}, time_scale)
        daemon = DaemonProcess(tmp_path, sim, **dialer)
        started.append((sim, daemon))
        return sim, daemon

    yield start
    for sim, daemon in started:
        daemon.stop_quietly()
        sim.stop()
