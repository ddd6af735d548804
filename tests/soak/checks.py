"""The campaign's invariants, checked on a snapshot of the simulator and the database.

Pure functions: `take_snapshot()` reads the simulator (no yield in between, so its records
and live channels agree) and then the SQLite file in one read transaction; `check()`
returns every broken rule as a `Violation`. Nothing here knows how the faults were made.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import heapq
import json
from zoneinfo import ZoneInfo

from daemon import outcome
from daemon.store.states import CALLING, CUSTOMER_STATES, DELETED, FAILED, PENDING

INF = float("inf")
TIMEZONE = "Asia/Ho_Chi_Minh"  # the daemon's default dialer.timezone: its day for the daily cap


@dataclasses.dataclass(frozen=True)
class Violation:
    round: int
    # states / overlap / number_overlap / daily_cap / after_stop / after_dnc / no_attempt / template
    # / concurrent_call / result_lost / stuck / api
    rule: str
    detail: str

    def __str__(self):
        return f"round {self.round}: [{self.rule}] {self.detail}"


@dataclasses.dataclass(frozen=True)
class SimCall:
    """One originate the simulator saw: simulated start and end (INF while live)."""

    uuid: str
    start: float
    end: float


@dataclasses.dataclass
class Journal:
    """What the HTTP clients were told (200s only) and the faults that ended calls, in simulated time.

    accepted: (queue, id) of every customer an import accepted; dnc: (queue, id) -> time
    the first DNC of it was acknowledged; stopped: queue -> [[stop acknowledged, start sent
    or None]], intervals in which the queue was surely stopped; restarts: simulator index ->
    its restart times (a call it dropped ended then); limits: queue -> [[import sent, its
    answer (any: a 503 may follow a commit) or INF, concurrent_call, answered 200]] of every
    import; forgotten: queue -> how many times its accepted customers were forgotten (a
    delete); walls: simulated ack time -> real wall time, to say when the daemon claimed a
    late call relative to the ack; stalls: (from, to) in which the campaign's process, and so
    its simulators, stood still (tests.soak.stalls).
    """

    accepted: set = dataclasses.field(default_factory=set)
    dnc: dict = dataclasses.field(default_factory=dict)
    stopped: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))
    restarts: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))
    limits: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))
    forgotten: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    walls: dict = dataclasses.field(default_factory=dict)
    stalls: list = dataclasses.field(default_factory=list)
    api_errors: list = dataclasses.field(default_factory=list)
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    calls: list  # [SimCall]
    customers: dict  # customer row id -> (queue code, ext_id, state)
    attempts: dict  # uuid -> (customer row id, attempt state, outcome)
    dnc: set  # (queue code, ext_id) on a DNC list
    claimed: dict = dataclasses.field(default_factory=dict)  # uuid -> attempt.started_at (daemon wall clock)
    numbers: dict = dataclasses.field(default_factory=dict)  # uuid -> the number the attempt dialled
    retired: frozenset = frozenset()  # customer row ids of deleted queues (kept for their attempts)
    today: list = dataclasses.field(default_factory=list)  # (ext_id, number) of each counted call today
    waiting: dict = dataclasses.field(default_factory=dict)  # pending customer id put off past today -> numbers
    unspoken: dict = dataclasses.field(default_factory=dict)  # failed customer id -> its cause, a template's
    sim_now: float | None = None  # the simulator's clock when the snapshot was taken
    lost: frozenset = frozenset()  # uuids of the attempts closed CALL_LOST
    queue_of: dict = dataclasses.field(default_factory=dict)  # uuid -> the queue row id of its attempt


def sim_calls(records, channels, restarts) -> list[SimCall]:
    """Every originate of the simulator, finished (records) or live (channels)."""
    calls = []
    for r in records:
        if r["event"] != "originate":
            continue
        end = r["end_time"]
        if end is None:  # dropped by a restart: it ended then
            end = min((t for t in restarts if t >= r["time"]), default=INF)
        calls.append(SimCall(r["uuid"], r["time"], end))
    calls += [SimCall(c.uuid, c.created, INF) for c in channels]
    return calls


def day_start(now: float | None = None, tz: str = TIMEZONE) -> float:
    """Local midnight of `now` (the daemon's wall clock): where its daily cap starts counting."""
    wall = dt.datetime.now(ZoneInfo(tz)) if now is None else dt.datetime.fromtimestamp(now, ZoneInfo(tz))
    return wall.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def tomorrow(now: float | None = None, tz: str = TIMEZONE) -> float:
    """Where a customer at the daily cap is put off to (the campaign's window opens at 00:00)."""
    return day_start(now, tz) + 86400 - 1


def take_snapshot(sims, reader, restarts: dict, *, now: float | None = None) -> Snapshot:
    """The calls of every simulator (`sims`, one per node, on one clock; `restarts`: each one's
    restart times by its index), then the database through `reader` (tests.soak.db.Reader)."""
    sim_now = sims[0].clock.now()
    calls = []
    for i, sim in enumerate(sims):
        calls += sim_calls(list(sim.records), list(sim.channels.values()), list(restarts.get(i, ())))
    since = day_start(now)
    rows, attempt_rows, dnc_rows, lost_rows = reader.snapshot(
        "SELECT c.id, q.code, c.ext_id, c.state, q.state, c.next_call_at, c.mobiles, c.last_cause"
        " FROM customer c JOIN queue q ON q.id = c.queue_id",
        "SELECT uuid, customer_id, state, outcome, started_at, number, queue_id FROM attempt",
        "SELECT queue_code, ext_id FROM dnc",
        "SELECT uuid FROM attempt WHERE hangup_cause = 'CALL_LOST'",
    )
    dnc = {tuple(row) for row in dnc_rows}
    lost = frozenset(uuid for (uuid,) in lost_rows)
    customers = {cid: (code, ext, state) for cid, code, ext, state, *_ in rows}
    retired = frozenset(cid for cid, _, _, _, queue_state, *_ in rows if queue_state == DELETED)
    later = tomorrow(now)
    waiting = {
        cid: json.loads(mobiles)
        for cid, _, _, state, _, next_call, mobiles, _ in rows
        if state == PENDING and next_call >= later
    }
    unspoken = {
        cid: cause for cid, _, _, state, *_, cause in rows if state == FAILED and (cause or "").startswith("TEMPLATE")
    }
    attempts = {uuid: (cid, state, result) for uuid, cid, state, result, *_ in attempt_rows}
    queue_of = {row[0]: row[6] for row in attempt_rows}
    today = [
        (customers[cid][1], number)
        for _, cid, _, result, started, number, _ in attempt_rows
        if started >= since and result not in outcome.NOT_COUNTED
    ]
    return Snapshot(
        calls,
        customers,
        attempts,
        dnc,
        {row[0]: row[4] for row in attempt_rows},
        {row[0]: row[5] for row in attempt_rows},
        retired,
        today,
        waiting,
        unspoken,
        sim_now,
        lost,
        queue_of,
    )


def check(
    snap: Snapshot, journal: Journal, round_no: int, epsilon: float, daily_cap: int = 0, grace: float = INF
) -> list[Violation]:
    """Rules 1-4 and 6 of docs/faults.md. `epsilon`: simulated seconds a claim in flight may lag a
    stop/DNC; `grace`: simulated seconds a call's result may take to be written once it ended."""
    found = []
    found += check_states(snap, journal)
    found += check_overlaps(snap)
    found += check_number_overlaps(snap)
    found += check_daily_cap(snap, daily_cap)
    found += check_concurrent_calls(snap, journal, epsilon)
    found += check_after_stop(snap, journal, epsilon)
    found += check_after_dnc(snap, journal, epsilon)
    found += check_attempt_rows(snap)
    found += check_templates(snap)
    found += check_results_recorded(snap, grace)
    return [Violation(round_no, rule, detail) for rule, detail in found]


def check_states(snap: Snapshot, journal: Journal):
    """1. Every accepted customer exists once in one known state (in the live queue of its
    code); `calling` exactly when one attempt is open (`deleted` may have one: its call goes
    on); a customer on DNC is never pending; `success` has a successful call."""
    by_key = collections.Counter((q, ext) for cid, (q, ext, _) in snap.customers.items() if cid not in snap.retired)
    for key in sorted(journal.accepted):
        if by_key[key] != 1:
            yield "states", f"accepted customer {key} has {by_key[key]} rows"
    open_by_customer = collections.Counter(cid for cid, state, _ in snap.attempts.values() if state != "done")
    succeeded = {cid for cid, _, result in snap.attempts.values() if result == "success"}
    for cid, (queue, ext, state) in snap.customers.items():
        opened = open_by_customer[cid]
        if state not in CUSTOMER_STATES:
            yield "states", f"customer {queue}/{ext} in unknown state {state!r}"
        # Deleted while in a call: the call goes on, its attempt is completed later.
        if opened > 1 or (state == CALLING) != (opened == 1) and not (state == DELETED and opened == 1):
            yield "states", f"customer {queue}/{ext} is {state} with {opened} open attempts"
        if state == PENDING and (queue, ext) in snap.dnc:
            yield "states", f"customer {queue}/{ext} is on the DNC list but pending"
        if state == "success" and cid not in succeeded:
            yield "states", f"customer {queue}/{ext} is success without a successful attempt"


def check_overlaps(snap: Snapshot):
    """2a. No person in two simulator calls at once: the same customer id in any queue (a
    deleted one included)."""

    def queue_of(uuid):
        return snap.customers[snap.attempts[uuid][0]][0]

    for ext, call, latest in _overlapping(snap, lambda uuid: snap.customers[snap.attempts[uuid][0]][1]):
        yield (
            "overlap",
            (
                f"customer {ext}: call {call.uuid} of {queue_of(call.uuid)} started at {call.start:.2f}"
                f" while {latest.uuid} of {queue_of(latest.uuid)} ran until {latest.end:.2f}"
            ),
        )


def check_number_overlaps(snap: Snapshot):
    """2b. No number in two simulator calls at once, whichever customers and queues dialled it."""
    for number, call, latest in _overlapping(snap, snap.numbers.get):
        yield (
            "number_overlap",
            (
                f"number {number}: call {call.uuid} started at {call.start:.2f}"
                f" while {latest.uuid} ran until {latest.end:.2f}"
            ),
        )


def _overlapping(snap: Snapshot, key_of):
    """(key, call, the earlier call it overlaps) for the simulator calls known to the database,
    grouped by `key_of(uuid)`."""
    groups = collections.defaultdict(list)
    for call in snap.calls:
        if call.uuid in snap.attempts:
            key = key_of(call.uuid)
            if key is not None:
                groups[key].append(call)
    for key, calls in groups.items():
        calls.sort(key=lambda c: c.start)
        latest = calls[0]
        for call in calls[1:]:
            if call.start < latest.end:
                yield key, call, latest
            if call.end > latest.end:
                latest = call


def check_daily_cap(snap: Snapshot, daily_cap: int):
    """2c. At most `daily_cap` counted calls today per customer id (all queues) and per number."""
    if not daily_cap:
        return
    for kind, counts in _calls_today(snap):
        for key, n in sorted(counts.items()):
            if n > daily_cap:
                yield "daily_cap", f"{kind} {key}: {n} calls today, the cap is {daily_cap}"


def check_concurrent_calls(snap: Snapshot, journal: Journal, epsilon: float):
    """2d. A queue's calls in progress, counted from the simulators' own calls summed over every
    node, never above the highest concurrent_call that may be in force as a call starts."""
    by_queue = collections.defaultdict(list)
    for call in snap.calls:
        if call.uuid in snap.queue_of:
            by_queue[snap.queue_of[call.uuid]].append(call)
    for calls in by_queue.values():
        code = snap.customers[snap.attempts[calls[0].uuid][0]][0]
        imports = journal.limits.get(code, ())
        least = min((value for _, _, value, _ in imports), default=0)
        ends: list[float] = []
        for call in sorted(calls, key=lambda c: c.start):
            while ends and ends[0] <= call.start:
                heapq.heappop(ends)
            heapq.heappush(ends, call.end)
            if len(ends) <= least:
                continue
            limit = _limit_at(imports, call.start, epsilon)
            if limit is not None and len(ends) > limit:
                yield (
                    "concurrent_call",
                    f"queue {code}: call {call.uuid} at {call.start:.2f} made {len(ends)} calls at once;"
                    f" its concurrent_call is {limit}",
                )


def _limit_at(imports: list, at: float, epsilon: float) -> int | None:
    """The highest concurrent_call that may be in force for a call that started at `at`, claimed
    up to `epsilon` before. An import commits, if at all, between its sending and its answer
    (a refusal or a 503 may follow a commit too), and answers may come in another order than
    the commits: any import sent by `at` may be the last one committed, unless one surely
    committed after it and before the claim (answered 200, sent after the first's answer,
    acknowledged before `at - epsilon`)."""
    latest_sure = max((sent for sent, acked, _, ok in imports if ok and acked < at - epsilon), default=float("-inf"))
    return max((value for sent, acked, value, _ in imports if sent <= at and acked >= latest_sure), default=None)


def _calls_today(snap: Snapshot):
    return (
        ("customer", collections.Counter(ext for ext, _ in snap.today)),
        ("number", collections.Counter(number for _, number in snap.today)),
    )


def _call_keys(snap: Snapshot):
    """(call, queue code, ext_id) for every simulator call the database knows."""
    for call in snap.calls:
        if call.uuid in snap.attempts:
            queue, ext, _ = snap.customers[snap.attempts[call.uuid][0]]
            yield call, queue, ext


def check_after_stop(snap: Snapshot, journal: Journal, epsilon: float):
    """3a. No originate of a queue after its stop was acknowledged, while it stayed stopped."""
    for call, queue, ext in _call_keys(snap):
        for stopped_at, started_at in journal.stopped.get(queue, ()):
            until = started_at if started_at is not None else INF
            if stopped_at + allowed_lag(journal, stopped_at, call.start, epsilon) < call.start < until:
                yield (
                    "after_stop",
                    (
                        f"{queue}/{ext} call {call.uuid} originated {call.start - stopped_at:.2f}s"
                        " (simulated) after the queue's stop was acknowledged"
                        + _claimed(snap, journal, call.uuid, stopped_at)
                    ),
                )


def check_after_dnc(snap: Snapshot, journal: Journal, epsilon: float):
    """3b. No originate of a customer after its DNC was acknowledged."""
    for call, queue, ext in _call_keys(snap):
        at = journal.dnc.get((queue, ext))
        if at is not None and call.start > at + allowed_lag(journal, at, call.start, epsilon):
            yield (
                "after_dnc",
                (
                    f"{queue}/{ext} call {call.uuid} originated {call.start - at:.2f}s"
                    " (simulated) after its DNC was acknowledged" + _claimed(snap, journal, call.uuid, at)
                ),
            )


def allowed_lag(journal: Journal, ack: float, start: float, epsilon: float) -> float:
    """How long after an ack at `ack` an originate the simulator ran at `start` may still be
    one sent before it: ε, plus the time between the two that the simulators stood still
    (an originate that came in then was run late by that much)."""
    return epsilon + sum(max(0.0, min(b, start) - max(a, ack)) for a, b in journal.stalls)


def _claimed(snap: Snapshot, journal: Journal, uuid: str, ack: float) -> str:
    """When the daemon claimed the call, relative to the ack (real seconds), when both are known."""
    wall, claimed = journal.walls.get(ack), snap.claimed.get(uuid)
    if wall is None or claimed is None:
        return ""
    return f"; claimed {abs(claimed - wall):.3f}s (real) {'before' if claimed < wall else 'after'} the ack"


def check_attempt_rows(snap: Snapshot):
    """4. Every call the simulator saw has its attempt row."""
    for call in snap.calls:
        if call.uuid not in snap.attempts:
            yield "no_attempt", f"simulator call {call.uuid} at {call.start:.2f} has no attempt row"


def check_templates(snap: Snapshot):
    """5. Nobody ends failed, never called, because a template could not speak to it: the import
    checked it, and a template changed since stops the queue instead (docs/daemon.md)."""
    for cid, cause in snap.unspoken.items():
        queue, ext, _ = snap.customers[cid]
        yield "template", f"customer {queue}/{ext} failed without a call: {cause[:200]}"


def check_results_recorded(snap: Snapshot, grace: float):
    """6a. Every call the simulator ended more than `grace` ago has its attempt closed: its result
    was written (or, after a lost connection, the call was reconciled), not dropped."""
    if snap.sim_now is None:
        return
    for call in snap.calls:
        state = snap.attempts.get(call.uuid, (None, "done"))[1]
        if state != "done" and call.end < snap.sim_now - grace:
            yield (
                "result_lost",
                f"simulator call {call.uuid} ended {snap.sim_now - call.end:.0f}s (simulated) ago; its attempt is"
                f" still {state}",
            )


def check_none_lost(snap: Snapshot, before: frozenset, fault: str, round_no: int) -> list[Violation]:
    """6b. A fault that leaves the daemon connected to the switch (the database's) closes no call
    as CALL_LOST: the calls' results wait for the database, they are not given up."""
    new = sorted(snap.lost - before)
    if not new:
        return []
    detail = f"{len(new)} calls closed CALL_LOST in a {fault} round, which never cut the daemon off the switch"
    return [Violation(round_no, "result_lost", f"{detail}: {', '.join(new[:3])}")]


def check_drained(snap: Snapshot, round_no: int, live_channels: int, daily_cap: int = 0) -> list[Violation]:
    """5. After the final drain: nobody pending or calling, no attempt open, no channel left;
    but for customers put off until tomorrow because their id or a number is at the daily cap."""
    (_, by_id), (_, by_number) = _calls_today(snap)

    def capped(cid):
        ext = snap.customers[cid][1]
        return (
            daily_cap
            and cid in snap.waiting
            and (by_id[ext] >= daily_cap or any(by_number[n] >= daily_cap for n in snap.waiting[cid]))
        )

    found = [
        Violation(round_no, "stuck", f"customer {q}/{ext} still {state}")
        for cid, (q, ext, state) in snap.customers.items()
        if state == CALLING or (state == PENDING and not capped(cid))
    ]
    found += [
        Violation(round_no, "stuck", f"attempt {uuid} still {state}")
        for uuid, (_, state, _) in snap.attempts.items()
        if state != "done"
    ]
    if live_channels:
        found.append(Violation(round_no, "stuck", f"{live_channels} simulator channels still live"))
    return found
