"""Events for the platform, kept in the database with the results they tell of (issue 15).

Every result the platform may want pushed is written, by triggers, into `outbox` inside the
transaction that writes the result itself: no result without its event, no event without its
result, whichever path made it (the dialer's transitions, the API's commands, a node taking
over a dead node's calls, an operator's UPDATE):

- `customer.finished`: a customer entered `success`, `failed` or `dnc` (a queue's delete is
  the platform's own act and tells nothing new: `deleted` makes no event);
- `attempt.finished`: a call was closed (an attempt closed `not_dialed`, never dialed, makes none);
- `queue.stopped`: a running queue stopped, by the API or by the dialer (`stop_reason` says why);
- `queue.finished`: the queue's last customer to call ended (none pending or in a call); once,
  until an import gives it customers to call again (`queue.finished_at`).

The notifier (daemon/notifier.py) turns each event into one `delivery` per endpoint that
wants it (`fan_out`), with its body built once, so every try sends the same bytes, and
delivers them (`take`, `delivered`, `failed`). Events and deliveries are pruned after `keep`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import peewee as pw

from daemon.store.dialect import Dialect
from daemon.store.schema import dialect_of, execute, insert, marks
from daemon.store.states import CALLING, DNC, DONE, FAILED, PENDING, RUNNING, STOPPED, SUCCESS

EVENT_TYPES = ("customer.finished", "attempt.finished", "queue.stopped", "queue.finished")
NOT_DIALED = "not_dialed"  # daemon.outcome.NOT_DIALED (the store imports nothing from the daemon)
# Delivery states.
WAITING, DELIVERED, DEAD = "pending", "delivered", "dead"

_ENDED = f"('{SUCCESS}', '{FAILED}', '{DNC}')"
_TO_CALL = f"('{PENDING}', '{CALLING}')"


def create(db: pw.Database, dialect: Dialect):
    """The tables and the triggers that fill `outbox` (schema 7)."""
    real, ident = dialect.real_column, dialect.id_column
    db.execute_sql(
        f"CREATE TABLE outbox (id {ident}, type TEXT NOT NULL, queue_id INTEGER NOT NULL,"
        f" customer_id INTEGER, attempt_id INTEGER, state TEXT, cause TEXT, result TEXT,"
        f" occurred_at {real} NOT NULL, dispatched_at {real})"
    )
    db.execute_sql("CREATE INDEX outbox_undispatched ON outbox(id) WHERE dispatched_at IS NULL")
    db.execute_sql("CREATE INDEX outbox_occurred ON outbox(occurred_at)")
    db.execute_sql(
        f"CREATE TABLE delivery (id {ident}, event_id INTEGER NOT NULL, endpoint TEXT NOT NULL,"
        f" url TEXT NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0,"
        f" next_try_at {real} NOT NULL, last_status INTEGER, last_error TEXT,"
        f" created_at {real} NOT NULL, done_at {real})"
    )
    db.execute_sql(f"CREATE INDEX delivery_due ON delivery(next_try_at) WHERE state = '{WAITING}'")
    db.execute_sql("CREATE INDEX delivery_event ON delivery(event_id)")
    db.execute_sql("CREATE INDEX delivery_done ON delivery(done_at)")
    for name, table, column, when, body in _TRIGGERS:
        for sql in _trigger(dialect, name, table, column, when, body):
            db.execute_sql(sql)


_TRIGGERS = (
    (
        "outbox_customer",
        "customer",
        "state",
        f"NEW.state IN {_ENDED} AND OLD.state NOT IN {_ENDED}",
        (
            "INSERT INTO outbox (type, queue_id, customer_id, state, cause, result, occurred_at)"
            " VALUES ('customer.finished', NEW.queue_id, NEW.id, NEW.state, NEW.last_cause, NEW.result,"
            " NEW.updated_at)",
            "UPDATE queue SET finished_at = NEW.updated_at WHERE id = NEW.queue_id AND finished_at IS NULL"
            f" AND NOT EXISTS (SELECT 1 FROM customer WHERE queue_id = NEW.queue_id AND state IN {_TO_CALL})",
        ),
    ),
    (
        "outbox_attempt",
        "attempt",
        "state",
        f"NEW.state = '{DONE}' AND OLD.state != '{DONE}' AND NEW.outcome != '{NOT_DIALED}'",
        (
            "INSERT INTO outbox (type, queue_id, customer_id, attempt_id, state, cause, result, occurred_at)"
            " VALUES ('attempt.finished', NEW.queue_id, NEW.customer_id, NEW.id, NEW.outcome,"
            " NEW.hangup_cause, NEW.result, NEW.ended_at)",
        ),
    ),
    (
        "outbox_queue_stopped",
        "queue",
        "state",
        f"NEW.state = '{STOPPED}' AND OLD.state = '{RUNNING}'",
        (
            "INSERT INTO outbox (type, queue_id, state, cause, occurred_at)"
            " VALUES ('queue.stopped', NEW.id, NEW.state, NEW.stop_reason, NEW.updated_at)",
        ),
    ),
    (
        "outbox_queue_finished",
        "queue",
        "finished_at",
        "NEW.finished_at IS NOT NULL AND OLD.finished_at IS NULL",
        (
            "INSERT INTO outbox (type, queue_id, state, occurred_at)"
            " VALUES ('queue.finished', NEW.id, NEW.state, NEW.finished_at)",
        ),
    ),
)


def _trigger(dialect: Dialect, name: str, table: str, column: str, when: str, body: tuple[str, ...]):
    """DDL of an AFTER UPDATE OF `column` row trigger running `body` when `when` holds."""
    statements = "; ".join(body) + ";"
    if dialect.name == "sqlite":
        return [f"CREATE TRIGGER {name} AFTER UPDATE OF {column} ON {table} WHEN {when} BEGIN {statements} END"]
    return [
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {statements} RETURN NULL; END $$",
        f"CREATE TRIGGER {name} AFTER UPDATE OF {column} ON {table} FOR EACH ROW WHEN ({when})"
        f" EXECUTE FUNCTION {name}()",
    ]


def rearm(db: pw.Database, queue_id: int):
    """The queue has customers to call again (an import): its next end is a new queue.finished."""
    execute(db, "UPDATE queue SET finished_at = NULL WHERE id = ? AND finished_at IS NOT NULL", (queue_id,))


# --- the notifier's side -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where events go: a configured webhook (`queues` None: every queue) or a queue's own
    `callback_url` (name `callback`, every event of that queue)."""

    name: str
    url: str
    events: frozenset[str]
    queues: frozenset[str] | None = None

    def wants(self, event_type: str, queue_code: str) -> bool:
        return event_type in self.events and (self.queues is None or queue_code in self.queues)


CALLBACK = "callback"


def fan_out(db: pw.Database, endpoints: list[Endpoint], *, now: float, tz: dt.tzinfo, limit: int = 500) -> int:
    """One delivery per endpoint that wants it for each of up to `limit` events not yet
    dispatched, oldest first, each body built now; the events are marked dispatched. Inside the
    caller's transaction. Returns how many events were dispatched."""
    rows = execute(
        db,
        "SELECT o.id, o.type, o.queue_id, o.customer_id, o.attempt_id, o.state, o.cause, o.result, o.occurred_at,"
        " q.code, q.callback_url FROM outbox o JOIN queue q ON q.id = o.queue_id"
        " WHERE o.dispatched_at IS NULL ORDER BY o.id LIMIT ?"
        + (" FOR UPDATE OF o SKIP LOCKED" if dialect_of(db).skip_locked else ""),
        (limit,),
    ).fetchall()
    deliveries = []
    for row in rows:
        event_id, kind, code, callback = row[0], row[1], row[9], row[10]
        targets = [(e.name, e.url) for e in endpoints if e.wants(kind, code)]
        if callback:
            targets.append((CALLBACK, callback))
        if targets:
            body = json.dumps(_payload(db, row, tz), ensure_ascii=False, separators=(",", ":"))
            deliveries += [(event_id, name, url, body, WAITING, now, now) for name, url in targets]
    for delivery in deliveries:
        insert(
            db,
            "INSERT INTO delivery (event_id, endpoint, url, body, state, next_try_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            delivery,
        )
    ids = [row[0] for row in rows]
    if ids:
        execute(db, f"UPDATE outbox SET dispatched_at = ? WHERE id IN ({marks(ids)})", (now, *ids))
    return len(ids)


def _payload(db: pw.Database, row, tz: dt.tzinfo) -> dict:
    event_id, kind, queue_id, customer_id, attempt_id, state, cause, result, at, code, _ = row
    body: dict = {"id": str(event_id), "type": kind, "occurred_at": _iso(at, tz), "queue_code": code}
    if kind == "customer.finished":
        ext_id = execute(db, "SELECT ext_id FROM customer WHERE id = ?", (customer_id,)).fetchone()
        calls = _attempts(db, "customer_id = ? AND ended_at <= ?", (customer_id, at), tz)
        body["customer"] = {
            "id": ext_id[0] if ext_id else None,
            "state": state,
            "result": result,
            "last_cause": cause,
            "keys": calls[-1]["keys"] if calls else "",
            "attempts": {
                "count": len(calls),
                "answered": sum(1 for c in calls if c["answered_at"] is not None),
                "last": calls[-1] if calls else None,
            },
        }
    elif kind == "attempt.finished":
        ext_id = execute(db, "SELECT ext_id FROM customer WHERE id = ?", (customer_id,)).fetchone()
        calls = _attempts(db, "id = ?", (attempt_id,), tz)
        body["customer"] = {"id": ext_id[0] if ext_id else None}
        body["attempt"] = calls[0] if calls else None
    elif kind == "queue.stopped":
        body["queue"] = {"state": state, "stop_reason": cause}
    else:  # no counts: read at dispatch they would not be the event's (GET /queue/<code> has them)
        body["queue"] = {"state": state}
    return body


def _attempts(db: pw.Database, where: str, params, tz: dt.tzinfo) -> list[dict]:
    """The closed, dialed attempts matching `where`, oldest first, as the payload shows them."""
    rows = execute(
        db,
        "SELECT number, started_at, answered_at, ended_at, hangup_cause, sip_status, talk_seconds, keys, outcome,"
        f" result FROM attempt WHERE {where} AND state = ? AND outcome != ? ORDER BY id",
        (*params, DONE, NOT_DIALED),
    ).fetchall()
    return [
        {
            "number": number,
            "started_at": _iso(started, tz),
            "answered_at": _iso(answered, tz),
            "ended_at": _iso(ended, tz),
            "hangup_cause": cause,
            "sip_status": sip,
            "talk_seconds": talk,
            "keys": keys,
            "outcome": outcome,
            "result": result,
        }
        for number, started, answered, ended, cause, sip, talk, keys, outcome, result in rows
    ]


def _iso(epoch: float | None, tz: dt.tzinfo) -> str | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, tz).isoformat(timespec="milliseconds")


@dataclasses.dataclass(frozen=True)
class Delivery:
    id: int
    event_id: int
    endpoint: str
    url: str
    body: str
    tries: int  # this one counted
    created_at: float  # its retry window starts here


def take(db: pw.Database, *, now: float, lease: float, limit: int) -> list[Delivery]:
    """Up to `limit` deliveries due now, oldest due first, each leased for `lease` seconds (a
    deliverer killed mid-POST leaves it to be tried again after that). In the caller's
    transaction."""
    rows = execute(
        db,
        "SELECT id, event_id, endpoint, url, body, tries, created_at FROM delivery WHERE state = ? AND next_try_at <= ?"
        " ORDER BY next_try_at, id LIMIT ?" + dialect_of(db).skip_locked,
        (WAITING, now, limit),
    ).fetchall()
    taken = [Delivery(*row) for row in rows]
    if taken:
        ids = [d.id for d in taken]
        execute(
            db,
            f"UPDATE delivery SET next_try_at = ?, tries = tries + 1 WHERE id IN ({marks(ids)})",
            (now + lease, *ids),
        )
    return [dataclasses.replace(d, tries=d.tries + 1) for d in taken]


def delivered(db: pw.Database, delivery_id: int, *, now: float, status: int):
    execute(
        db,
        "UPDATE delivery SET state = ?, done_at = ?, last_status = ?, last_error = NULL WHERE id = ? AND state = ?",
        (DELIVERED, now, status, delivery_id, WAITING),
    )


def failed(db: pw.Database, delivery_id: int, *, now: float, error: str, status: int | None, retry_at: float | None):
    """A try failed: tried again at `retry_at`, or dead (None: its time is up)."""
    if retry_at is None:
        sql, params = "state = ?, done_at = ?", [DEAD, now]
    else:
        sql, params = "next_try_at = ?", [retry_at]
    execute(
        db,
        f"UPDATE delivery SET {sql}, last_status = ?, last_error = ? WHERE id = ? AND state = ?",
        (*params, status, error[:500], delivery_id, WAITING),
    )


def prune(db: pw.Database, *, before: float) -> int:
    """Forget deliveries done (delivered or dead) before `before`, and events dispatched before
    it that no delivery waits for. Returns how many events went."""
    execute(db, "DELETE FROM delivery WHERE done_at < ?", (before,))
    cursor = execute(
        db,
        "DELETE FROM outbox WHERE occurred_at < ? AND dispatched_at IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.event_id = outbox.id)",
        (before,),
    )
    return cursor.rowcount


def retry(db: pw.Database, *, now: float, ids: list[int] | None = None) -> int:
    """Dead deliveries (those of `ids`, or all) waiting again, due now, with a fresh retry window."""
    sql, params = (
        "UPDATE delivery SET state = ?, next_try_at = ?, created_at = ?, tries = 0, done_at = NULL WHERE state = ?",
        [WAITING, now, now, DEAD],
    )
    if ids is not None:
        sql += f" AND id IN ({marks(ids)})"
        params += ids
    return execute(db, sql, params).rowcount


def replay(db: pw.Database, *, since: float) -> int:
    """Events that occurred since `since` (and are still kept) dispatched again, to the
    endpoints configured now: receivers see the same event ids again."""
    return execute(db, "UPDATE outbox SET dispatched_at = NULL WHERE occurred_at >= ?", (since,)).rowcount


@dataclasses.dataclass(frozen=True)
class Backlog:
    waiting: int  # deliveries not yet delivered
    oldest: float | None  # when the oldest of them was created
    undispatched: int  # events not yet turned into deliveries
    dead: int
    failing: int  # waiting deliveries whose last try failed


def backlog(db: pw.Database) -> Backlog:
    """What `autocall status` and the metrics show of the outbox."""
    waiting, oldest, failing = execute(
        db,
        "SELECT COUNT(*), MIN(created_at), COUNT(last_error) FROM delivery WHERE state = ?",
        (WAITING,),
    ).fetchone()
    dead = execute(db, "SELECT COUNT(*) FROM delivery WHERE state = ?", (DEAD,)).fetchone()[0]
    undispatched = execute(db, "SELECT COUNT(*) FROM outbox WHERE dispatched_at IS NULL").fetchone()[0]
    return Backlog(waiting, oldest, undispatched, dead, failing)


def deliveries(db: pw.Database, *, state: str | None = None, limit: int = 50) -> list[dict]:
    """The latest deliveries (of `state`), newest first, for `autocall webhooks list`."""
    where, params = ("WHERE d.state = ?", [state]) if state else ("", [])
    rows = execute(
        db,
        "SELECT d.id, d.event_id, o.type, d.endpoint, d.url, d.state, d.tries, d.last_status, d.last_error,"
        f" d.created_at, d.done_at FROM delivery d LEFT JOIN outbox o ON o.id = d.event_id {where}"
        " ORDER BY d.id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    keys = (
        "id",
        "event_id",
        "type",
        "endpoint",
        "url",
        "state",
        "tries",
        "last_status",
        "last_error",
        "created_at",
        "done_at",
    )
    return [dict(zip(keys, row)) for row in rows]
