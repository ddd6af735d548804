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
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import wave
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon import ivr, status
from daemon.config import REPO_ROOT
from daemon.errors import AutocallError
from daemon.store import reports, schema

TZ_NAME = "Asia/Ho_Chi_Minh"
GATEWAY = "carrier1"
SEED_QUEUE = "Autocall-Q1"
# The seed's sample import body, word for word: replayed first, then imported again to be called.
SEED_IMPORT = {
    "queue_code": SEED_QUEUE, "template": "IVR-1", "concurrent_call": 5, "max_recall_count": 3,
    "min_recall_duration": 3,
    "customers": [{
        "id": "TEL4VN_Test", "mobiles": ["0982596021"], "contract_number": "HD123456",
        "upcoming_due_date": "2021-07-13", "upcoming_amount": 5000000, "due_date": "2021-07-13",
        "dpd": 5, "number_of_ovd_inst": 6, "total_ovd_amount": 3211100}]}
SEED_REQUESTS = [
    ("POST /queue (import)", "/queue", SEED_IMPORT),
    ("POST /queue/dnc", "/queue/dnc",
     {"queue_code": SEED_QUEUE, "customers": [{"id": "KH_01"}, {"id": "KH_02"}, {"id": "KH_03"}]}),
    ("POST /queue/stop", "/queue/stop", {"queue_code": SEED_QUEUE}),
    ("POST /queue/start", "/queue/start", {"queue_code": SEED_QUEUE}),
    ("POST /queue/stop (before delete)", "/queue/stop", {"queue_code": SEED_QUEUE}),
    ("POST /queue/delete", "/queue/delete", {"queue_code": SEED_QUEUE}),
    ("POST /queue/stop (error response: unknown queue)", "/queue/stop", {"queue_code": "Autocall-Q404"}),
    ("POST /queue (error response: unknown template)", "/queue",
     {"queue_code": SEED_QUEUE, "template": "IVR-404", "customers": [{"id": "x", "mobiles": ["0982596021"]}]}),
]
# Generated queues: (code, template, share of the customers).
DEMO_QUEUES = (("DEMO-TRUOC-HAN", "IVR-1", 0.6), ("DEMO-QUA-HAN", "IVR-OVERDUE", 0.4))
DEMO_QUEUE_SETTINGS = {"concurrent_call": 30, "max_recall_count": 2, "min_recall_duration": 5}

# What the callee behind one number does, and how often (weights).
CALLEE_MIX = {
    "listens": 26,              # answers, hears the message, presses nothing
    "hangs_up_mid_message": 8,  # answers, listens a while (long enough to count), hangs up
    "promise_to_pay": 18,       # presses 9 in the menu
    "repeat_then_promise": 5,   # presses 1 (hear again), then 9
    "wants_agent": 7,           # presses 2, is transferred, talks to the agent
    "short_hangup": 8,          # answers and hangs up within seconds: too short, called again
    "busy": 11,
    "no_answer": 10,
    "declined": 5,
    "dead_number": 2,           # the network says the number does not exist
}
# A key is pressed this many simulated seconds into the menu prompt (it interrupts the prompt).
KEY_INTO_MENU = 4.0
MOBILE_PREFIXES = ("032", "033", "034", "035", "036", "037", "038", "039", "070", "076", "077", "078",
                   "079", "081", "082", "083", "084", "085", "086", "088", "089", "090", "091", "093",
                   "094", "096", "097", "098")
SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
            "Hồ", "Ngô", "Dương", "Lý")
MIDDLE_NAMES = ("Văn", "Thị", "Hữu", "Minh", "Thanh", "Ngọc", "Đức", "Quốc", "Thu", "Kim", "Xuân", "Bảo")
GIVEN_NAMES = ("An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hải", "Hằng", "Hiếu", "Hoa", "Hùng", "Hương",
               "Khánh", "Lan", "Linh", "Long", "Mai", "Nam", "Nga", "Phong", "Phúc", "Phương", "Quân",
               "Quang", "Sơn", "Tâm", "Thảo", "Trang", "Trung", "Tuấn", "Tú", "Vy", "Yến")


class DemoFailed(AutocallError):
    """The demo cannot go on; the message says what happened."""


class Interrupted(AutocallError):
    """Ctrl-C or SIGTERM reached the demo."""


# --- the generated customers and the scenario that answers for them ------------------------

@dataclasses.dataclass(frozen=True)
class DemoCustomer:
    queue: str
    template: str
    fields: dict                               # the import body's customer object
    callees: tuple[tuple[str, str], ...]       # (number, CALLEE_MIX behaviour), in calling order


def make_customers(count: int, rng: random.Random, today: dt.date) -> list[DemoCustomer]:
    """`count` customers spread over DEMO_QUEUES, every number unique, reproducible for a seed."""
    used = {SEED_IMPORT["customers"][0]["mobiles"][0]}
    behaviours, weights = list(CALLEE_MIX), list(CALLEE_MIX.values())
    customers = []
    for i in range(count):
        code, template = _pick_queue(i, count)
        numbers = [_new_mobile(rng, used) for _ in range(rng.choices((1, 2, 3), (55, 30, 15))[0])]
        fields = {"id": f"KH{100001 + i}", "mobiles": numbers,
                  "customer_name": f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE_NAMES)} {rng.choice(GIVEN_NAMES)}",
                  **_loan(rng, today)}
        callees = tuple((n, rng.choices(behaviours, weights)[0]) for n in numbers)
        customers.append(DemoCustomer(code, template, fields, callees))
    return customers


def _pick_queue(i: int, count: int) -> tuple[str, str]:
    edge = 0.0
    for code, template, share in DEMO_QUEUES:
        edge += share
        if i < round(edge * count):
            return code, template
    return DEMO_QUEUES[-1][:2]


def _new_mobile(rng: random.Random, used: set) -> str:
    while True:
        number = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**7):07d}"
        if number not in used:
            used.add(number)
            return number


def _loan(rng: random.Random, today: dt.date) -> dict:
    installment = rng.randrange(8, 120) * 50_000
    dpd = rng.randrange(1, 95)
    overdue_installments = 1 + dpd // 30
    return {
        "contract_number": f"HD{rng.randrange(10**5, 10**8)}",
        "upcoming_due_date": (today + dt.timedelta(days=rng.randrange(1, 11))).isoformat(),
        "upcoming_amount": installment,
        "due_date": (today - dt.timedelta(days=dpd)).isoformat(),
        "dpd": dpd,
        "number_of_ovd_inst": overdue_installments,
        "total_ovd_amount": installment * overdue_installments + rng.randrange(0, 500) * 1000,
    }


class CallTiming:
    """Simulated seconds from answer to a template's menu, per customer, from the WAV lengths."""

    def __init__(self, templates_dir: Path, sounds_dir: Path):
        self.templates_dir, self.sounds_dir = templates_dir, sounds_dir
        self._templates: dict[str, ivr.Template] = {}
        self._wav_seconds: dict[str, float] = {}

    def menu(self, template: str, fields: dict) -> tuple[float, float]:
        """(when the first menu starts, how long key 1's replay lasts until the menu is back)."""
        script = self._template(template).render(fields)
        menu_id, menu_at = self._play_until_menu(script, script.start)
        replay_from, _ = ivr.next_step(script, menu_id, "1")
        _, replay = self._play_until_menu(script, replay_from)
        return menu_at, replay

    def _template(self, name: str) -> ivr.Template:
        if name not in self._templates:
            path = ivr.template_path(str(self.templates_dir), name)
            self._templates[name] = ivr.load(path, str(self.sounds_dir))
        return self._templates[name]

    def _play_until_menu(self, script: ivr.Script, step_id: str) -> tuple[str, float]:
        seconds = 0.0
        while not isinstance(script.steps[step_id], ivr.Menu):
            seconds += sum(self._seconds(f) for f in script.steps[step_id].files)
            step_id, _ = ivr.next_step(script, step_id, None)
        return step_id, seconds

    def _seconds(self, path: str) -> float:
        if path not in self._wav_seconds:
            with wave.open(path) as w:
                self._wav_seconds[path] = w.getnframes() / w.getframerate()
        return self._wav_seconds[path]


def callee_rule(number: str, behaviour: str, menu_at: float, replay: float, rng: random.Random) -> dict:
    """The scenario's [[numbers]] entry that makes `number` behave as `behaviour`."""
    answer = {"outcome": "answer", "answer_after": round(rng.uniform(2, 9), 1)}
    key_at = round(menu_at + KEY_INTO_MENU, 1)
    rules = {
        "listens": {**answer, "hangup_after": "never"},
        "hangs_up_mid_message": {**answer, "hangup_after": round(rng.uniform(7, max(8.0, menu_at)), 1)},
        "promise_to_pay": {**answer, "hangup_after": "never", "keys": [[key_at, "9"]]},
        "repeat_then_promise": {**answer, "hangup_after": "never",
                                "keys": [[key_at, "1"], [round(key_at + replay + KEY_INTO_MENU, 1), "9"]]},
        "wants_agent": {**answer, "hangup_after": round(key_at + rng.uniform(15, 40), 1), "keys": [[key_at, "2"]]},
        "short_hangup": {**answer, "hangup_after": round(rng.uniform(0.5, 3.5), 1)},
        "busy": {"outcome": "busy", "ring": round(rng.uniform(0, 3), 1)},
        "no_answer": {"outcome": "no_answer"},
        "declined": {"outcome": "decline", "ring": round(rng.uniform(2, 10), 1)},
        "dead_number": {"outcome": "unallocated"},
    }
    return {"number": number, **rules[behaviour]}


def scenario_toml(entries: list[tuple[str, dict]], seed: int) -> str:
    """The simulator's scenario file: one exact-number rule per (comment, rule)."""
    lines = [
        f"# autocall demo scenario, generated with seed {seed}. Format: docs/simulator.md.",
        "# Every number of every demo customer has its own callee; durations are simulated seconds.",
        f'gateways = ["{GATEWAY}"]',
        "",
        "[default]            # numbers not listed below: nobody picks up",
        'outcome = "no_answer"',
    ]
    for comment, rule in entries:
        lines += ["", f"[[numbers]]          # {comment}"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in rule.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def config_toml(*, esl_port: int, api_port: int, token: str, recall_delay: float) -> str:
    """The demo's autocall.toml: everything the daemon and the API need, and why it differs."""
    return f"""\
# autocall demo configuration, generated by `make demo` (python -m daemon.demo).
[database]
path = "autocall.sqlite3"

[api]
listen = "127.0.0.1:{api_port}"
tokens = ["{token}"]

[esl]
address = "127.0.0.1:{esl_port}"

[dialer]
dial_string = "sofia/gateway/{GATEWAY}/{{number}}"
channel_limit = 100
cps = 50.0
# DEMO ONLY: open around the clock and without the daily cap, so the demo runs at any hour.
# Production keeps the defaults: 07:00-21:00 {TZ_NAME}, at most 5 calls per customer a day.
window_start = "00:00"
window_end = "23:59:59.999999"
timezone = "{TZ_NAME}"
daily_cap = 0
# DEMO ONLY: seconds between rounds (production default 600).
recall_delay = {recall_delay!r}
originate_timeout = 30
drain_timeout = 3.0
"""


# --- the three processes --------------------------------------------------------------------

class Service:
    """One child process of the demo, its log file, and how to stop it."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict):
        self.name, self.log_path = name, log_path
        with open(log_path, "wb") as log:
            # Its own session: Ctrl-C reaches only the demo, which then stops the services in order.
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match:
        """The first log line matching `pattern`; DemoFailed if the process dies or it never comes."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            match = regex.search(self.log_path.read_text(encoding="utf-8", errors="replace"))
            if match:
                return match
            if not self.alive():
                raise DemoFailed(self.death_notice())
            time.sleep(0.05)
        raise DemoFailed(f"{self.name} did not log /{pattern}/ within {timeout:g} s\n{self.tail()}")

    def death_notice(self) -> str:
        return f"{self.name} exited with status {self.proc.returncode}; the end of {self.log_path}:\n{self.tail()}"

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return "\n".join("    " + line for line in text)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, and SIGKILL only if it would not go; returns its exit status."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_services(workdir: Path, args, token: str, out) -> tuple[list[Service], str]:
    """Simulator and API up, config written; returns the services and the API's base URL."""
    env = child_env(workdir)
    python = sys.executable
    services = []
    try:
        sim = Service("autocall-simulator", [
            python, "-m", "daemon.simulator", "--listen", "127.0.0.1:0", "--scenario", str(workdir / "scenario.toml"),
            "--time-scale", str(args.time_scale), "--record", str(workdir / "simulator-record.jsonl")],
            workdir / "simulator.log", env)
        services.append(sim)
        esl_port = int(sim.wait_for_line(r"listening [\d.]+:(\d+)", 20).group(1))
        api_port = free_port()
        (workdir / "autocall.toml").write_text(config_toml(
            esl_port=esl_port, api_port=api_port, token=token, recall_delay=args.recall_delay), encoding="utf-8")
        api = Service("autocall-api", [python, "-m", "api.server"], workdir / "api.log", env)
        services.append(api)
        api.wait_for_line(r"autocall-api listening on", 20)
    except BaseException:
        stop_services(services, out)
        raise
    print(f"autocall-simulator (FreeSWITCH stand-in) on 127.0.0.1:{esl_port}, time scale {args.time_scale:g}"
          f" ({1 / args.time_scale:g}x faster than life)", file=out)
    print(f"autocall-api on http://127.0.0.1:{api_port}; this run's bearer token: {token}", file=out)
    return services, f"http://127.0.0.1:{api_port}"


def child_env(workdir: Path) -> dict:
    """Our environment minus any AUTOCALL_* of the caller's, pointed at the demo's config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOCALL_")}
    env["AUTOCALL_CONFIG"] = str(workdir / "autocall.toml")
    return env


def start_daemon(workdir: Path) -> Service:
    daemon = Service("autocall-daemon", [sys.executable, "-m", "daemon.main"], workdir / "daemon.log",
                     child_env(workdir))
    daemon.wait_for_line(r"connected to FreeSWITCH", 20)
    return daemon


def stop_services(services: list[Service], out):
    """Stop in reverse order of start (the dialer before the switch it calls through)."""
    for service in reversed(services):
        status_code = service.stop()
        if status_code not in (0, -signal.SIGTERM):
            print(f"{service.name} exited with status {status_code}; see {service.log_path}", file=out)


def free_port() -> int:
    """A port free right now on the loopback (the config file needs a number, not 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- HTTP -------------------------------------------------------------------------------------

def post(base: str, token: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def download(base: str, token: str, path: str, target: Path):
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response, open(target, "wb") as f:
        shutil.copyfileobj(response, f)


def replay_seed(base: str, token: str, out):
    """The seed's sample requests, in order, each with its response: the API contract at work."""
    print("\n== The seed's sample requests (before the dialer starts, so the replies are always the same)\n",
          file=out)
    for title, path, body in SEED_REQUESTS:
        code, reply = post(base + "/v2/autocall", token, path, body)
        print(f"{title}\n  HTTP {code}  {json.dumps(reply, ensure_ascii=False)}\n", file=out)


def import_queues(base: str, token: str, customers: list[DemoCustomer], out):
    print("== Queues for the dialer\n", file=out)
    code, reply = post(base + "/v2/autocall", token, "/queue", SEED_IMPORT)
    _say_import(out, f"{SEED_QUEUE} (IVR-1): the seed's sample customer TEL4VN_Test, imported again",
                code, reply)
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
    print(f"POST /queue  {title}\n  HTTP {code} {reply.get('content')}: "
          f"{len(data.get('success', []))} accepted, {len(data.get('fail', []))} refused", file=out)


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


RESULT_SECTIONS = (("Calls by outcome", "calls_by_outcome"), ("Calls by hangup cause", "calls_by_cause"),
                   ("Customers by state", "customers_by_state"), ("Customers by IVR result", "customers_by_result"))


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
        prog="python -m daemon.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="where config, database, logs and CSVs go "
                                                     "(default: a new temp dir)")
    parser.add_argument("--customers", type=int, default=300, metavar="N",
                        help="generated customers, split over two queues (default 300)")
    parser.add_argument("--time-scale", type=float, default=0.05, metavar="X",
                        help="real seconds per simulated second in the simulator (default 0.05 = 20x)")
    parser.add_argument("--recall-delay", type=float, default=5.0, metavar="SECONDS",
                        help="seconds between two rounds of calls to a customer (default 5)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the generated customers and callees")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="give up if the customers are not all final by then (default 120)")
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
    entries = [("TEL4VN_Test, the seed's sample customer: answers, presses 9",
                callee_rule(seed_fields["mobiles"][0], "promise_to_pay", *seed_menu, rng))]
    for c in customers:
        menu = timing.menu(c.template, c.fields)
        entries += [(f"{c.fields['id']} {c.fields['customer_name']}: {behaviour}",
                     callee_rule(number, behaviour, *menu, rng)) for number, behaviour in c.callees]
    (workdir / "scenario.toml").write_text(scenario_toml(entries, args.seed), encoding="utf-8")
    (workdir / "customers.json").write_text(
        json.dumps([dataclasses.asdict(c) for c in customers], ensure_ascii=False, indent=1), encoding="utf-8")
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
    print("DEMO ONLY: calling window opened around the clock (production: 07:00-21:00 Asia/Ho_Chi_Minh), "
          f"no daily cap (production: 5), recall delay {args.recall_delay:g} s (production: 600 s)", file=out)
    token = secrets.token_urlsafe(24)
    services, base = start_services(workdir, args, token, out)
    try:
        replay_seed(base, token, out)
        import_queues(base, token, customers, out)
        print("== Dialing: autocall-daemon started; live view (same as `autocall status --db "
              f"{workdir / 'autocall.sqlite3'} --watch`)\n", file=out)
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
            print(f"\nTIMEOUT: after {args.timeout:g} s some customers are still not final; the view above "
                  f"says which queue. Logs: {workdir}", file=out)
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
