"""The API's Prometheus metrics (docs/metrics.md): requests and their time in the application,
by endpoint (the URL rule: a raw path holds a queue code, and codes are unbounded), method and
status. Heard through Flask's request signals, so no answer changes.

What the HTTP layer answers itself (api/http.py: 408, 413 by length, 503 server busy, ...)
never reaches the application and is not counted here.
"""

from __future__ import annotations

import time

from flask import Flask, request, request_finished, request_started
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no URL rule matched: a 404 or 405
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_STARTED = "autocall.metrics.started"  # the request's start, in its WSGI environ


class RequestMetrics:
    """`install(app)` counts `app`'s requests in `registry` (one per object, as each
    process serves its own /metrics)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        labels = ["endpoint", "method", "status"]
        self.requests = Counter(
            "autocall_api_requests", "Requests answered by the application.", labels, registry=self.registry
        )
        self.seconds = Histogram(
            "autocall_api_request_seconds",
            "Time in the application, from the request (its body already read) to its answer.",
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )

    def install(self, app: Flask):
        request_started.connect(self._started, app, weak=False)
        request_finished.connect(self._finished, app, weak=False)

    def _started(self, sender, **extra):
        request.environ[_STARTED] = time.perf_counter()

    def _finished(self, sender, response, **extra):
        rule = request.url_rule
        method = request.method if request.method in METHODS else "OTHER"
        labels = (rule.rule if rule is not None else UNMATCHED, method, str(response.status_code))
        self.requests.labels(*labels).inc()
        started = request.environ.get(_STARTED)
        if started is not None:
            self.seconds.labels(*labels).observe(time.perf_counter() - started)
