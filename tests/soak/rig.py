"""What the fault campaign runs (tests/soak/campaign.py): the simulator's callees, the API and
the daemon as processes on the campaign's files, and the template files an operator edits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests

from tests.api_fixtures import TOKEN, free_port
from tests.daemon_fixtures import REPO, DaemonProcess, menu_offset, wait_until
from tests.soak.wallclock import WallClock


def scenario(seed: int) -> dict:
    """Callees by number prefix: short hang-ups, key presses (9 = promise, 2 = agent), dead
    numbers; everyone else drawn from a seeded mix of answer / busy / no answer / decline.
    The gateway `flaky` (its proxy `flaky-sbc`) never reaches anyone: TRUNKS' first trunk."""
    press_at = menu_offset() + 3.0
    return {
        "gateways": {"carrier": {}, "mobifone": {}, "viettel": {}, "flaky": {"proxy": "flaky-sbc"}},
        "numbers": [
            {"glob": "*@flaky-sbc", "outcome": "unreachable"},
            {"glob": "0903*", "outcome": "answer", "answer_after": 1, "hangup_after": 1},
            {"glob": "0904*", "outcome": "answer", "answer_after": 1, "hangup_after": 120, "keys": [[press_at, "9"]]},
            {"glob": "0905*", "outcome": "answer", "answer_after": 2, "hangup_after": 60, "keys": [[press_at, "2"]]},
            {"glob": "0906*", "outcome": "unallocated"},
        ],
        "random": {
            "seed": seed,
            "weights": {
                "answer": 45,
                "busy": 15,
                "no_answer": 15,
                "decline": 10,
                "no_user_response": 5,
                "unreachable": 5,
            },
            "answer": {"answer_after": [0.5, 6.0], "hangup_after": [1.0, 50.0]},
        },
    }


# The operator's edits of IVR-1 (`template_edit`): valid, but it speaks a field the campaign's
# customers lack (the dialer stops each queue that claims one of them); then broken.
SPEAKS_DPD = ('[[step]]\nid = "info"', '[[step]]\nid = "overdue"\nplay = [{ number = "dpd" }]\n\n[[step]]\nid = "info"')
BROKEN = ('no_key = "goto goodbye"', 'no_key = "goto nowhere"')


# The daemons' trunks (docs/daemon.md, "Trunks"): 0904/0905 go first to one whose every call
# fails at the gateway (each fails over to the next trunk; it is marked down after two).
TRUNKS = """
[[trunks]]
name = "flaky"
dial_string = "sofia/gateway/flaky/{number}"
prefixes = ["0904", "0905"]
channel_limit = 4
[[trunks]]
name = "mobifone"
dial_string = "sofia/gateway/mobifone/{number}"
carriers = ["MobiFone"]
channel_limit = 6
cps = 20
caller_ids = ["02871000001", "02871000002"]
[[trunks]]
name = "viettel"
dial_string = "sofia/gateway/viettel/{number}"
carriers = ["Viettel"]
channel_limit = 4
"""


def copy_templates(workdir: Path) -> Path:
    """The shipped templates in `workdir`, for the faults to edit (the sound files stay shared)."""
    templates = workdir / "templates"
    templates.mkdir(exist_ok=True)
    for name in ("IVR-1", "IVR-OVERDUE"):
        shutil.copy(REPO / "ivr_templates" / f"{name}.toml", templates)
    return templates


def rewrite(path: Path, text: str):
    """Replace the file at once, as an editor saving it does: a reader never sees half of it."""
    part = path.with_suffix(".part")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)


class ApiServer:
    """`autocall-api` as a process on a free loopback port, logging to a file (never a pipe that
    fills); `db_env` says where its database is (AUTOCALL_DB and, on PostgreSQL, the password)."""

    def __init__(self, workdir: Path, db_env: dict, templates: Path, clock: WallClock, name: str = "api"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / f"{name}.log", "a")
        env = {
            **os.environ,
            **db_env,
            "AUTOCALL_API_TOKENS": TOKEN,
            "AUTOCALL_API_LISTEN": f"127.0.0.1:{self.port}",
            **clock.env,
            "AUTOCALL_TEMPLATES": str(templates),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.server"], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_until(self._answers, 20)

    def _answers(self) -> bool:
        assert self.proc.poll() is None, "autocall-api exited at start"
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Daemon:
    """The daemon process (tests.daemon_fixtures.DaemonProcess) with short heartbeat and busy
    timeouts, knowing how many times it has connected to the switch and whether it is in a
    database outage. `db_env` overrides the SQLite file `db_path` (PostgreSQL); `node` names it."""

    def __init__(
        self,
        workdir: Path,
        sim,
        templates: Path,
        clock: WallClock,
        db_path: Path,
        *,
        daily_cap: int,
        heartbeat_timeout: float,
        busy_timeout: float,
        db_env: dict | None = None,
        node: str | None = None,
    ):
        # Customers at the daily cap wait for tomorrow: the drain accepts them (checks.check_drained).
        self.proc = DaemonProcess(
            workdir,
            sim,
            recall_delay=0.4,
            originate_timeout=10,
            max_call_seconds=30,
            database={"busy_timeout": busy_timeout},
            db_path=db_path,
            daily_cap=daily_cap,
            drain_timeout=5,
            # The calling policy of issue 17 on: three trunks (one whose gateway is always
            # unreachable, so calls fail over and it goes down), per-cause recall delays.
            trunk_down_after=2,
            trunk_down_for=2,
            recall_delays={"busy": 0.2, "no_key": 0.6},
            extra_toml=TRUNKS,
            **({"node": node} if node else {}),
        )
        esl = f"[esl]\nheartbeat_timeout = {heartbeat_timeout}\n"
        config = self.proc.config.read_text().replace("[esl]\n", esl) + f'[templates]\ndir = "{templates}"\n'
        self.proc.config.write_text(config)
        self.proc.env = {**clock.env, **(db_env or {})}
        self.db_path = self.proc.db_path
        self.node = node

    def connects(self) -> int:
        """How many times it has connected to the switch and reconciled its open calls (their
        results written): a fault is over for the checks only then."""
        return self.proc.read_log().count("open calls with FreeSWITCH; dialing")

    def start(self, timeout: float):
        before = self.connects()
        self.proc.start()
        self.wait_connected(before, timeout)

    def wait_connected(self, before: int, timeout: float):
        wait_until(lambda: self.connects() > before or self.proc.proc.poll() is not None, timeout, 0.1)
        assert self.proc.proc.poll() is None, "daemon exited:\n" + self.proc.read_log()[-3000:]

    def paused(self) -> bool:
        """In a database outage the daemon said began and not yet that it ended."""
        log = self.proc.read_log()
        return log.count("dialing paused;") > log.count("database writable again")
