"""The node lease (issue 13): each dialer's heartbeat row, and another node's taking over of
the calls a dead one left open.

Every dialer writes its `node.beat_at` (by the database's clock, so the hosts' clocks do not
matter) every few seconds. A node whose last beat is older than `grace` is taken for dead:
the first other node to notice closes that node's open attempts `NODE_LOST` (interrupted: the
recall rules give each customer its place back) and removes its row, so it happens once; a
node that comes back beats again and reconciles whatever is still open of its own.

`grace` must outlast every call the dead node's switch may still carry, or a customer taken
over could be called again while still on the line: the dialer never uses less than twice
`max_call_seconds` plus `originate_timeout` (a switch left alone ends a parked call at its
`park_timeout`, which is `max_call_seconds`).
"""

from __future__ import annotations

import peewee as pw

from daemon.store import customers, reports
from daemon.store.records import CallReport
from daemon.store.schema import dialect_of, execute

LOST = "NODE_LOST"


def beat(db: pw.Database, name: str, *, grace: float, recall_delay: float, status: str | None = None) -> dict[str, int]:
    """Write node `name`'s heartbeat (with its `status` line), then take over every other node
    silent for more than `grace` seconds; returns {dead node: calls closed} (inside the
    caller's transaction)."""
    now = execute(db, f"SELECT {dialect_of(db).now_sql}").fetchone()[0]
    execute(
        db,
        "INSERT INTO node (name, beat_at, status) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET beat_at = excluded.beat_at, status = excluded.status",
        (name, now, status),
    )
    dead = [row[0] for row in execute(db, "SELECT name FROM node WHERE name != ? AND beat_at < ?", (name, now - grace))]
    taken = {}
    for node in dead:
        claims = reports.open_attempts(db, node, with_unnamed=False)
        for claim in claims:
            report = CallReport(claim.answered_at, now, 0.0, LOST, interrupted=True)
            customers.finish(db, claim, report, recall_delay=recall_delay)
        execute(db, "DELETE FROM node WHERE name = ?", (node,))
        taken[node] = len(claims)
    return taken


def states(db: pw.Database) -> list[tuple[str, float, str | None]]:
    """Every node known: (name, seconds since its last beat by the database's clock, its status)."""
    rows = execute(db, f"SELECT name, {dialect_of(db).now_sql} - beat_at, status FROM node ORDER BY name")
    return [(name, float(age), status) for name, age, status in rows]
