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
  ten minutes). A due stamp is never moved forward: the API may already have written it in the
  new reckoning, before the daemon noticed the step.
"""

from __future__ import annotations

import peewee as pw

from daemon.store.schema import execute
from daemon.store.states import PENDING


def follow_wall_step(db: pw.Database, *, expected: float, jump: float, wall: float) -> int:
    """The wall clock reads `wall` where `expected` (= wall - jump) was due; returns how many
    pending customers' times moved."""
    waits = execute(
        db,
        "UPDATE customer SET next_call_at = next_call_at + ?, updated_at = updated_at + ?"
        " WHERE state = ? AND next_call_at > updated_at AND next_call_at > ?",
        (jump, jump, PENDING, expected),
    ).rowcount
    return waits + bring_due_down(db, wall=wall)


def bring_due_down(db: pw.Database, *, wall: float) -> int:
    """Due stamps ahead of `wall` brought down to it: after a step back, an API request that read
    the clock before the step may commit after `follow_wall_step` (the dialer looks again a few
    seconds later). Returns how many moved."""
    return execute(
        db,
        "UPDATE customer SET next_call_at = ? WHERE state = ? AND next_call_at <= updated_at AND next_call_at > ?",
        (wall, PENDING, wall),
    ).rowcount
