"""The live view of the dialer: what each queue is doing, read straight from the SQLite file.

`open_readonly(path)` opens the file with SQLite's `mode=ro`, so the view can never write
and never takes a write lock: it is safe while the API and the daemon run. `read(conn, now=)`
takes one consistent snapshot (a single read transaction) as plain `QueueStatus` objects;
`render(...)` and `render_line(...)` turn those into text and do no I/O, so they are tested
without a database. `watch(...)` is the redraw loop behind `autocall status --watch`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import sqlite3
import time
from pathlib import Path

from daemon.errors import AutocallError
from daemon.store import CALLING, DELETED, DNC, FAILED, FINAL_STATES, PENDING, SCHEMA_VERSION, SUCCESS

CLEAR_SCREEN = "\x1b[H\x1b[2J"
_BAR_WIDTH = 30


class StatusError(AutocallError):
    """The database cannot be read for a status (missing, not autocall's, other schema)."""


@dataclasses.dataclass(frozen=True)
class CallOutcome:
    """One finished call, as the live view lists it."""
    ended_at: float
    customer: str
    number: str
    cause: str
    talk_seconds: float
    keys: str
    outcome: str
    result: str | None


@dataclasses.dataclass(frozen=True)
class QueueStatus:
    """A snapshot of one live queue. `counts` has every customer state, zero included."""
    code: str
    template: str
    state: str
    stop_reason: str | None
    concurrent_call: int
    counts: dict[str, int]
    dialed: int                 # attempts ever made for this queue
    due_now: int                # pending customers whose next call may start now
    due_later: int              # pending customers waiting for a recall
    calls_last_minute: int      # attempts started in the 60 s before the snapshot
    recent: tuple[CallOutcome, ...]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(self.counts[s] for s in FINAL_STATES)

    @property
    def done(self) -> bool:
        """Every customer of the queue is in a final state."""
        return self.finished == self.total


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to the autocall database at `path`, or StatusError saying why not."""
    path = Path(path)
    if not path.is_file():
        raise StatusError(f"no database at {path}")
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise StatusError(f"{path}: cannot read it as an SQLite database: {e}") from None
    if version == 0:
        conn.close()
        raise StatusError(f"{path} is not an autocall database (no schema yet)")
    if version != SCHEMA_VERSION:
        conn.close()
        raise StatusError(f"{path} has schema version {version}; this autocall reads version {SCHEMA_VERSION}")
    return conn


def read(conn: sqlite3.Connection, *, now: float, queue: str | None = None,
         recent: int = 5) -> list[QueueStatus]:
    """Every live queue (or only the one named `queue`), oldest first, from one snapshot."""
    with _snapshot(conn):
        sql = "SELECT id, code, template, state, stop_reason, concurrent_call FROM queue WHERE state != ?"
        params: list = [DELETED]
        if queue is not None:
            sql += " AND code = ?"
            params.append(queue)
        rows = conn.execute(sql + " ORDER BY id", params).fetchall()
        return [_queue_status(conn, row, now, recent) for row in rows]


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection):
    """A read transaction, so every count of one refresh comes from the same moment."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.rollback()


def _queue_status(conn, row, now: float, recent: int) -> QueueStatus:
    queue_id, code, template, state, stop_reason, concurrent_call = row
    counts = dict.fromkeys((PENDING, CALLING, SUCCESS, FAILED, DNC, DELETED), 0)
    counts.update(conn.execute(
        "SELECT state, COUNT(*) FROM customer WHERE queue_id = ? GROUP BY state", (queue_id,)).fetchall())
    due_now = conn.execute(
        "SELECT COUNT(*) FROM customer WHERE queue_id = ? AND state = ? AND next_call_at <= ?",
        (queue_id, PENDING, now)).fetchone()[0]
    dialed, last_minute = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(started_at > ?), 0) FROM attempt WHERE queue_id = ?",
        (now - 60.0, queue_id)).fetchone()
    outcomes = conn.execute(
        "SELECT a.ended_at, c.ext_id, a.number, COALESCE(a.hangup_cause, ''), COALESCE(a.talk_seconds, 0),"
        " a.keys, COALESCE(a.outcome, ''), a.result FROM attempt a JOIN customer c ON c.id = a.customer_id"
        " WHERE a.queue_id = ? AND a.state = 'done' ORDER BY a.ended_at DESC, a.id DESC LIMIT ?",
        (queue_id, recent)).fetchall()
    return QueueStatus(code=code, template=template, state=state, stop_reason=stop_reason,
                       concurrent_call=concurrent_call, counts=counts, dialed=dialed, due_now=due_now,
                       due_later=counts[PENDING] - due_now, calls_last_minute=last_minute,
                       recent=tuple(CallOutcome(*o) for o in outcomes))


def progress_bar(done: int, total: int, width: int = _BAR_WIDTH) -> str:
    """`[#####.....]  50/100  50%`; an empty queue shows an empty bar and 0%."""
    filled = width * done // total if total else 0
    percent = 100 * done // total if total else 0
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {percent:3d}%"


def render(statuses: list[QueueStatus], *, now: float, tz: dt.tzinfo | None = None,
           source: str = "") -> str:
    """The full view: a header line, then one block per queue, or a line saying there is none."""
    stamp = dt.datetime.fromtimestamp(now, tz).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"autocall status {stamp}" + (f"  ({source})" if source else "")]
    if not statuses:
        lines += ["", "no live queue"]
    for status in statuses:
        lines += [""] + render_block(status, tz=tz)
    return "\n".join(lines) + "\n"


def render_block(s: QueueStatus, *, tz: dt.tzinfo | None = None) -> list[str]:
    """One queue's lines: state, progress, counts, pace, last outcomes."""
    state = s.state + (f" — {s.stop_reason}" if s.stop_reason else "")
    c = s.counts
    lines = [
        f"queue {s.code}  template {s.template}  {state}",
        f"  {progress_bar(s.finished, s.total)} finished",
        f"  dialed {s.dialed}  in call {c[CALLING]}/{s.concurrent_call}  calls/min {s.calls_last_minute}",
        f"  succeeded {c[SUCCESS]}  failed {c[FAILED]}  dnc {c[DNC]}  deleted {c[DELETED]}",
        f"  waiting {c[PENDING]}: due now {s.due_now}, recall later {s.due_later}",
    ]
    if s.recent:
        lines.append("  last calls:")
        lines += [f"    {_outcome_line(o, tz)}" for o in s.recent]
    return lines


def render_line(s: QueueStatus) -> str:
    """The queue on one line, for logs and output that is not a terminal."""
    c = s.counts
    return (f"{s.code:<16} {s.state:<8} {progress_bar(s.finished, s.total, width=20):<38}"
            f"in call {c[CALLING]:>3}  ok {c[SUCCESS]:>4}  failed {c[FAILED]:>4}  "
            f"waiting {c[PENDING]:>4}  dialed {s.dialed:>5}  {s.calls_last_minute}/min")


def _outcome_line(o: CallOutcome, tz) -> str:
    at = dt.datetime.fromtimestamp(o.ended_at, tz).strftime("%H:%M:%S") if o.ended_at else "--:--:--"
    result = f" → {o.result}" if o.result else ""
    return (f"{at} {o.customer} {o.number} {o.cause or '-'} talk {o.talk_seconds:.0f}s "
            f"keys {o.keys or '-'} {o.outcome}{result}")


def watch(draw, out, *, interval: float, clear: bool, sleep=time.sleep, rounds: int | None = None):
    """Write `draw()` to `out` every `interval` s until KeyboardInterrupt (or `rounds` draws).

    With `clear` the screen is wiped before each draw (a terminal); otherwise draws follow
    each other, separated by a blank line, so a log or a pipe keeps every one.
    """
    count = 0
    try:
        while rounds is None or count < rounds:
            text = draw()
            out.write(CLEAR_SCREEN + text if clear else text + "\n")
            out.flush()
            count += 1
            if rounds is None or count < rounds:
                sleep(interval)
    except KeyboardInterrupt:
        pass
