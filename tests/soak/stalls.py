"""How long the campaign's own process stood still: its simulators run in it.

A greenlet sleeps STEP and notes each wake-up more than LATE behind (the host gave the process
no CPU, or its event loop was busy elsewhere). An originate that reached a simulator during
such a stall was run that much later than the daemon sent it: the switch's lag, which rule 3
of docs/faults.md adds to its ε (`checks.allowed_lag`).
"""

from __future__ import annotations

import time

import gevent

STEP = 0.02  # real seconds between looks
LATE = 0.05  # a wake-up this much behind (real seconds) is a stall


class StallMeter:
    """Runs from start() to stop(); `stalls` are (from, to) on `clock` (the simulators' clock),
    the time each late wake-up was overdue."""

    def __init__(self, clock):
        self.clock = clock
        self.stalls: list[tuple[float, float]] = []
        self._greenlet = None

    def start(self):
        self._greenlet = gevent.spawn(self._run)
        return self

    def stop(self):
        if self._greenlet is not None:
            self._greenlet.kill()

    def longest(self) -> float:
        """The longest stall in real seconds."""
        return max((b - a for a, b in self.stalls), default=0.0) * self.clock.scale

    def _run(self):
        while True:
            asleep = time.monotonic()
            gevent.sleep(STEP)
            late = time.monotonic() - asleep - STEP
            if late > LATE:
                now = self.clock.now()
                self.stalls.append((now - late / self.clock.scale, now))
