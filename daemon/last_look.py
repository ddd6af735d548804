"""The store's last look before an originate: who, of what was claimed, may still be called.

A claim commits a customer into `calling`; the originate goes some time later (the batch comes
back from the ledger thread and its scripts are prepared; on a loaded host a call's greenlet
starts late). A stop, DNC or delete acknowledged by the API in between must still keep that
customer uncalled (DESIGN §3), so:

- the **second look**: a batch ready more than FRESH_CLAIM (real) seconds after it was asked
  for is read once more (`customers.still_to_dial`) before its originates go;
- the **third look**: a call whose greenlet starts more than LATE_LOOK seconds after that look
  reads it again for itself, with nothing between that read and the originate's send.

Each look, and the one before a trunk failover's next leg, also asks whether the calling
window is still open: a claim can wait for the write lock (another node, an import's chunk) past
the window's end, and a first leg can take half a minute to fail.

A claim withdrawn (or not confirmed because the database cannot be read) is closed `not_dialed`
by the caller with the cause returned here; its customer keeps its place.
"""

from __future__ import annotations

import logging
import time

from daemon.ledger import Claim, StoreUnavailable
from daemon.outage import DatabaseOutage

log = logging.getLogger("autocall.dialer")

# A claimed batch ready to originate within this many (real) seconds of asking for it goes at
# once; one that took longer (a loaded host) asks the store again who may still be called.
FRESH_CLAIM = 0.05
# A call whose greenlet starts this many (real) seconds after that look asks once more.
LATE_LOOK = 0.25

WITHDRAWN = "WITHDRAWN_BEFORE_DIAL"  # stopped, on a DNC list or deleted since the claim
UNREADABLE = "DATABASE_UNAVAILABLE_BEFORE_DIAL"
WINDOW_CLOSED = "WINDOW_CLOSED_BEFORE_DIAL"  # the calling window (or its day) closed since the claim
UNCONFIRMED = "CLAIM_UNCONFIRMED_BEFORE_DIAL"  # committed by a claim that failed as far as we heard


class LastLook:
    """The looks, on `ledger`; a database that cannot be read is reported to `outage`;
    `window_open()` says whether a call may start now by the calling window."""

    def __init__(self, ledger, outage: DatabaseOutage, window_open=lambda: True):
        self.ledger, self.outage, self.window_open = ledger, outage, window_open

    def batch(self, claims: list[Claim], *, asked_at: float) -> tuple[set[int], str, float]:
        """Of a batch asked for at `asked_at` (real monotonic time): the attempt ids that may be
        dialed, the cause for the others, and when the store last looked at them."""
        now = time.monotonic()
        if not self.window_open():
            return set(), WINDOW_CLOSED, now
        if now - asked_at < FRESH_CLAIM:
            return {c.attempt_id for c in claims}, WITHDRAWN, asked_at
        try:
            return self.ledger.still_to_dial(claims), WITHDRAWN, now
        except StoreUnavailable as e:
            self.outage.failed(e)
            return set(), UNREADABLE, now

    def late(self, claim: Claim, looked_at: float | None) -> str | None:
        """None when the call may originate now; else why not. Reads the store only when its
        greenlet runs more than LATE_LOOK after the last look (`looked_at`; None: no look is
        owed, e.g. a call re-attached after a reconnect)."""
        if looked_at is None:
            return None
        if not self.window_open():
            return WINDOW_CLOSED
        if time.monotonic() - looked_at <= LATE_LOOK:
            return None
        try:
            if claim.attempt_id in self.ledger.still_to_dial([claim]):
                return None
            return WITHDRAWN
        except StoreUnavailable as e:
            self.outage.failed(e)
            return UNREADABLE
