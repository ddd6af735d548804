"""The stored call schedule follows a step of the wall clock.

`next_call_at` is wall time (it must survive a restart), but what it means is either "due"
(an import stamps the moment it was written: `next_call_at <= updated_at`) or a wait ("call
again 60 s after this one ended": `next_call_at > updated_at`, written only by the daemon).
When the wall clock is stepped (NTP, an operator's `date -s`) the dialer calls
`follow_wall_step` before it writes anything read after the step, and each keeps its meaning:

- a wait still ahead in the old reckoning (`> expected`) moves by the step, and its
  `updated_at` with it (both now of the new reckoning, so it stays a wait);
- what was due stays due: kept, or brought down to the new wall time when the clock went back
  past it (a customer imported a second before a step back of ten minutes does not wait those
  ten minutes, nor does one whose wait for a recall had run out). A due stamp is never moved
  forward: the API may already have written it in the new reckoning, before the daemon noticed
  the step.

What was read before a step back and written after the move (a call's result, an import)
is in the old reckoning: `bring_due_down`, a few seconds later, moves it too.

A wait another daemon of the host wrote in the new reckoning before this one noticed the step
is told apart by its `updated_at`, past the old reckoning's "now", after a step forward; after
a step back it cannot be, and such a wait (written within the instant between the step and
the first daemon's look) comes due early by the step. Daemons on different hosts sharing one
PostgreSQL write waits each in its own host's reckoning; keep their clocks in step (NTP
slewing, chrony without `makestep` after boot): a step on one host moves the waits the
others wrote too.
"""

from __future__ import annotations

import peewee as pw

from daemon.store.schema import execute
from daemon.store.states import PENDING

SIBLING_WINDOW = 60.0  # seconds within which the same step seen by another daemon is the same step


def follow_wall_step(db: pw.Database, *, expected: float, jump: float, wall: float) -> int:
    """The wall clock reads `wall` where `expected` (= wall - jump) was due; returns how many
    pending customers' times moved. Several daemons of one host on one database (PostgreSQL,
    `autocall-daemon@`) all see the same step: the first to write moves the waits and records
    it (`wall_step`); the others find it there and move only what was due (a second move would
    put every wait `jump` further)."""
    seen = execute(
        db,
        "SELECT 1 FROM wall_step WHERE jump = ? AND seen_at BETWEEN ? AND ?",
        (jump, wall - SIBLING_WINDOW, wall + SIBLING_WINDOW),
    ).fetchone()
    if seen is not None:
        return bring_due_down(db, wall=wall)
    execute(db, "DELETE FROM wall_step WHERE seen_at < ?", (wall - 86400,))
    execute(db, "INSERT INTO wall_step (jump, seen_at) VALUES (?, ?)", (jump, wall))
    run_out = 0
    if jump < 0:
        # A wait that had run out by the old clock but was not claimed yet (slots full, just due)
        # stays due. First, while the waits still ahead are not yet where the step moves them.
        run_out = execute(
            db,
            "UPDATE customer SET next_call_at = ? WHERE state = ? AND next_call_at > updated_at"
            " AND next_call_at <= ? AND next_call_at > ?",
            (wall, PENDING, expected, wall),
        ).rowcount
    # Only waits written in the old reckoning (`updated_at` up to its "now"): another daemon of
    # the host may have written one in the new reckoning before this one noticed the step.
    waits = execute(
        db,
        "UPDATE customer SET next_call_at = next_call_at + ?, updated_at = updated_at + ?"
        " WHERE state = ? AND next_call_at > updated_at AND next_call_at > ? AND updated_at <= ?",
        (jump, jump, PENDING, expected, expected),
    ).rowcount
    return waits + run_out + bring_due_down(db, wall=wall)


def bring_due_down(db: pw.Database, *, wall: float, jump: float = 0.0) -> int:
    """After a step back by `jump` (< 0), what was read before the step and written after
    `follow_wall_step` (the dialer looks again a few seconds later): a call's result that
    put its customer off by a minute in the old reckoning (`updated_at` ahead of `wall` by
    more than half the step: no clock of the new reckoning wrote it) moves by the step; a due
    stamp an API request wrote ahead of `wall` is brought down to it. Returns how many moved."""
    late = 0
    if jump < 0:
        late = execute(
            db,
            "UPDATE customer SET next_call_at = next_call_at + ?, updated_at = updated_at + ?"
            " WHERE state = ? AND updated_at > ?",
            (jump, jump, PENDING, wall - jump / 2),
        ).rowcount
    due = execute(
        db,
        "UPDATE customer SET next_call_at = ? WHERE state = ? AND next_call_at <= updated_at AND next_call_at > ?",
        (wall, PENDING, wall),
    ).rowcount
    return late + due
