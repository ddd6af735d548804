"""The live view of the dialer as text: what each queue is doing, drawn from one snapshot.

The snapshot is `daemon.store.reports.queue_statuses`, read through a database opened with
`open_readonly` (SQLite's `mode=ro`, or a read-only PostgreSQL session: the view can never
write nor take a write lock, so it is safe while the API and the daemon run). The dialer's
own state (dialing, or paused while the database is unavailable) comes from the small file it
keeps beside the database (`daemon.statefile`). `render(...)` and `render_line(...)` turn
snapshots into text and do no I/O, so they are tested without a database. `watch(...)` is the
redraw loop behind `autocall status --watch`.
"""

from __future__ import annotations

import datetime as dt
import time

from daemon.logs import escaped
from daemon.statefile import STALE_AFTER
from daemon.store.outbox import Backlog
from daemon.store.reports import CallOutcome, QueueStatus
from daemon.store.reports import queue_statuses as read
from daemon.store.schema import StoreError as StatusError
from daemon.store.schema import open_readonly
from daemon.store.states import CALLING, DELETED, DNC, FAILED, PENDING, SUCCESS

# Re-exported: `autocall status` opens and reads through this module.
__all__ = [
    "CallOutcome",
    "QueueStatus",
    "StatusError",
    "open_readonly",
    "read",
    "render",
    "render_block",
    "render_dialer",
    "render_line",
    "render_nodes",
    "render_webhooks",
    "watch",
]

CLEAR_SCREEN = "\x1b[H\x1b[2J"
_BAR_WIDTH = 30


def progress_bar(done: int, total: int, width: int = _BAR_WIDTH) -> str:
    """`[#####.....]  50/100  50%`; an empty queue shows an empty bar and 0%."""
    filled = width * done // total if total else 0
    percent = 100 * done // total if total else 0
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {percent:3d}%"


def render(
    statuses: list[QueueStatus],
    *,
    now: float,
    tz: dt.tzinfo | None = None,
    source: str = "",
    dialer: dict | None = None,
    webhooks: Backlog | None = None,
    nodes: list[tuple[str, float, str | None]] | None = None,
) -> str:
    """The full view: a header line, the dialer's line (`dialer`: its state file, if any), the
    webhooks' line (`webhooks`: the outbox's backlog), then one block per queue, or a line
    saying there is none."""
    stamp = dt.datetime.fromtimestamp(now, tz).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"autocall status {stamp}" + (f"  ({source})" if source else "")]
    lines += render_dialer(dialer, now=now)
    lines += render_nodes(nodes or [])
    lines += render_webhooks(webhooks, now=now)
    if not statuses:
        lines += ["", "no live queue"]
    for status in statuses:
        lines += [""] + render_block(status, tz=tz)
    return "\n".join(lines) + "\n"


def render_dialer(state: dict | None, *, now: float) -> list[str]:
    """The dialer's line from its state file (daemon.main writes it every 2 s): what it does, or
    that it has not been heard from, or that the file tells nothing (and whether a dialer holds
    the database); none when no dialer ever ran beside this database."""
    if not state:
        return []
    if "unreadable" in state:
        pid, db = state.get("holder"), state.get("database")
        held = f"autocall-daemon pid {pid} holds {db}" if pid else f"no autocall-daemon holds {db}: is it running?"
        return [f"dialer: state unknown ({state['unreadable']}); {held}"]
    age, pid, said = now - float(state["at"]), state.get("pid"), state.get("status", "?")
    if "holder" in state and state["holder"] != pid:  # looked up (statefile.look): not the writer's
        if state["holder"] is not None:
            return [f"dialer: starting (pid {state['holder']})"]
        if state.get("stopped"):
            left = state.get("unwritten")
            lost = (
                f"; {left} writes were left unwritten (the next start reads their calls back from FreeSWITCH)"
                if left
                else ""
            )
            return [f"dialer: stopped {_ago(age)} ago (pid {pid}){lost}"]
        return [
            f"dialer: not running: pid {pid} ended {_ago(age)} ago or less without stopping (killed?); it said: {said}"
        ]
    if age > STALE_AFTER:
        return [f"dialer: not heard from for {age:.0f}s (pid {pid}): is autocall-daemon running?"]
    if age < -STALE_AFTER:
        return [f"dialer: {said} (written {-age:.0f}s ahead of this host's clock: did the clock step back?)"]
    return [f"dialer: {said}"]


def render_nodes(nodes: list[tuple[str, float, str | None]]) -> list[str]:
    """Each dialer's line from its heartbeat row ((name, seconds since it beat, status): a
    database with no state file beside it, PostgreSQL)."""
    lines = []
    for name, age, said in nodes:
        if age > STALE_AFTER:
            lines.append(f"dialer {name}: not heard from for {age:.0f}s: is autocall-daemon running there?")
        else:
            lines.append(f"dialer {name}: {said or '?'}")
    return lines


def render_webhooks(b: Backlog | None, *, now: float) -> list[str]:
    """How far the notifier is behind and what fails; none while nothing waits or died."""
    if b is None or not (b.waiting or b.dead or b.undispatched):
        return []
    lag = f" (oldest {_ago(now - b.oldest)} ago)" if b.oldest is not None else ""
    return [
        f"webhooks: {b.waiting} deliveries waiting{lag}, {b.failing} of them failing, {b.dead} dead, "
        f"{b.undispatched} events not yet dispatched" + ("; autocall webhooks list --state dead" if b.dead else "")
    ]


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def render_block(s: QueueStatus, *, tz: dt.tzinfo | None = None) -> list[str]:
    """One queue's lines: state, progress, counts, pace, last outcomes."""
    state = s.state + (f" — {escaped(s.stop_reason)}" if s.stop_reason else "")
    c = s.counts
    lines = [
        f"queue {s.code!r}  template {s.template!r}  {state}",
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
    return (
        f"{s.code!r:<16} {s.state:<8} {progress_bar(s.finished, s.total, width=20):<38}"
        f"in call {c[CALLING]:>3}  ok {c[SUCCESS]:>4}  failed {c[FAILED]:>4}  "
        f"waiting {c[PENDING]:>4}  dialed {s.dialed:>5}  {s.calls_last_minute}/min"
    )


def _outcome_line(o: CallOutcome, tz) -> str:
    at = dt.datetime.fromtimestamp(o.ended_at, tz).strftime("%H:%M:%S") if o.ended_at else "--:--:--"
    result = f" → {o.result}" if o.result else ""
    return (
        f"{at} {o.customer!r} {o.number!r} {o.cause or '-'} talk {o.talk_seconds:.0f}s "
        f"keys {o.keys or '-'} {o.outcome}{result}"
    )


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
