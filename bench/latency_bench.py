"""Answer -> first playback latency of the daemon at 10, 100, 500 and 1,000 concurrent calls.

    .venv/bin/python bench/latency_bench.py [--runs 3] [--levels 10,100,500,1000] [--cps 150] [--samples 600]

For each level C, each run starts `autocall-simulator` (instant answer, callee never hangs up,
--record on, --time-scale 0.1) and `autocall-daemon` with concurrent_call = channel_limit = C
and a fixed originate pace (--cps, the same at every level). The bench template's first prompt is
made to last 1.1 x C / cps real seconds, so the dialer holds C calls up and replaces each as it
ends: every level sees the same originate pace (at 10 the calls' own length caps it lower), only
the number of live calls differs. The queue runs for the ramp and until --samples more calls
were answered, is stopped, and the remaining calls finish.

Latency is read from the simulator's record (both times simulated, converted by the time
scale): originate records carry `answer_time`, app records the start `time` of each app; the
first `playback` of a call minus its answer. Only calls answered while at least 90% of C calls
were up count. Prints p50/p99 per run and level, the medians over runs, and p99(1000)/p99(10)
(target <= 3).
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import call_rig as rig

TIME_SCALE = 0.1  # real seconds per simulated second
MENU_SECONDS = 1.0  # simulated
KEY_AFTER_MENU = 0.3  # simulated seconds after the menu prompt starts


def one_level(concurrency: int, cps: float, samples: int) -> dict:
    hold = 1.1 * concurrency / cps  # real seconds a call lasts
    intro = max(0.2, hold / TIME_SCALE - KEY_AFTER_MENU)  # simulated
    with tempfile.TemporaryDirectory(prefix="autocall-latency-") as tmp:
        tmp = Path(tmp)
        templates, sounds = rig.make_template(tmp, intro, MENU_SECONDS)
        scenario = rig.write_scenario(tmp / "scenario.toml", round(intro + KEY_AFTER_MENU, 3))
        record = tmp / "record.jsonl"
        sim, port = rig.start_simulator(scenario, TIME_SCALE, sounds, record=record, log_path=tmp / "sim.log")
        daemon = rig.Daemon(tmp, port, templates, sounds, cps=cps, channel_limit=concurrency)
        try:
            rig.build_queue(daemon.db_path, int(2 * concurrency + 2 * samples + cps * (hold + 3)), concurrency)
            daemon.start()
            d0, s0 = rig.cpu_seconds(daemon.proc.pid), rig.cpu_seconds(sim.pid)
            t0 = time.monotonic()
            rig.set_running(daemon.db_path, True)
            time.sleep(1.0 + hold)  # queue refresh (<= 1 s) and the ramp
            ramped = time.time()
            rig.wait_for(
                lambda: (
                    rig.query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE answered_at >= ?", ramped)[0][0]
                    >= samples
                ),
                120,
                f"{samples} calls answered",
                interval=0.2,
            )
            rig.set_running(daemon.db_path, False)
            rig.wait_for(
                lambda: rig.query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state != 'done'")[0][0] == 0,
                60 + 2 * hold,
                "the calls in progress to end",
                interval=0.2,
            )
            wall = time.monotonic() - t0
            d_cpu, s_cpu = rig.cpu_seconds(daemon.proc.pid) - d0, rig.cpu_seconds(sim.pid) - s0
            pressed = rig.query(daemon.db_path, "SELECT COUNT(*), SUM(result = 'pressed_one') FROM attempt")[0]
        finally:
            daemon.stop()
            rig.stop(sim)
        records = [json.loads(line) for line in record.read_text().splitlines()]
    latencies, live = latencies_at(records, concurrency)
    return {
        "latencies": latencies,
        "live": live,
        "calls": pressed[0],
        "pressed": pressed[1] or 0,
        "daemon_cpu": 100 * d_cpu / wall,
        "sim_cpu": 100 * s_cpu / wall,
    }


def latencies_at(records, concurrency: int) -> tuple[list, list]:
    """(answer -> first playback in real seconds, live calls at that answer) for every call
    answered while at least 90% of `concurrency` calls were up."""
    calls = {r["uuid"]: r for r in records if r["event"] == "originate" and r.get("answer_time")}
    first_play = {}
    for r in records:
        if r["event"] == "app" and r["app"] == "playback" and r["uuid"] not in first_play:
            first_play[r["uuid"]] = r["time"]
    spans = sorted((c["time"], c["end_time"] or float("inf")) for c in calls.values())
    latencies, live = [], []
    for uuid, call in calls.items():
        if uuid not in first_play:
            continue
        at = call["answer_time"]
        up = sum(1 for start, end in spans if start <= at < end)  # O(n^2) but n is a few thousand
        if up >= 0.9 * concurrency:
            latencies.append((first_play[uuid] - at) * TIME_SCALE)
            live.append(up)
    return latencies, live


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--levels", default="10,100,500,1000")
    parser.add_argument("--cps", type=float, default=150.0, help="originate pace, the same at every level")
    parser.add_argument("--samples", type=int, default=600, help="calls answered after the ramp, per level")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    print(rig.machine())
    print(
        f"cps {args.cps:g} at every level, time scale {TIME_SCALE}, {args.samples} calls answered after the "
        "ramp per level; latency = simulator answer -> first playback app start, real ms"
    )
    p50s, p99s = {c: [] for c in levels}, {c: [] for c in levels}
    for run in range(args.runs):
        for c in levels if run % 2 == 0 else reversed(levels):
            r = one_level(c, args.cps, args.samples)
            if not r["latencies"]:
                raise SystemExit(f"level {c}: no call answered while {c} were up (raise --samples)")
            p50, p99 = rig.percentile(r["latencies"], 0.5), rig.percentile(r["latencies"], 0.99)
            p50s[c].append(p50)
            p99s[c].append(p99)
            print(
                f"run {run + 1} level {c}: {len(r['latencies'])} calls measured (live median "
                f"{statistics.median(r['live']):.0f}), p50 {1000 * p50:.2f} ms, p99 {1000 * p99:.2f} ms, "
                f"max {1000 * max(r['latencies']):.2f} ms; {r['calls']} calls, {r['pressed']} pressed 1; "
                f"daemon CPU {r['daemon_cpu']:.0f}%, simulator CPU {r['sim_cpu']:.0f}%",
                flush=True,
            )
    for c in levels:
        print(
            f"median level {c}: p50 {1000 * statistics.median(p50s[c]):.2f} ms, "
            f"p99 {1000 * statistics.median(p99s[c]):.2f} ms"
        )
    low, high = min(levels), max(levels)
    ratio = statistics.median(p99s[high]) / statistics.median(p99s[low])
    print(f"p99 at {high} / p99 at {low}: {ratio:.2f} (target <= 3: {'met' if ratio <= 3 else 'NOT met'})")


if __name__ == "__main__":
    main()
