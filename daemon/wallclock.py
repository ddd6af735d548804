"""The daemon's wall clock: every reading goes through `WallClock.now`, so a step of the clock
(NTP, an operator's `date -s`) is noticed at the first reading after it, logged once, and the
stored schedule follows the step (`store/schedule.py`) before anything read after it is
written (docs/daemon.md, "The clock rule")."""

from __future__ import annotations

import logging
import time

import gevent.lock

from daemon.pacing import WallWatch

log = logging.getLogger("autocall.dialer")

DUE_RECHECK = 5.0  # after a step back, the schedule is looked at again (writes in flight at the step)


class WallClock:
    """`read` is the wall clock, `monotonic` the clock of every wait; `ledger` moves the
    schedule (Ledger or LedgerThread)."""

    def __init__(self, ledger, read=time.time, monotonic=time.monotonic):
        self.ledger, self.read, self.monotonic = ledger, read, monotonic
        self._watch = WallWatch()
        self._lock = gevent.lock.Semaphore()
        self._recheck: tuple[float, float] | None = None  # (monotonic, step back): look again then

    def now(self) -> float:
        """Wall time, after the schedule has followed any step before it."""
        with self._lock:  # while a step is followed, nobody reads the new time
            wall = self.read()
            jump = self._watch.step(wall, self.monotonic())
            if jump is not None:
                self._follow(wall, jump)
        return wall

    def tick(self, now: float, wall: float):
        """The dialer's turn at monotonic `now`: the second look after a step back, when it is time."""
        if self._recheck is not None and now >= self._recheck[0]:
            jump, self._recheck = self._recheck[1], None
            self._bring_due_down(wall, jump)

    def _follow(self, wall: float, jump: float):
        if jump < 0:
            self._recheck = (self.monotonic() + DUE_RECHECK, jump)
        try:
            moved = self.ledger.follow_wall_step(expected=wall - jump, jump=jump, wall=wall)
        except Exception:  # noqa: BLE001 - a stale schedule is a late call, not a reason to stop
            log.exception("the wall clock stepped %+.0fs; moving the waiting customers' times failed", jump)
            return
        log.warning(
            "the wall clock stepped %+.0fs; pacing goes on by the monotonic clock, the calling "
            "window by the new wall time; %s waiting customers keep the wait they had",
            jump,
            "the" if moved is None else moved,  # None: written once the database takes writes
        )

    def _bring_due_down(self, wall: float, jump: float):
        try:
            moved = self.ledger.bring_due_down(wall=wall, jump=jump)
        except Exception:  # noqa: BLE001 - as in _follow
            log.exception("bringing due customers' times down to the stepped wall clock failed")
            return
        if moved:
            log.info("%d customers written in the time before the wall clock stepped back follow the step", moved)
