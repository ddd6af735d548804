"""A queue's own row: its settings, its state (running / stopped / deleted) and the reason the
dialer stopped it by itself (or, on a running queue, holds it back). The only writer of the
`queue` table.

Functions run inside the caller's transaction, except `set_running`, an API command that is
one transaction of its own.
"""

from __future__ import annotations

import json
import logging
import time

import peewee as pw

from daemon.errors import AutocallError
from daemon.store.records import ImportRequest
from daemon.store.schema import execute, insert
from daemon.store.states import DELETED, RUNNING, STOPPED

log = logging.getLogger("autocall.store")

SETTINGS = ("concurrent_call", "max_recall_count", "min_recall_duration", "callback_url", "retry_when", "caller_id")
_JSON_SETTINGS = ("retry_when",)


class QueueNotFound(AutocallError):
    """No live queue has that code."""


class QueueRunning(AutocallError):
    """The command needs a stopped queue."""


def live_queue(db: pw.Database, code: str) -> tuple[int, str]:
    """(id, state) of the queue with this code that is not deleted, or QueueNotFound."""
    row = execute(db, "SELECT id, state FROM queue WHERE code = ? AND state != ?", (code, DELETED)).fetchone()
    if row is None:
        raise QueueNotFound(code)
    return row


def live_queue_id(db: pw.Database, code: str) -> int | None:
    """The id of the queue with this code that is not deleted, or None."""
    row = execute(db, "SELECT id FROM queue WHERE code = ? AND state != ?", (code, DELETED)).fetchone()
    return None if row is None else row[0]


def code_of(db: pw.Database, queue_id: int) -> str:
    return execute(db, "SELECT code FROM queue WHERE id = ?", (queue_id,)).fetchone()[0]


def state_of(db: pw.Database, queue_id: int) -> str | None:
    """The queue's state, or None when there is no such row."""
    row = execute(db, "SELECT state FROM queue WHERE id = ?", (queue_id,)).fetchone()
    return None if row is None else row[0]


def upsert(db: pw.Database, request: ImportRequest, defaults, at: float) -> int:
    """The id of the live queue `request` names: created `running` with `defaults` and the
    request's settings, or an existing one given the request's template and settings (its
    state kept)."""
    settings = {name: request.settings[name] for name in SETTINGS if name in request.settings}
    for name in _JSON_SETTINGS:
        if settings.get(name) is not None:
            settings[name] = json.dumps(settings[name])
    try:
        queue_id, _ = live_queue(db, request.queue_code)
    except QueueNotFound:
        values = {name: getattr(defaults, name, None) for name in SETTINGS} | settings
        columns = ", ".join(values)
        return insert(
            db,
            f"INSERT INTO queue (code, template, state, created_at, updated_at, {columns})"
            f" VALUES (?, ?, ?, ?, ?, {', '.join('?' * len(values))})",
            (request.queue_code, request.template, RUNNING, at, at, *values.values()),
        )
    assignments = "".join(f", {name} = ?" for name in settings)
    execute(
        db,
        f"UPDATE queue SET template = ?, updated_at = ?{assignments} WHERE id = ?",
        (request.template, at, *settings.values(), queue_id),
    )
    return queue_id


def set_running(db: pw.Database, code: str, running: bool, *, now=time.time):
    """Stop or start the queue (clearing any stop reason), in one transaction. After a stop
    commits, the dialer originates none of its calls."""
    with db.atomic():
        queue_id, _ = live_queue(db, code)
        execute(
            db,
            "UPDATE queue SET state = ?, stop_reason = NULL, updated_at = ? WHERE id = ?",
            (RUNNING if running else STOPPED, now(), queue_id),
        )


def set_waiting(db: pw.Database, queue_id: int, code: str, reason: str | None, *, now: float):
    """Why the dialer holds a running queue back without stopping it (its template cannot be
    loaded), kept in `stop_reason` while the queue stays running; None clears it. The queue
    goes on by itself once the cause is gone; a start or stop clears it too."""
    reason = None if reason is None else reason[:1000]
    cursor = execute(
        db,
        "UPDATE queue SET stop_reason = ?, updated_at = ? WHERE id = ? AND state = ?"
        " AND COALESCE(stop_reason, '') != COALESCE(?, '')",
        (reason, now, queue_id, RUNNING, reason),
    )
    if cursor.rowcount and reason is not None:
        log.error("queue %r %s", code, reason)
    elif cursor.rowcount:
        log.info("queue %r is not waiting any more", code)


def stop_by_dialer(db: pw.Database, queue_id: int, code: str, reason: str, *, now: float):
    """The dialer stops a running queue by itself (a gateway that does not exist, a broken
    template), with `reason` for the operator; a queue already stopped keeps its reason."""
    execute(
        db,
        "UPDATE queue SET state = ?, stop_reason = ?, updated_at = ? WHERE id = ? AND state = ?",
        (STOPPED, reason[:1000], now, queue_id, RUNNING),
    )
    log.error("queue %r stopped: %s", code, reason)


def mark_deleted(db: pw.Database, queue_id: int, *, now: float):
    """The queue leaves every endpoint; its code may be imported again as a new queue."""
    execute(db, "UPDATE queue SET state = ?, updated_at = ? WHERE id = ?", (DELETED, now, queue_id))
