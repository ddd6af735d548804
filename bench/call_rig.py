"""Helpers shared by throughput_bench.py and latency_bench.py: the two-prompt bench template and
its WAVs, the scenario, the simulator and the daemon as real processes on loopback, the queue in a
temp database, and per-process CPU seconds from /proc.

Nothing here patches gevent: the bench process only starts processes, writes the database the
way the API does and reads it back with sqlite3.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from queued_db import machine  # noqa: E402,F401  (the benches print it from here too)

from daemon.config import QueueDefaults  # noqa: E402
from daemon.store import queue_state, records  # noqa: E402
from daemon.store.customers import import_customers  # noqa: E402
from daemon.store.schema import open_database  # noqa: E402

TEMPLATE = "BENCH-2"
QUEUE = "BENCH"
PROMPTS = "vi/prompts"
CLK_TCK = os.sysconf("SC_CLK_TCK")

TEMPLATE_TOML = """\
# Two prompts and one key: what every benchmark call does.
[[step]]
id = "intro"
play = ["bench_intro"]

[[step]]
id = "menu"
menu = "bench_menu"
timeout = 1
tries = 1

[step.keys]
1 = "result pressed_one then goto end"

[[step]]
id = "end"
hangup = true
"""


def write_wav(path: Path, seconds: float, rate: int = 8000):
    """A silent 8-bit mono WAV lasting `seconds` (the simulator reads its length from the header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(b"\x80" * int(seconds * rate))


def make_template(tmp: Path, intro_seconds: float, menu_seconds: float) -> tuple[Path, Path]:
    """Write BENCH-2.toml and its two WAVs under `tmp`; return (templates dir, sounds dir)."""
    templates, sounds = tmp / "templates", tmp / "sounds"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / f"{TEMPLATE}.toml").write_text(TEMPLATE_TOML)
    write_wav(sounds / PROMPTS / "bench_intro.wav", intro_seconds)
    write_wav(sounds / PROMPTS / "bench_menu.wav", menu_seconds)
    return templates, sounds


def write_scenario(path: Path, key_offset: float) -> Path:
    """Instant answer, the callee never hangs up, presses 1 `key_offset` simulated s after answer."""
    path.write_text(f'[default]\nanswer_after = 0.0\nhangup_after = "never"\nkeys = [[{key_offset}, "1"]]\n')
    return path


def start_simulator(
    scenario: Path, time_scale: float, sound_dir: Path, record: Path | None = None, log_path: Path | None = None
):
    """`autocall-simulator` as a process on a free loopback port; returns (Popen, port)."""
    cmd = [
        sys.executable,
        "-m",
        "simulator",
        "--listen",
        "127.0.0.1:0",
        "--scenario",
        str(scenario),
        "--time-scale",
        str(time_scale),
        "--heartbeat",
        "20",
        "--sound-dir",
        str(sound_dir),
        "--log-level",
        "WARNING",
    ]
    if record:
        cmd += ["--record", str(record)]
    err = open(log_path, "a") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening"):
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, int(line.split()[1].rsplit(":", 1)[1])


def build_queue(db_path: Path, count: int, concurrent_call: int, first: int = 0):
    """A stopped queue of `count` customers (one number each) on the bench template."""
    db = open_database(db_path)
    try:
        customers = [records.NewCustomer(f"KH{i:07d}", [f"09{i:08d}"], {}) for i in range(first, first + count)]
        request = records.ImportRequest(
            QUEUE, TEMPLATE, {"concurrent_call": concurrent_call, "max_recall_count": 0}, customers
        )
        result = import_customers(db, request, QueueDefaults())
        if result.rejected:
            raise SystemExit(f"import rejected {len(result.rejected)} customers: {result.rejected[:3]}")
        queue_state.set_running(db, QUEUE, False)
    finally:
        db.close()


def set_running(db_path: Path, running: bool):
    db = open_database(db_path)
    try:
        queue_state.set_running(db, QUEUE, running)
    finally:
        db.close()


class Daemon:
    """`autocall-daemon --config PATH` with its config, database and log in `tmp`; with
    `metrics_port` it serves its metrics there."""

    def __init__(
        self,
        tmp: Path,
        port: int,
        templates: Path,
        sounds: Path,
        *,
        cps: float,
        channel_limit: int,
        metrics_port: int | None = None,
        env: dict | None = None,
        node: str | None = None,
    ):
        """`env` is added to its environment (AUTOCALL_DB and its password: PostgreSQL in place
        of the SQLite file in `tmp`); `node` is its [dialer] node."""
        tmp.mkdir(parents=True, exist_ok=True)
        self.db_path, self.log_path, self.config = tmp / "autocall.sqlite3", tmp / "daemon.log", tmp / "autocall.toml"
        self.env = env or {}
        self.config.write_text(
            f'[database]\npath = "{self.db_path}"\n'
            f'[templates]\ndir = "{templates}"\nsounds = "{sounds}"\n'
            f'[esl]\naddress = "127.0.0.1:{port}"\n'
            + (f'[dialer]\nnode = "{node}"\n' if node else "[dialer]\n")
            + f'cps = {cps}\nchannel_limit = {channel_limit}\nwindow_start = "00:00"\n'
            f'window_end = "23:59:59"\ndaily_cap = 0\nrecall_delay = 3600\ndrain_timeout = 0\n'
            + (f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n' if metrics_port else "")
        )
        self.proc = None

    def start(self, timeout: float = 20.0):
        """Start it (INFO logging, as in production) and return once it is connected."""
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.main", "--config", str(self.config)],
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while "connected to FreeSWITCH" not in self.log_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("daemon did not connect:\n" + self.log_path.read_text()[-2000:])
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def stop(proc: subprocess.Popen):
    """SIGTERM a process we started and reap it (SIGKILL after 30 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wakeups(pid: int, main_only: bool = False) -> int:
    """How many times `pid`'s threads (those alive now; `main_only`: its main thread) went to
    sleep and were woken: the sum of their voluntary context switches (/proc/<pid>/task/*/status)."""
    total = 0
    tasks = [Path(f"/proc/{pid}/task/{pid}")] if main_only else Path(f"/proc/{pid}/task").iterdir()
    for task in tasks:
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        total += int(status.split("voluntary_ctxt_switches:", 1)[1].split()[0])
    return total


def profile(pid: int, out: Path) -> subprocess.Popen:
    """Start `py-spy record` on `pid` (all threads, idle frames left out, without pausing it), writing
    `out`.txt in collapsed-stack format (one `frame;frame;... count` line per stack)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--threads",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            f"{out}.txt",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def end_profile(spy: subprocess.Popen):
    """Stop a `profile` and let it write its file."""
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


def query(db_path: Path, sql: str, *params):
    with sqlite3.connect(db_path, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def steady_rate(end_times, low: float = 0.1, high: float = 0.9) -> float:
    """Completions per second between the `low` and `high` quantiles of the end times (the
    ramp-up and the tail are left out)."""
    ends = sorted(end_times)
    i, j = int(low * (len(ends) - 1)), int(high * (len(ends) - 1))
    return (j - i) / (ends[j] - ends[i]) if ends[j] > ends[i] else float("nan")


def met(ok: bool) -> str:
    """How a bench prints whether a target is met."""
    return "met" if ok else "NOT met"


def percentile(values, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
