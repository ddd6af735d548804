"""Daemon throughput against a bare client, and the daemon's CPU cost per call.

    .venv/bin/python bench/throughput_bench.py [--runs 3] [--calls 5000] [--concurrency 500] [--profile DIR]
        [--scrape SECONDS]

Each run starts one `autocall-simulator` process (every callee answers at once, never hangs up,
presses 1 two simulated seconds after answer; --time-scale 0.1) and drives it in each of these
two phases once, the order alternating from run to run:

* bare: `bench/bare_client.py` as a process (originate &park, answer, uuid_kill, hangup complete;
  no database, no IVR) with --concurrency calls in flight;
* daemon: `autocall-daemon` as a process on a temp database holding one queue of --calls
  customers (concurrent_call = channel_limit = --concurrency, cps 100,000) and a two-prompt
  template (a 0.5 s prompt, then a 10 s menu prompt the key interrupts, then hangup).

Throughput is completions per second between the 10th and 90th percentile of the end times:
the daemon's from `attempt.ended_at` in its database, the bare client's from its own clock.
Cost per call is the daemon's CPU seconds (utime+stime of the process, all threads, from /proc)
over the calls, divided by the simulator's CPU seconds over the same interval. With --scrape the
daemon serves its metrics and the bench scrapes them every SECONDS during the daemon phase
(Prometheus's usual interval is 15 s), and says how long the scrapes took. Targets:
daemon/bare >= 0.5, daemon >= 300 calls/s, daemon CPU / simulator CPU <= 1.
"""

import argparse
import collections
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import call_rig as rig
from api_rig import free_port

TIME_SCALE = 0.1  # real seconds per simulated second
INTRO_SECONDS = 0.5  # simulated
MENU_SECONDS = 10.0  # simulated; the key interrupts it
KEY_AT = 2.0  # simulated seconds after answer: during the menu prompt


def bare_phase(sim, port: int, calls: int, concurrency: int) -> dict:
    s0, t0 = rig.cpu_seconds(sim.pid), time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("bare_client.py")),
            "--port",
            str(port),
            "--calls",
            str(calls),
            "--concurrency",
            str(concurrency),
        ],
        cwd=rig.REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wall, sim_cpu = time.monotonic() - t0, rig.cpu_seconds(sim.pid) - s0
    if out.returncode != 0:
        raise SystemExit("bare client failed:\n" + out.stderr[-2000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(sim_cpu=sim_cpu, wall=wall)
    return result


class Scraper(threading.Thread):
    """GET the daemon's /metrics every `every` seconds until `stop()`; `seconds` holds each scrape's time."""

    def __init__(self, port: int, every: float):
        super().__init__(daemon=True)
        self.url, self.every, self.seconds = f"http://127.0.0.1:{port}/metrics", every, []
        self._done = threading.Event()  # not _stop: Thread has a method of that name

    def run(self):
        while not self._done.wait(self.every):
            t0 = time.monotonic()
            urllib.request.urlopen(self.url, timeout=10).read()
            self.seconds.append(time.monotonic() - t0)

    def stop(self) -> list[float]:
        self._done.set()
        if self.ident is not None:
            self.join()
        return self.seconds


def daemon_phase(
    tmp: Path,
    port: int,
    sim,
    calls: int,
    concurrency: int,
    templates: Path,
    sounds: Path,
    profile: Path | None = None,
    scrape: float = 0.0,
) -> dict:
    metrics_port = free_port() if scrape else None
    daemon = rig.Daemon(tmp, port, templates, sounds, cps=100_000, channel_limit=concurrency, metrics_port=metrics_port)
    rig.build_queue(daemon.db_path, calls, concurrency)
    daemon.start()
    scraper = Scraper(metrics_port, scrape) if metrics_port else None
    spies = (
        [rig.profile(daemon.proc.pid, profile / "daemon"), rig.profile(sim.pid, profile / "simulator")]
        if profile
        else []
    )
    try:
        d0, s0, t0 = rig.cpu_seconds(daemon.proc.pid), rig.cpu_seconds(sim.pid), time.monotonic()
        if scraper:
            scraper.start()
        rig.set_running(daemon.db_path, True)
        rig.wait_for(
            lambda: rig.query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state = 'done'")[0][0] >= calls,
            300,
            f"{calls} calls done",
            interval=0.2,
        )
        d1, s1, wall = rig.cpu_seconds(daemon.proc.pid), rig.cpu_seconds(sim.pid), time.monotonic() - t0
    finally:
        scrapes = scraper.stop() if scraper else []
        for spy in spies:
            rig.end_profile(spy)
        daemon.stop()
    rows = rig.query(daemon.db_path, "SELECT ended_at, keys, result, hangup_cause, answered_at FROM attempt")
    return {
        "completed": len(rows),
        "rate": rig.steady_rate([r[0] for r in rows]),
        "pressed": sum(r[2] == "pressed_one" for r in rows),
        "answered": sum(r[4] is not None for r in rows),
        "causes": dict(collections.Counter(r[3] for r in rows)),
        "daemon_cpu": d1 - d0,
        "sim_cpu": s1 - s0,
        "wall": wall,
        "scrapes": scrapes,
    }


def one_run(run: int, args) -> dict:
    """Both phases once against one simulator; the order alternates from run to run."""
    phases = ["bare", "daemon"] if run % 2 == 0 else ["daemon", "bare"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="autocall-throughput-") as tmp:
        tmp = Path(tmp)
        templates, sounds = rig.make_template(tmp, INTRO_SECONDS, MENU_SECONDS)
        scenario = rig.write_scenario(tmp / "scenario.toml", KEY_AT)
        sim, port = rig.start_simulator(scenario, TIME_SCALE, sounds, log_path=tmp / "sim.log")
        try:
            for phase in phases:
                if phase == "bare":
                    results[phase] = bare_phase(sim, port, args.calls, args.concurrency)
                else:
                    profile = args.profile / f"run{run + 1}" if args.profile else None
                    results[phase] = daemon_phase(
                        tmp / phase, port, sim, args.calls, args.concurrency, templates, sounds, profile, args.scrape
                    )
        finally:
            rig.stop(sim)
    return results


def describe(name: str, d: dict) -> str:
    return (
        f"{name} {d['rate']:.0f} calls/s ({d['completed']} done, {d['answered']} answered, {d['pressed']} "
        f"pressed 1, causes {d['causes']}; daemon CPU {100 * d['daemon_cpu'] / d['wall']:.0f}%, simulator CPU "
        f"{100 * d['sim_cpu'] / d['wall']:.0f}% over {d['wall']:.1f} s; per call: daemon "
        f"{1000 * d['daemon_cpu'] / d['completed']:.2f} ms CPU, simulator "
        f"{1000 * d['sim_cpu'] / d['completed']:.2f} ms, ratio {d['daemon_cpu'] / d['sim_cpu']:.2f})"
        + _scrapes(d["scrapes"])
    )


def _scrapes(seconds: list[float]) -> str:
    if not seconds:
        return ""
    median, worst = 1000 * statistics.median(seconds), 1000 * max(seconds)
    return f"; {len(seconds)} scrapes of /metrics, median {median:.1f} ms, max {worst:.1f} ms"


def report(run: int, r: dict) -> dict:
    b = r["bare"]
    print(
        f"run {run + 1}: bare {b['rate']:.0f} calls/s ({b['completed']} done, {b['failed']} failed; bare client "
        f"CPU {100 * b['cpu'] / b['wall']:.0f}%, simulator CPU {100 * b['sim_cpu'] / b['wall']:.0f}% over "
        f"{b['wall']:.1f} s)",
        flush=True,
    )
    d = r["daemon"]
    print(f"       {describe('daemon', d)}; ratio to bare {d['rate'] / b['rate']:.2f}", flush=True)
    return {
        "bare_rate": b["rate"],
        "rate": d["rate"],
        "ratio": d["rate"] / b["rate"],
        "ms": 1000 * d["daemon_cpu"] / d["completed"],
        "sim_ms": 1000 * d["sim_cpu"] / d["completed"],
        "cost": d["daemon_cpu"] / d["sim_cpu"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5000, help="calls per phase")
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy the daemon and the simulator during daemon phases (slows both; figures "
        "of such a run are not comparable); collapsed stacks under DIR/runN/",
    )
    parser.add_argument(
        "--scrape",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="serve the daemon's metrics and scrape them this often",
    )
    args = parser.parse_args(argv)
    print(rig.machine())
    print(
        f"{args.calls} calls per phase, {args.concurrency} in flight, time scale {TIME_SCALE}, "
        f"template: {INTRO_SECONDS} s prompt + {MENU_SECONDS} s menu, key 1 at {KEY_AT} s (simulated)"
    )
    runs = [report(i, one_run(i, args)) for i in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(
        f"median daemon: {med['rate']:.0f} calls/s vs bare client {med['bare_rate']:.0f} calls/s, "
        f"ratio {med['ratio']:.2f} (target >= 0.5: {rig.met(med['ratio'] >= 0.5)}; "
        f">= 300 calls/s: {rig.met(med['rate'] >= 300)}); cost per call {med['ms']:.2f} ms "
        f"CPU vs simulator {med['sim_ms']:.2f} ms, ratio {med['cost']:.2f} (target <= 1: {rig.met(med['cost'] <= 1)})"
    )


if __name__ == "__main__":
    main()
