"""Simulated time: the switch's clock runs 1/time_scale times faster than the real one."""

import time


class SimClock:
    """`now()` is simulated epoch seconds, starting at the real wall time; `real(s)` converts a
    simulated duration into real seconds to sleep. time_scale=0.01 makes 100 s pass in 1 s."""

    def __init__(self, scale=1.0, wall=time.time, monotonic=time.monotonic):
        if scale <= 0:
            raise ValueError('time scale must be > 0')
        self.scale = scale
        self._monotonic = monotonic
        self._wall0 = wall()
        self._mono0 = monotonic()

    def now(self):
        return self._wall0 + (self._monotonic() - self._mono0) / self.scale

    def to_wall(self, simulated):
        """The real epoch time at which the clock showed `simulated` (None stays None)."""
        if simulated is None:
            return None
        return self._wall0 + (simulated - self._wall0) * self.scale

    def real(self, seconds):
        return max(0.0, seconds * self.scale)
