"""The dialer's Prometheus metrics (docs/metrics.md), and the HTTP server both programs serve
theirs with.

On the path of a call there is one counter increment at its originate, one at its end and one
histogram observation of its hangup event's lag; the ledger observes one histogram per write
transaction. Everything else (calls in progress per queue, the event socket, writes waiting,
queues running, the calling window) is read from the dialer when Prometheus scrapes, so it costs
nothing between scrapes. Queue labels are bounded by the calls in progress: a queue is listed
while it has any, never for merely existing.
"""

from __future__ import annotations

import collections
import logging
import re
import socket
import time

import gevent.pywsgi
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily

from daemon.store.schema import StoreUnavailable

log = logging.getLogger("autocall.metrics")

# FreeSWITCH's hangup causes are upper-case names (about 100 of them); what the dialer makes of
# a failed originate may be free text. More distinct causes than this count as OTHER.
MAX_CAUSES = 128
_CAUSE = re.compile(r"[A-Z][A-Z0-9_]{0,47}")
OTHER_CAUSE = "OTHER"
DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DialerMetrics:
    """The counters the dialer and its ledger update, and `watch(dialer)` for the gauges read
    at scrape time. Each object has its own registry (`registry`), served by `serve()`."""

    def __init__(self, node: str):
        self.node = node
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        self._originates = Counter(
            "autocall_originates", "Originates sent to FreeSWITCH.", ["node"], registry=r
        ).labels(node)
        self._outcomes = Counter(
            "autocall_call_outcomes",
            "Calls ended, by FreeSWITCH's hangup cause and the attempt's outcome (a configuration "
            "error stops its queue).",
            ["cause", "outcome", "node"],
            registry=r,
        )
        self._stops = Counter(
            "autocall_queue_stops",
            "Queues the dialer stopped because a template cannot play or speak to a customer.",
            ["node"],
            registry=r,
        ).labels(node)
        self._lag = Histogram(
            "autocall_esl_event_lag_seconds",
            "From a call's CHANNEL_HANGUP_COMPLETE being sent (its Event-Date-Timestamp) to the dialer reading it.",
            ["node"],
            buckets=LAG_BUCKETS,
            registry=r,
        ).labels(node)
        self._db_write = Histogram(
            "autocall_db_write_seconds",
            "Write transactions of the ledger that committed (answers, results, abandoned claims), as "
            "the dialer waited for them.",
            ["node"],
            buckets=DB_BUCKETS,
            registry=r,
        ).labels(node)
        self._outcome_children: dict[tuple[str, str], Counter] = {}

    def originated(self):
        """An originate goes to the switch now."""
        self._originates.inc()

    def call_ended(self, cause: str | None, outcome: str):
        """A call's end is recorded (or waits for the database) with this cause and outcome."""
        key = (cause or "NONE", outcome)
        child = self._outcome_children.get(key)
        if child is None:
            label = key[0] if _CAUSE.fullmatch(key[0]) and len(self._outcome_children) < MAX_CAUSES else OTHER_CAUSE
            child = self._outcomes.labels(label, outcome, self.node)
            self._outcome_children[key] = child
        child.inc()

    def hangup_heard(self, event, heard_at: float):
        """The hangup event `event` was read at wall time `heard_at`. A switch clock ahead of
        ours counts as no lag (on one host both read the same clock)."""
        stamp = event.get("Event-Date-Timestamp")
        if stamp and stamp.isdigit():
            self._lag.observe(max(0.0, heard_at - int(stamp) / 1e6))

    def queue_stopped(self):
        """The dialer stopped a queue (its template cannot be played or spoken)."""
        self._stops.inc()

    def db_write(self, seconds: float):
        """A write transaction committed after `seconds`."""
        self._db_write.observe(seconds)

    def watch(self, dialer):
        """Report `dialer`'s state (a daemon.dialer.Dialer) at each scrape."""
        self.registry.register(_DialerState(dialer, self.node))


class _DialerState:
    """Gauges read from the dialer when scraped."""

    def __init__(self, dialer, node: str):
        self.dialer, self.node = dialer, node

    def describe(self):
        return []  # the families depend on what runs; nothing to check at registration

    def collect(self):
        d, node = self.dialer, [self.node]
        calls = GaugeMetricFamily(
            "autocall_calls_in_progress",
            "Calls in progress, by queue (listed while it has any).",
            labels=["queue", "node"],
        )
        for code, count in sorted(collections.Counter(a.call.claim.queue_code for a in d.calls.values()).items()):
            calls.add_metric([code, self.node], count)
        yield calls
        wall = time.time()
        for name, text, value in (
            ("autocall_esl_connected", "1 while the event socket to FreeSWITCH is connected.", d.link.up),
            (
                "autocall_db_available",
                "0 while the database refuses writes (an outage: dialing paused).",
                not d.outage.active,
            ),
            (
                "autocall_db_writes_waiting",
                "Writes queued for the database (held in memory during an outage).",
                d.outage.waiting,
            ),
            ("autocall_queues_running", "Queues in state running, as last read.", len(d.queues)),
            (
                "autocall_queues_due",
                "Running queues whose first pending customer is due now, as last read.",
                sum(1 for q in d.queues if q.next_due is not None and q.next_due <= wall),
            ),
            ("autocall_calling_window_open", "1 while the calling window is open.", d.window.is_open(wall)),
        ):
            family = GaugeMetricFamily(name, text, labels=["node"])
            family.add_metric(node, float(value))
            yield family
        if d.trunks is not None:
            yield from trunk_families(d.trunks, d.monotonic(), self.node)
        yield from _outbox(d.ledger, wall)


def trunk_families(pool, now: float, node: str):
    """Per [[trunks]] entry: calls in progress, its channel limit, and 1 while it is marked down."""
    families = (
        GaugeMetricFamily(
            "autocall_trunk_calls_in_progress", "Calls in progress on each trunk.", labels=["trunk", "node"]
        ),
        GaugeMetricFamily("autocall_trunk_channel_limit", "Each trunk's channel_limit.", labels=["trunk", "node"]),
        GaugeMetricFamily(
            "autocall_trunk_down",
            "1 while a trunk is marked down after trunk-level failures in a row (dialer.trunk_down_after).",
            labels=["trunk", "node"],
        ),
    )
    for trunk in pool.trunks:
        for family, value in zip(families, (pool.busy(trunk.name), trunk.channel_limit, pool.is_down(trunk.name, now))):
            family.add_metric([trunk.name, node], float(value))
    yield from families


def _outbox(ledger, wall: float):
    """The webhooks' backlog (daemon/store/outbox.py), database-wide: nothing while it cannot be read."""
    try:
        b = ledger.backlog()
    except StoreUnavailable:
        return
    for name, text, value in (
        ("autocall_outbox_deliveries_waiting", "Webhook deliveries not yet delivered.", b.waiting),
        (
            "autocall_outbox_oldest_seconds",
            "Age of the oldest delivery waiting (0: none): the webhooks' lag.",
            wall - b.oldest if b.oldest is not None else 0.0,
        ),
        ("autocall_outbox_failing", "Deliveries waiting whose last try failed.", b.failing),
        ("autocall_outbox_dead", "Deliveries given up after their retry window.", b.dead),
        ("autocall_outbox_undispatched", "Events not yet turned into deliveries.", b.undispatched),
    ):
        yield GaugeMetricFamily(name, text, value=float(value))


def serve(listener: socket.socket, registry: CollectorRegistry) -> gevent.pywsgi.WSGIServer:
    """Serve `registry` at /metrics (any path, as prometheus_client does) on `listener`, in
    this process's gevent loop: a scrape is a greenlet like any request."""
    server = gevent.pywsgi.WSGIServer(listener, make_wsgi_app(registry), log=None, error_log=log)
    server.start()
    return server
