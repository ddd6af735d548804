"""What one wake-up from idle costs a process on this host: the floor under any event loop's CPU
per call at a low rate, where every event is a wake-up of its own.

    .venv/bin/python bench/wake_cost.py [--wakes 200] [--interval 0.02]

Sleeps --wakes times for --interval seconds each, three ways, and prints one JSON line of CPU
microseconds (utime + stime) per wake-up: "epoll" (a bare `select.epoll().poll`, no event loop),
"gevent" (`gevent.sleep`, the hub's loop as the daemon runs it) and "thread_trip" (what a
trip to a one-thread `gevent.threadpool.ThreadPool` and back adds to a `gevent.sleep`: the
daemon's ledger thread makes one per write, and it wakes both threads).
"""

import argparse
import json
import select
import time


def per_wake(sleep, wakes: int) -> float:
    sleep()  # the first one pays for what is lazily set up
    cpu0 = time.process_time()
    for _ in range(wakes):
        sleep()
    return 1e6 * (time.process_time() - cpu0) / wakes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wakes", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds asleep before each wake-up")
    args = parser.parse_args(argv)
    import gevent
    import gevent.threadpool

    poller, pool = select.epoll(), gevent.threadpool.ThreadPool(1)

    def thread_trip():
        gevent.sleep(args.interval)
        pool.apply(int)

    result = {
        "epoll": per_wake(lambda: poller.poll(args.interval), args.wakes),
        "gevent": per_wake(lambda: gevent.sleep(args.interval), args.wakes),
    }
    result["thread_trip"] = per_wake(thread_trip, args.wakes) - result["gevent"]
    print(json.dumps({k: round(v, 1) for k, v in result.items()}), flush=True)


if __name__ == "__main__":
    main()
