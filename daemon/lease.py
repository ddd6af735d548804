"""This dialer's side of the node lease (daemon/store/nodes.py): a heartbeat row every BEAT
seconds, written with the other writes, and the taking over of a dead node's open calls."""

from __future__ import annotations

import logging

from daemon.store.schema import StoreUnavailable

log = logging.getLogger("autocall.dialer")

BEAT = 5.0  # seconds between heartbeats


class NodeLease:
    def __init__(self, ledger):
        self.ledger = ledger
        self._due = float("-inf")

    def tick(self, now: float, *, grace: float, recall_delay: float, status=lambda: None):
        """Beat if one is due at monotonic `now`, with the line `status()` (what `autocall status`
        shows of this node); an unavailable database only delays it (the dialer's outage rules
        stop the claims meanwhile)."""
        if now < self._due:
            return
        self._due = now + BEAT
        try:
            taken = self.ledger.beat(grace=grace, recall_delay=recall_delay, status=status())
        except StoreUnavailable:
            return
        for node, calls in (taken or {}).items():
            log.warning(
                "node %s silent for over %.0fs: its %d open calls closed as NODE_LOST, their customers due again",
                node,
                grace,
                calls,
            )
