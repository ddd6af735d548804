"""Dialer memory with a big queue vs a small one (target: RSS with 1M customers / with 10k <= 1.2).

    .venv/bin/python bench/memory_bench.py [--small 10000] [--large 1000000] [--runs 3] [--seconds 20]

Builds each database once (through daemon.store.customers.import_customers, the API's chunked import
path; --build raw uses sqlite3 executemany instead), one running queue with concurrent_call 50.
Each run copies the database, starts `autocall-simulator` and `autocall-daemon` (as
`python -m simulator` / `python -m daemon.main`, real processes on loopback, free
ports) with a calling window open all day, cps 50 and channel_limit 50, lets the daemon dial
for --seconds, sampling VmRSS of its /proc/<pid>/status every 0.5 s, then stops both with
SIGTERM. Sizes alternate run by run. Prints each run (peak and median RSS, calls started),
then the medians over runs and the large/small ratios.
"""

import argparse
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from queued_db import REPO, build, machine

SCENARIO = """\
gateways = ["carrier"]

[random]
seed = 7

[random.weights]
answer = 70
busy = 15
no_answer = 15

[random.answer]
answer_after = [1.0, 4.0]
hangup_after = [5.0, 40.0]
keys = [[12.0, "9"]]
"""

CONFIG = """\
[database]
path = "{db}"

[esl]
address = "{esl}"
password = "ClueCon"

[dialer]
channel_limit = 50
cps = 50
window_start = "00:00"
window_end = "23:59"
daily_cap = 5
originate_timeout = 20
dial_string = "sofia/gateway/carrier/{{number}}"
drain_timeout = 2.0

[queue_defaults]
concurrent_call = 50
"""


def start_simulator(workdir, time_scale):
    scenario = workdir / "scenario.toml"
    scenario.write_text(SCENARIO)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--scenario",
            str(scenario),
            "--time-scale",
            str(time_scale),
            "--sound-dir",
            str(REPO / "ivr_templates" / "sounds"),
            "--log-level",
            "WARNING",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=open(workdir / "simulator.log", "w"),
        text=True,
    )
    first = proc.stdout.readline().split()
    if len(first) != 2 or first[0] != "listening":
        proc.kill()
        raise SystemExit(f"autocall-simulator did not start; see {workdir / 'simulator.log'}")
    return proc, first[1]


def rss_kib(pid):
    """VmRSS of `pid` in KiB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def sample(proc, seconds, every=0.5):
    """VmRSS samples of a running process for `seconds`; stops early if it exits."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        kib = rss_kib(proc.pid)
        if kib is not None:
            samples.append(kib)
        time.sleep(every)
    return samples


def attempts_made(db_path):
    with sqlite3.connect(db_path) as con:
        return con.execute("SELECT COUNT(*) FROM attempt").fetchone()[0]


def one_run(template_db, workdir, seconds, time_scale):
    """Dial from a fresh copy of `template_db`; returns (RSS samples in KiB, attempts started)."""
    db = workdir / "autocall.sqlite3"
    shutil.copyfile(template_db, db)
    sim, esl = start_simulator(workdir, time_scale)
    try:
        config = workdir / "autocall.toml"
        config.write_text(CONFIG.format(db=db, esl=esl))
        with open(workdir / "daemon.log", "w") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "daemon.main", "--config", str(config), "--log-level", "WARNING"],
                cwd=REPO,
                stdout=log,
                stderr=log,
            )
        try:
            samples = sample(daemon, seconds)
            if daemon.poll() is not None:
                raise SystemExit(f"autocall-daemon exited with {daemon.returncode}; see {workdir / 'daemon.log'}")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    return samples, attempts_made(db)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per size")
    parser.add_argument("--seconds", type=float, default=20.0, help="dialing time per run")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.2,
        help="the simulator's clock: 0.2 makes calls 5x shorter, so more of them churn",
    )
    parser.add_argument("--build", choices=("import", "raw"), default="import")
    args = parser.parse_args(argv)
    print(machine())
    sizes = (args.small, args.large)
    peaks = {n: [] for n in sizes}
    medians = {n: [] for n in sizes}
    with tempfile.TemporaryDirectory(prefix="autocall-memory-bench-") as tmp:
        tmp = Path(tmp)
        how = "import_customers, chunked" if args.build == "import" else "raw executemany"
        templates = {}
        for n in sizes:
            templates[n] = tmp / f"q{n}.sqlite3"
            took = build(templates[n], n, method=args.build, concurrent_call=50)
            print(
                f"built {n:,} customers via {how} in {took:.1f} s ({templates[n].stat().st_size / 2**20:.0f} MiB file)"
            )
        for run in range(args.runs):
            for n in sizes if run % 2 == 0 else sizes[::-1]:
                workdir = tmp / f"run{run}-{n}"
                workdir.mkdir()
                samples, calls = one_run(templates[n], workdir, args.seconds, args.time_scale)
                peaks[n].append(max(samples))
                medians[n].append(statistics.median(samples))
                print(
                    f"  run {run + 1} {n:>9,} customers: RSS peak {peaks[n][-1] / 1024:6.1f} MiB "
                    f"median {medians[n][-1] / 1024:6.1f} MiB  ({len(samples)} samples, {calls} calls started)"
                )
                shutil.rmtree(workdir)
    print(f"median over {args.runs} runs of {args.seconds:.0f} s:")
    for n in sizes:
        print(
            f"  {n:>9,} customers: RSS peak {statistics.median(peaks[n]) / 1024:.1f} MiB   "
            f"median {statistics.median(medians[n]) / 1024:.1f} MiB"
        )
    small, large = sizes
    print(
        f"ratio {large:,} / {small:,}: peak {statistics.median(peaks[large]) / statistics.median(peaks[small]):.2f}"
        f"   median {statistics.median(medians[large]) / statistics.median(medians[small]):.2f}   (target <= 1.2)"
    )


if __name__ == "__main__":
    main()
