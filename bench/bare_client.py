"""The least a dialer can do per call, as the yardstick for the daemon's throughput.

    .venv/bin/python bench/bare_client.py --port PORT [--calls 5000] [--concurrency 500] [--cps N --hold S]

Over one `daemon.esl.ESLClient` connection (subscribed to the daemon's events, so the simulator
renders the same events for both), `--concurrency` greenlets each loop: `bgapi originate` with our
own origination uuid and Job-UUID and `&park()`, wait for CHANNEL_ANSWER, (`--hold` seconds,)
`api uuid_kill`, wait for CHANNEL_HANGUP_COMPLETE. With `--cps`, originates go no faster than
that many a second. No database, no IVR, no logging per call. Prints one JSON line:
{"calls", "completed", "failed", "rate" (completions/s between the 10th and 90th percentile of the
end times), "elapsed", "cpu" (this process's CPU seconds), "run_cpu" (those of the calls alone), "run_wakeups" (its
voluntary context switches meanwhile: how often it slept and was woken)}.
"""

import argparse
import json
import resource
import sys
import time
import uuid as uuidlib


def run(client, calls: int, concurrency: int, timeout: float = 30.0, cps: float = 0.0, hold: float = 0.0) -> dict:
    import gevent
    import gevent.event

    from daemon.esl import ESLError

    ends, failed = [], []
    numbers = iter(range(calls))
    next_at = [time.monotonic()]  # when the next originate may go (--cps)

    def paced():
        if cps:
            wait, next_at[0] = next_at[0] - time.monotonic(), max(next_at[0], time.monotonic()) + 1 / cps
            if wait > 0:
                gevent.sleep(wait)

    def one_call(n):
        call_uuid = str(uuidlib.uuid4())
        answered, ended = gevent.event.Event(), gevent.event.Event()

        def on_event(event):
            if event.name == "CHANNEL_ANSWER":
                answered.set()
            elif event.name == "CHANNEL_HANGUP_COMPLETE":
                answered.set()
                ended.set()

        client.subscribe_channel(call_uuid, on_event)
        try:
            paced()
            client.bgapi(
                f"originate {{origination_uuid={call_uuid},originate_timeout=30}}"
                f"sofia/gateway/carrier/09{n:08d} &park()",
                job_uuid=str(uuidlib.uuid4()),
            )
            if not answered.wait(timeout) or ended.is_set():
                failed.append(n)
                return
            if hold:
                gevent.sleep(hold)
            client.api(f"uuid_kill {call_uuid}")
            if ended.wait(timeout):
                ends.append(time.time())
            else:
                failed.append(n)
        except ESLError:
            failed.append(n)
        finally:
            client.unsubscribe_channel(call_uuid)

    def worker():
        for n in numbers:
            one_call(n)

    started, cpu0, woken0 = time.time(), _cpu(), _wakeups()
    gevent.joinall([gevent.spawn(worker) for _ in range(concurrency)])
    return {
        "run_cpu": _cpu() - cpu0,
        "run_wakeups": _wakeups() - woken0,
        "calls": calls,
        "completed": len(ends),
        "failed": len(failed),
        "elapsed": time.time() - started,
        "rate": _steady_rate(ends),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _wakeups() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def _steady_rate(ends) -> float:
    ends = sorted(ends)
    if len(ends) < 10:
        return float("nan")
    i, j = int(0.1 * (len(ends) - 1)), int(0.9 * (len(ends) - 1))
    return (j - i) / (ends[j] - ends[i])


def main(argv=None):
    from gevent import monkey

    monkey.patch_all()
    from daemon.esl import DEFAULT_EVENTS, ESLClient

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password", default="ClueCon")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--cps", type=float, default=0.0, help="originates per second at most (0: no limit)")
    parser.add_argument("--hold", type=float, default=0.0, help="real seconds between answer and uuid_kill")
    args = parser.parse_args(argv)
    client = ESLClient(
        args.host, args.port, args.password, events=DEFAULT_EVENTS, timeout=30.0, heartbeat_timeout=600.0
    )
    client.connect()
    try:
        result = run(client, args.calls, args.concurrency, cps=args.cps, hold=args.hold)
    finally:
        client.close()
    result["cpu"] = _cpu()
    print(json.dumps(result), flush=True)
    return 0 if result["completed"] else 1


if __name__ == "__main__":
    sys.exit(main())
