"""The campaign's invariants, checked on a snapshot of the simulator and the database.

Pure functions: `take_snapshot()` reads the simulator (no yield in between, so its records
and live channels agree) and then the SQLite file in one read transaction; `check()`
returns every broken rule as a `Violation`. Nothing here knows how the faults were made.
"""
from __future__ import annotations

import collections
import dataclasses
import sqlite3
from pathlib import Path

from daemon.store.states import CALLING, CUSTOMER_STATES, PENDING

INF = float("inf")


@dataclasses.dataclass(frozen=True)
class Violation:
    round: int
    rule: str       # states / overlap / after_stop / after_dnc / no_attempt / stuck / api
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
    or None]], intervals in which the queue was surely stopped; restarts: simulator restart
    times (a call it dropped ended then); walls: simulated ack time -> real wall time, to say
    when the daemon claimed a late call relative to the ack.
    """
    accepted: set = dataclasses.field(default_factory=set)
    dnc: dict = dataclasses.field(default_factory=dict)
    stopped: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))
    restarts: list = dataclasses.field(default_factory=list)
    walls: dict = dataclasses.field(default_factory=dict)
    api_errors: list = dataclasses.field(default_factory=list)
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    calls: list               # [SimCall]
    customers: dict           # customer row id -> (queue code, ext_id, state)
    attempts: dict            # uuid -> (customer row id, attempt state, outcome)
    dnc: set                  # (queue code, ext_id) on a DNC list
    claimed: dict = dataclasses.field(default_factory=dict)  # uuid -> attempt.started_at (daemon wall clock)


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


def take_snapshot(sim, db_path: Path, restarts) -> Snapshot:
    calls = sim_calls(list(sim.records), list(sim.channels.values()), list(restarts))
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN")  # one read transaction: a consistent view however writers race
        customers = {row[0]: row[1:] for row in conn.execute(
            "SELECT c.id, q.code, c.ext_id, c.state FROM customer c JOIN queue q ON q.id = c.queue_id")}
        rows = conn.execute("SELECT uuid, customer_id, state, outcome, started_at FROM attempt").fetchall()
        dnc = set(conn.execute("SELECT queue_code, ext_id FROM dnc"))
        conn.execute("COMMIT")
    finally:
        conn.close()
    attempts = {uuid: (cid, state, result) for uuid, cid, state, result, _ in rows}
    return Snapshot(calls, customers, attempts, dnc, {row[0]: row[4] for row in rows})


def check(snap: Snapshot, journal: Journal, round_no: int, epsilon: float) -> list[Violation]:
    """Rules 1-4 of docs/faults.md. `epsilon`: simulated seconds a claim in flight may lag a stop/DNC."""
    found = []
    found += check_states(snap, journal)
    found += check_overlaps(snap)
    found += check_after_stop(snap, journal, epsilon)
    found += check_after_dnc(snap, journal, epsilon)
    found += check_attempt_rows(snap)
    return [Violation(round_no, rule, detail) for rule, detail in found]


def check_states(snap: Snapshot, journal: Journal):
    """1. Every accepted customer exists once in one known state; `calling` exactly when one
    attempt is open; a customer on DNC is never pending; `success` has a successful call."""
    by_key = collections.Counter((q, ext) for q, ext, _ in snap.customers.values())
    for key in sorted(journal.accepted):
        if by_key[key] != 1:
            yield "states", f"accepted customer {key} has {by_key[key]} rows"
    open_by_customer = collections.Counter(cid for cid, state, _ in snap.attempts.values() if state != "done")
    succeeded = {cid for cid, _, result in snap.attempts.values() if result == "success"}
    for cid, (queue, ext, state) in snap.customers.items():
        opened = open_by_customer[cid]
        if state not in CUSTOMER_STATES:
            yield "states", f"customer {queue}/{ext} in unknown state {state!r}"
        if (state == CALLING) != (opened == 1) or opened > 1:
            yield "states", f"customer {queue}/{ext} is {state} with {opened} open attempts"
        if state == PENDING and (queue, ext) in snap.dnc:
            yield "states", f"customer {queue}/{ext} is on the DNC list but pending"
        if state == "success" and cid not in succeeded:
            yield "states", f"customer {queue}/{ext} is success without a successful attempt"


def check_overlaps(snap: Snapshot):
    """2. No customer in two simulator calls at once."""
    by_customer = collections.defaultdict(list)
    for call in snap.calls:
        if call.uuid in snap.attempts:
            by_customer[snap.attempts[call.uuid][0]].append(call)
    for cid, calls in by_customer.items():
        calls.sort(key=lambda c: c.start)
        latest = calls[0]
        for call in calls[1:]:
            if call.start < latest.end:
                queue, ext, _ = snap.customers[cid]
                yield "overlap", (f"customer {queue}/{ext}: call {call.uuid} started at {call.start:.2f}"
                                  f" while {latest.uuid} ran until {latest.end:.2f}")
            if call.end > latest.end:
                latest = call


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
            if stopped_at + epsilon < call.start < (started_at if started_at is not None else INF):
                yield "after_stop", (f"{queue}/{ext} call {call.uuid} originated {call.start - stopped_at:.2f}s"
                                     " (simulated) after the queue's stop was acknowledged"
                                     + _claimed(snap, journal, call.uuid, stopped_at))


def check_after_dnc(snap: Snapshot, journal: Journal, epsilon: float):
    """3b. No originate of a customer after its DNC was acknowledged."""
    for call, queue, ext in _call_keys(snap):
        at = journal.dnc.get((queue, ext))
        if at is not None and call.start > at + epsilon:
            yield "after_dnc", (f"{queue}/{ext} call {call.uuid} originated {call.start - at:.2f}s"
                                " (simulated) after its DNC was acknowledged" + _claimed(snap, journal, call.uuid, at))


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


def check_drained(snap: Snapshot, round_no: int, live_channels: int) -> list[Violation]:
    """5. After the final drain: nobody pending or calling, no attempt open, no channel left."""
    found = [Violation(round_no, "stuck", f"customer {q}/{ext} still {state}")
             for q, ext, state in snap.customers.values() if state in (PENDING, CALLING)]
    found += [Violation(round_no, "stuck", f"attempt {uuid} still {state}")
              for uuid, (_, state, _) in snap.attempts.items() if state != "done"]
    if live_channels:
        found.append(Violation(round_no, "stuck", f"{live_channels} simulator channels still live"))
    return found
