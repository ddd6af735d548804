"""The stored call schedule follows a step of the wall clock.

`next_call_at` is wall time (it must survive a restart), but what it means is a duration: "call
again 60 s after this one ended", "due since the import". When the wall clock is stepped
(NTP, an operator's `date -s`), the dialer tells `follow_wall_step`, which moves every pending
customer's time so that the wait left is what it was:

- a time still ahead in the old reckoning (`> expected`) moves by the step;
- a time already due in the old reckoning stays due: it is kept, or brought down to the new
  wall time when the clock went back past it (a customer imported a second before a step back
  of ten minutes is not made to wait those ten minutes).
"""

from __future__ import annotations

import peewee as pw

from daemon.store.schema import execute
from daemon.store.states import PENDING


def follow_wall_step(db: pw.Database, *, expected: float, jump: float, wall: float) -> int:
    """The wall clock reads `wall` where `expected` (= wall - jump) was due; returns how many
    pending customers' times moved."""
    cursor = execute(
        db,
        "UPDATE customer SET next_call_at = CASE WHEN next_call_at > ? THEN next_call_at + ?"
        " ELSE ? END WHERE state = ? AND (next_call_at > ? OR next_call_at > ?)",
        (expected, jump, wall, PENDING, expected, wall),
    )
    return cursor.rowcount
