"""The live numbers of the queues: what the queues page shows, and the small JSON its script
polls every few seconds (`/ui/live/queues.json`) to refresh them without a reload."""

from __future__ import annotations

import time

from flask import g, jsonify

from api.services import services
from api.ui import bp, i18n
from daemon.store import console, reports
from daemon.store.schema import execute
from daemon.store.states import CALLING, DELETED, DNC, FAILED, PENDING, RUNNING, SUCCESS

SPARK_MINUTES = 30  # the calls-per-minute sparkline's width
RATE_MINUTES = 10  # the ETA's rate: calls per minute over this many of the last minutes


def queue_rows(db, *, now: float, code: str | None = None) -> list[dict]:
    """Every live queue (or only `code`) as the queues page shows it; run on a reader thread."""
    statuses = reports.queue_statuses(db, now=now, queue=code, recent=0)
    ids: dict[str, int] = dict(execute(db, "SELECT code, id FROM queue WHERE state != ?", (DELETED,)).fetchall())
    sparks = console.calls_per_minute(db, now=now, minutes=SPARK_MINUTES)
    rows = []
    for s in statuses:
        spark = sparks.get(ids.get(s.code, -1), [0] * SPARK_MINUTES)  # -1: a queue made since
        c = s.counts
        rows.append(
            {
                "code": s.code,
                "template": s.template,
                "state": s.state,
                "stop_reason": s.stop_reason,
                "total": s.total,
                "finished": s.finished,
                "calling": c[CALLING],
                "concurrent_call": s.concurrent_call,
                "success": c[SUCCESS],
                "failed": c[FAILED],
                "dnc": c[DNC],
                "deleted": c[DELETED],
                "pending": c[PENDING],
                "dialed": s.dialed,
                "calls_last_minute": s.calls_last_minute,
                "spark": spark,
                "eta_seconds": eta_seconds(s.state, s.total - s.finished, s.finished, s.dialed, spark),
            }
        )
    return rows


def eta_seconds(state: str, remaining: int, finished: int, dialed: int, spark: list[int]) -> float | None:
    """Seconds until the queue's last customer ends at the rate of the last RATE_MINUTES (from
    its first minute with a call among them): its customers left times the calls a customer has
    taken so far, over the calls made a minute. 0 when nothing is left; None when it cannot be
    told (stopped, or no call lately)."""
    if remaining == 0:
        return 0.0
    recent = spark[-RATE_MINUTES:]
    while recent and recent[0] == 0:
        recent = recent[1:]  # minutes before the queue's calls began (or resumed) say nothing of its rate
    if state != RUNNING or not recent:
        return None
    rate = sum(recent) / len(recent)
    calls_per_customer = dialed / finished if finished else 1.0
    return remaining * calls_per_customer / rate * 60


def labelled(rows: list[dict], lang: str) -> list[dict]:
    """The rows with the texts the page shows, formatted (the JSON carries both)."""
    for row in rows:
        eta = row["eta_seconds"]
        if eta == 0:
            row["eta_text"] = i18n.label(lang, "eta_done")
        elif eta is None:
            row["eta_text"] = i18n.label(lang, "eta_unknown")
        else:
            row["eta_text"] = i18n.duration(eta)
        row["state_text"] = i18n.label(lang, row["state"]) if row["state"] in ("running", "stopped") else row["state"]
        row["percent"] = 100 * row["finished"] // row["total"] if row["total"] else 0
    return rows


@bp.get("/live/queues.json")
def queues_json():
    """The queues' live numbers, for the pages' polling."""
    rows = services().workers.read(queue_rows, now=time.time())
    return jsonify(queues=labelled(rows, g.lang), at=time.time())
