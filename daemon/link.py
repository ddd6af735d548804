"""The dialer's one ESL connection, kept alive: connect, back off, tell whether it is healthy.

`Link` holds at most one connected client. When it is down, `open(now, then)` makes one try
(a new client object each time, as greenswitch needs) and runs `then(client)` on it (the
dialer reconciles there); a failure of either (`then` raising daemon.errors.Unavailable
included) schedules the next try with a doubling backoff.
Time is the caller's monotonic `now`, so tests step the backoff without sleeping.
"""

from __future__ import annotations

import logging

from daemon import esl as esl_mod
from daemon.errors import ConfigError, Unavailable

log = logging.getLogger("autocall.link")

BACKOFF_FIRST = 0.5  # seconds before the second try
BACKOFF_MAX = 30.0  # the loop comes round at least this often while FreeSWITCH is away
AUTH_TRIES = 3  # refusals of the ESL password in a row before it counts as configuration


class Link:
    """`connect()` returns a new, connected ESL client or raises (ESLError, OSError)."""

    def __init__(self, connect, heartbeat_timeout: float):
        self.connect = connect
        self.heartbeat_timeout = heartbeat_timeout
        self.client = None
        self.retry_at = float("-inf")  # monotonic time of the next try
        self._backoff = BACKOFF_FIRST
        self._refusals = 0

    @property
    def up(self) -> bool:
        """A client is connected and its connection not known dead."""
        return self.client is not None and not self.client.dead.is_set()

    def wait(self, now: float) -> float:
        """Seconds until the next try may go (0: now)."""
        return max(0.0, self.retry_at - now)

    def open(self, now: float, then=lambda client: None):
        """One try, if due: connect and run `then(client)`. Returns the client once both
        succeeded, else None (logged; the next try is scheduled). Raises ConfigError when
        FreeSWITCH refused the password AUTH_TRIES times in a row: retrying cannot fix that."""
        if self.up or now < self.retry_at:
            return self.client if self.up else None
        try:
            self.client = self.connect()
            then(self.client)
        except esl_mod.ESLAuthError as e:
            self._refusals += 1
            if self._refusals >= AUTH_TRIES:
                raise ConfigError(
                    f"esl.password: FreeSWITCH refused it {self._refusals} times in a row; set "
                    "esl.password (AUTOCALL_ESL_PASSWORD) to the password in "
                    "event_socket.conf.xml"
                ) from None
            log.error("%s: check esl.password / AUTOCALL_ESL_PASSWORD; retrying in %.1fs", e, self._backoff)
            return self._failed(now)
        except (esl_mod.ESLError, OSError) as e:
            log.warning("FreeSWITCH not reachable (%s); no calls until it is; retrying in %.1fs", e, self._backoff)
            return self._failed(now)
        except Unavailable as e:  # `then` lacks something else (the database): said where it failed
            log.debug("connected, but %s; retrying in %.1fs", e, self._backoff)
            return self._failed(now)
        self._backoff, self._refusals = BACKOFF_FIRST, 0
        return self.client

    def _failed(self, now: float):
        if self.client is not None:
            self.client.close()
        self.client = None
        self.retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        return None

    def healthy(self, now: float) -> bool:
        """Connected, reader alive, a HEARTBEAT within heartbeat_timeout of monotonic `now`
        (the systemd watchdog's STATUS asks)."""
        client = self.client
        if client is None or not client.is_alive() or client.last_heartbeat is None:
            return False
        return now - client.last_heartbeat < self.heartbeat_timeout

    def close(self):
        if self.client is not None:
            self.client.close()
