"""Limits on when and how fast the dialer may call: a token bucket and the calling window.

Both take `now` as an argument, so tests step through hours at once. The clock rule: the
bucket (and every wait of the dialer's loop) runs on the monotonic clock, so a wall clock
stepped back cannot stop dialing; the window, the day and what is stored use wall time
(Unix seconds). `WallWatch` notices a step of the wall clock so it can be logged.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


class TokenBucket:
    """At most `rate` takes per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float, now: float):
        self.rate, self.burst = rate, max(1.0, burst)
        self.tokens, self.stamp = self.burst, now

    def _fill(self, now: float):
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> bool:
        """Use one token if there is one."""
        self._fill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def take_up_to(self, n: int, now: float) -> int:
        """Use as many whole tokens as there are, at most `n`; how many were taken."""
        self._fill(now)
        taken = min(n, int(self.tokens))
        self.tokens -= taken
        return taken

    def give_back(self, n: int = 1):
        """Return tokens that were taken but not used (nobody to dial)."""
        self.tokens = min(self.burst, self.tokens + n)

    def wait(self, now: float) -> float:
        """Seconds until a token will be there."""
        self._fill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


def bucket_for(cps: float, now: float) -> TokenBucket:
    """A bucket for `cps` originates per second, smooth to a tenth of a second."""
    return TokenBucket(cps, burst=cps / 10, now=now)


class CallingWindow:
    """Local hours when calls may start, and local-day arithmetic for the daily cap."""

    def __init__(self, start: dt.time, end: dt.time, tz: ZoneInfo):
        self.start, self.end, self.tz = start, end, tz

    def _local(self, now: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(now, self.tz)

    def is_open(self, now: float) -> bool:
        t = self._local(now).time()
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end  # a window across midnight

    def next_open(self, now: float) -> float:
        """The next moment the window opens (now, if it is open)."""
        if self.is_open(now):
            return now
        local = self._local(now)
        opening = dt.datetime.combine(local.date(), self.start, self.tz)
        if opening <= local:
            opening = dt.datetime.combine(local.date() + dt.timedelta(days=1), self.start, self.tz)
        return opening.timestamp()

    def day_start(self, now: float) -> float:
        """Local midnight of `now`'s day: the daily cap counts calls from here."""
        local = self._local(now)
        return dt.datetime.combine(local.date(), dt.time(0), self.tz).timestamp()

    def next_day_open(self, now: float) -> float:
        """When the window opens on the next local day."""
        local = self._local(now)
        return dt.datetime.combine(local.date() + dt.timedelta(days=1), self.start, self.tz).timestamp()


WALL_STEP = 5.0  # seconds wall and monotonic time may drift apart between two looks before it is a step


class WallWatch:
    """Notices the wall clock being stepped (NTP, an operator's `date -s`): between two looks
    the wall and the monotonic clock advanced by more than WALL_STEP apart."""

    def __init__(self):
        self._last: tuple[float, float] | None = None

    def step(self, wall: float, monotonic: float) -> float | None:
        """The wall clock's step since the previous look, in seconds (negative: back), or None.
        Each step is reported once: the next look compares with this one."""
        last, self._last = self._last, (wall, monotonic)
        if last is None:
            return None
        jump = (wall - last[0]) - (monotonic - last[1])
        return jump if abs(jump) > WALL_STEP else None
