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

    def available(self, now: float) -> int:
        """Whole tokens there now (none taken)."""
        self._fill(now)
        return int(self.tokens)

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


CALENDAR_HORIZON = 800  # days looked ahead for the next open moment (beyond: nothing is open)


class CallingWindow:
    """Local hours when calls may start, on the local days that are not closed (blackout dates:
    Tết, public holidays; closed weekdays, 0 = Monday), and local-day arithmetic for the daily
    cap. A moment is open when its local date is not closed and its local time is in the
    window; a window across midnight is closed after midnight on a closed date too."""

    def __init__(
        self,
        start: dt.time,
        end: dt.time,
        tz: ZoneInfo,
        *,
        closed_dates: frozenset[dt.date] = frozenset(),
        closed_weekdays: frozenset[int] = frozenset(),
    ):
        self.start, self.end, self.tz = start, end, tz
        self.closed_dates, self.closed_weekdays = closed_dates, closed_weekdays

    def _local(self, now: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(now, self.tz)

    def closed_on(self, day: dt.date) -> str | None:
        """Why no call starts on local date `day` ("closed date", "closed weekday"), or None."""
        if day in self.closed_dates:
            return "closed date"
        if day.weekday() in self.closed_weekdays:
            return "closed weekday"
        return None

    def _in_hours(self, t: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end  # a window across midnight

    def is_open(self, now: float) -> bool:
        local = self._local(now)
        return self._in_hours(local.time()) and self.closed_on(local.date()) is None

    def spans(self, now: float):
        """The open spans from `now` on, as (start, end) Unix seconds, in order, merged across
        midnight; the first may have begun before `now`. Ends after CALENDAR_HORIZON days."""
        day = self._local(now).date() - dt.timedelta(days=1)
        current: list[float] | None = None
        for _ in range(CALENDAR_HORIZON):
            for begin, end in self.day_spans(day):
                if current is not None and begin <= current[1]:
                    current[1] = max(current[1], end)
                    continue
                if current is not None and current[1] > now:
                    yield current[0], current[1]
                current = [begin, end]
            day += dt.timedelta(days=1)
        if current is not None and current[1] > now:
            yield current[0], current[1]

    def day_spans(self, day: dt.date) -> list[tuple[float, float]]:
        """The open spans of one local date (none on a closed one)."""
        if self.closed_on(day) is not None:
            return []
        midnight = dt.datetime.combine(day, dt.time(0), self.tz)
        next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), self.tz)

        def at(t: dt.time) -> float:
            return next_midnight.timestamp() if t == dt.time.max else dt.datetime.combine(day, t, self.tz).timestamp()

        if self.start <= self.end:
            return [(at(self.start), at(self.end))]
        return [(midnight.timestamp(), at(self.end)), (at(self.start), next_midnight.timestamp())]

    def next_open(self, now: float) -> float:
        """The next moment the window opens (now, if it is open); CALENDAR_HORIZON days on when
        every day up to then is closed."""
        if self.is_open(now):
            return now
        for begin, _end in self.spans(now):
            return max(begin, now)
        return now + CALENDAR_HORIZON * 86400.0

    def day_start(self, now: float) -> float:
        """Local midnight of `now`'s day: the daily cap counts calls from here."""
        local = self._local(now)
        return dt.datetime.combine(local.date(), dt.time(0), self.tz).timestamp()

    def next_day_open(self, now: float) -> float:
        """When the window opens on a later local day than `now`'s (its first open day)."""
        local = self._local(now)
        return self.next_open(dt.datetime.combine(local.date() + dt.timedelta(days=1), self.start, self.tz).timestamp())


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
