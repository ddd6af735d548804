"""`make demo`: the whole product on the embedded default, as real processes, in under a minute.

In a fresh working directory (printed first) it writes a demo config and a simulator scenario,
then starts `autocall-simulator` (the FreeSWITCH stand-in, sped up), `autocall-api` and, once the
seed's sample requests have been replayed over HTTP, `autocall-daemon`. It imports the seed's
sample customer plus a few hundred generated customers (seeded: Vietnamese names, 1-3 mobiles,
contracts, amounts, dates), whose numbers the scenario maps to a mix of answered calls (some
press 9 = promise to pay, 2 = agent, 1 = repeat), short hang-ups, busy, no answer, declined and
dead numbers. It shows each queue's progress live (`daemon.status`), ends when every customer is
in a final state, prints the results and downloads each queue's attempts CSV into the working
directory. Every process is stopped with SIGTERM at the end, on Ctrl-C and on failure.
"""

import argparse
import dataclasses
import datetime as dt
import json
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon import status
from daemon.config import REPO_ROOT
from daemon.store import reports, schema
from demo.customers import (
    CALLEE_MIX,
    DEMO_QUEUE_SETTINGS,
    DEMO_QUEUES,
    SEED_IMPORT,
    SEED_QUEUE,
    SEED_REQUESTS,
    TZ_NAME,
    DemoCustomer,
    make_customers,
)
from demo.scenario import CallTiming, callee_rule, scenario_toml
from demo.services import DemoFailed, Interrupted, Service, download, post, start_daemon, start_services, stop_services


def replay_seed(base: str, token: str, out):
    """The seed's sample requests, in order, each with its response: the API contract at work."""
    print("\n== The seed's sample requests (before the dialer starts, so the replies are always the same)\n", file=out)
    for title, path, body in SEED_REQUESTS:
        code, reply = post(base + "/v2/autocall", token, path, body)
        print(f"{title}\n  HTTP {code}  {json.dumps(reply, ensure_ascii=False)}\n", file=out)


def import_queues(base: str, token: str, customers: list[DemoCustomer], out):
    print("== Queues for the dialer\n", file=out)
    code, reply = post(base + "/v2/autocall", token, "/queue", SEED_IMPORT)
    _say_import(out, f"{SEED_QUEUE} (IVR-1): the seed's sample customer TEL4VN_Test, imported again", code, reply)
    for queue, template, _ in DEMO_QUEUES:
        mine = [c.fields for c in customers if c.queue == queue]
        body = {"queue_code": queue, "template": template, **DEMO_QUEUE_SETTINGS, "customers": mine}
        code, reply = post(base + "/v2/autocall", token, "/queue", body)
        _say_import(out, f"{queue} ({template}): {len(mine)} generated customers", code, reply)
        if code != 200:
            raise DemoFailed(f"import of {queue} refused: HTTP {code} {json.dumps(reply, ensure_ascii=False)}")
    settings = ", ".join(f"{k} {v}" for k, v in DEMO_QUEUE_SETTINGS.items())
    print(f"  generated queues: {settings}\n", file=out)


def _say_import(out, title: str, code: int, reply: dict):
    data = reply.get("data") or {}
    print(
        f"POST /queue  {title}\n  HTTP {code} {reply.get('content')}: "
        f"{len(data.get('success', []))} accepted, {len(data.get('fail', []))} refused",
        file=out,
    )


# --- live view and results --------------------------------------------------------------------


class LiveView:
    """Redraws the queues in place on a terminal; prints a compact line per queue otherwise."""

    def __init__(self, out, tz, *, every: float):
        self.out, self.tz, self.every = out, tz, every
        self.tty = out.isatty()
        self.drawn_lines = 0
        self.next_plain = 0.0

    def show(self, statuses: list[status.QueueStatus], now: float, elapsed: float):
        if self.tty:
            self._redraw(statuses, now, elapsed)
        elif elapsed >= self.next_plain:
            self.next_plain = elapsed + self.every
            for s in statuses:
                print(f"[{elapsed:5.1f}s] {status.render_line(s)}", file=self.out)
            self.out.flush()

    def _redraw(self, statuses, now, elapsed):
        width, height = shutil.get_terminal_size((100, 40))
        text = status.render(statuses, now=now, tz=self.tz, source=f"{elapsed:.0f} s into the demo")
        if _rows(text, width) >= height - 1:
            text = "\n".join(status.render_line(s) for s in statuses) + "\n"
        # Move up over the previous drawing and wipe it, so what was printed before stays visible.
        prefix = f"\x1b[{self.drawn_lines}F\x1b[J" if self.drawn_lines else ""
        self.out.write(prefix + text)
        self.out.flush()
        self.drawn_lines = _rows(text, width)


def _rows(text: str, width: int) -> int:
    """Terminal rows `text` takes, long lines wrapped."""
    return sum(max(1, -(-len(line) // width)) for line in text.splitlines())


def run_until_final(db, services: list[Service], view: LiveView, *, timeout: float) -> bool:
    """Refresh the view until every customer of every live queue is final (True) or timeout (False)."""
    started = time.monotonic()
    while True:
        for service in services:
            if not service.alive():
                raise DemoFailed(service.death_notice())
        now, elapsed = time.time(), time.monotonic() - started
        statuses = reports.queue_statuses(db, now=now, recent=3)
        view.show(statuses, now, elapsed)
        if statuses and all(s.done for s in statuses):
            return True
        if elapsed > timeout:
            return False
        time.sleep(0.5)


RESULT_SECTIONS = (
    ("Calls by outcome", "calls_by_outcome"),
    ("Calls by hangup cause", "calls_by_cause"),
    ("Customers by state", "customers_by_state"),
    ("Customers by IVR result", "customers_by_result"),
)


def results_table(db, codes: list[str]) -> str:
    """Per queue: calls by outcome and by hangup cause, customers by state and by IVR result."""
    tables = reports.tallies(db)
    width = max(14, *(len(c) for c in codes))
    lines = []
    for title, name in RESULT_SECTIONS:
        cells = tables[name]
        lines += ["", f"{title:<24}" + "".join(f"{c:>{width + 2}}" for c in codes) + f"{'total':>8}"]
        for row in sorted(cells, key=lambda r: (-sum(cells[r].values()), r)):
            counts = [cells[row].get(c, 0) for c in codes]
            lines.append(f"  {row:<22}" + "".join(f"{n:>{width + 2}}" for n in counts) + f"{sum(counts):>8}")
    return "\n".join(lines) + "\n"


# --- the demo ---------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, help="where config, database, logs and CSVs go (default: a new temp dir)"
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=300,
        metavar="N",
        help="generated customers, split over two queues (default 300)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.05,
        metavar="X",
        help="real seconds per simulated second in the simulator (default 0.05 = 20x)",
    )
    parser.add_argument(
        "--recall-delay",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between two rounds of calls to a customer (default 5)",
    )
    parser.add_argument("--seed", type=int, default=2026, help="seed of the generated customers and callees")
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up if the customers are not all final by then (default 120)",
    )
    args = parser.parse_args(argv)
    if args.customers < 0 or not 0 < args.time_scale <= 1 or args.recall_delay < 0:
        parser.error("--customers >= 0, 0 < --time-scale <= 1 and --recall-delay >= 0, please")
    return args


def prepare(workdir: Path, args, today: dt.date) -> list[DemoCustomer]:
    """Generate the customers and write the scenario that answers for each of their numbers."""
    rng = random.Random(args.seed)
    customers = make_customers(args.customers, rng, today)
    timing = CallTiming(REPO_ROOT / "ivr_templates", REPO_ROOT / "ivr_templates" / "sounds")
    seed_fields = SEED_IMPORT["customers"][0]
    seed_menu = timing.menu("IVR-1", seed_fields)
    entries = [
        (
            "TEL4VN_Test, the seed's sample customer: answers, presses 9",
            callee_rule(seed_fields["mobiles"][0], "promise_to_pay", *seed_menu, rng),
        )
    ]
    for c in customers:
        menu = timing.menu(c.template, c.fields)
        entries += [
            (f"{c.fields['id']} {c.fields['customer_name']}: {behaviour}", callee_rule(number, behaviour, *menu, rng))
            for number, behaviour in c.callees
        ]
    (workdir / "scenario.toml").write_text(scenario_toml(entries, args.seed), encoding="utf-8")
    (workdir / "customers.json").write_text(
        json.dumps([dataclasses.asdict(c) for c in customers], ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return customers


def run(args, out) -> int:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="autocall-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "autocall.sqlite3").exists():
        raise DemoFailed(f"{workdir} already holds a demo database; give a new --workdir")
    print(f"autocall demo — working directory {workdir}", file=out)
    tz = ZoneInfo(TZ_NAME)
    customers = prepare(workdir, args, dt.datetime.now(tz).date())
    mix = ", ".join(f"{name} {weight}%" for name, weight in CALLEE_MIX.items())
    print(f"{len(customers)} generated customers (seed {args.seed}); callee behaviour per number: {mix}", file=out)
    print(
        "DEMO ONLY: calling window opened around the clock (production: 07:00-21:00 Asia/Ho_Chi_Minh), "
        f"no daily cap (production: 5), recall delay {args.recall_delay:g} s (production: 600 s)",
        file=out,
    )
    token = secrets.token_urlsafe(24)
    services, base = start_services(workdir, args, token, out)
    try:
        replay_seed(base, token, out)
        import_queues(base, token, customers, out)
        print(
            "== Dialing: autocall-daemon started; live view (same as `autocall status --db "
            f"{workdir / 'autocall.sqlite3'} --watch`)\n",
            file=out,
        )
        out.flush()
        services.append(start_daemon(workdir))
        return finish(workdir, args, services, base, token, tz, out)
    finally:
        stop_services(services, out)
        print(f"\nall processes stopped; config, database, logs and CSVs kept in {workdir}", file=out)


def finish(workdir: Path, args, services, base: str, token: str, tz, out) -> int:
    db = schema.open_readonly(workdir / "autocall.sqlite3")
    try:
        started = time.monotonic()
        done = run_until_final(db, services, LiveView(out, tz, every=2.0), timeout=args.timeout)
        took = time.monotonic() - started
        codes = [s.code for s in reports.queue_statuses(db, now=time.time(), recent=0)]
        if not done:
            print(
                f"\nTIMEOUT: after {args.timeout:g} s some customers are still not final; the view above "
                f"says which queue. Logs: {workdir}",
                file=out,
            )
        else:
            print(f"\nevery customer is in a final state after {took:.1f} s of dialing", file=out)
        print(results_table(db, codes), file=out)
    finally:
        db.close()
    print("attempts CSV (GET /v2/autocall/queue/<code>/attempts.csv):", file=out)
    for code in codes:
        target = workdir / f"attempts-{code}.csv"
        download(base, token, f"/v2/autocall/queue/{urllib.parse.quote(code)}/attempts.csv", target)
        print(f"  {target}", file=out)
    return 0 if done else 1


def main(argv=None) -> int:
    args = parse_args(argv)

    def on_sigterm(signum, frame):
        raise Interrupted("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run(args, sys.stdout)
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: every process was stopped", file=sys.stdout)
        return 130
    except (DemoFailed, schema.StoreError) as e:
        print(f"\ndemo failed: {e}", file=sys.stdout)
        return 1


if __name__ == "__main__":
    sys.exit(main())
