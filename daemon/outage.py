"""Database outages as the dialer lives through them: one episode at a time, said once.

A write or a claim that fails because the database is unavailable for now
(`store.schema.StoreUnavailable`: a write lock held past the busy timeout, a read-only file, a
full disk, an I/O error) starts an episode: one WARNING, and the dialer stops claiming while
the ledger keeps the writes in memory and retries them. The first write (or claim) that
lands again ends it: one INFO with how long it lasted and how many writes had waited.
`describe()` is the line `systemctl status` (STATUS=) and `autocall status` show meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

log = logging.getLogger("autocall.database")


class DatabaseOutage:
    """The database as the dialer sees it. `waiting` (writes held in memory) is kept by the
    ledger thread; `monotonic` times the episode, `clock` says when it began."""

    def __init__(self, *, monotonic=time.monotonic, clock=time.time) -> None:
        self.monotonic, self.clock = monotonic, clock
        self.since: float | None = None  # monotonic start of the episode, None while writable
        self.since_wall: float | None = None
        self.reason = ""  # the latest error of the episode
        self.waiting = 0

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, error: Exception):
        """A write or claim failed for a reason that may pass; the first one starts an episode."""
        self.reason = str(error)
        if self.active:
            return
        self.since, self.since_wall = self.monotonic(), self.clock()
        log.warning(
            "%s: dialing paused; calls in progress go on and their results wait in memory until they can be written",
            error,
        )

    def landed(self, writes: int = 0):
        """A transaction committed carrying `writes` writes that had waited; ends the episode."""
        if not self.active:
            return
        assert self.since is not None
        log.info(
            "database writable again after %.1fs: %d writes that waited in memory are written; dialing resumes",
            self.monotonic() - self.since,
            writes,
        )
        self.since = self.since_wall = None
        self.reason = ""

    def describe(self, tz: dt.tzinfo | None = None) -> str:
        """One line: empty while the database is writable."""
        if not self.active:
            return ""
        assert self.since_wall is not None
        since = dt.datetime.fromtimestamp(self.since_wall, tz).strftime("%H:%M:%S")
        return f"database unavailable since {since} ({self.reason}): dialing paused, {self.waiting} writes waiting"
