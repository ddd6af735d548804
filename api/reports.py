"""The report reads: a queue's state and counts, its customers with their attempts, the
attempts as CSV, and the OpenAPI document."""

from __future__ import annotations

import csv
import datetime as dt
import io
from importlib import resources

from flask import Blueprint, Response, request

from api.replies import invalid, reply
from api.services import services
from daemon.store.pages import list_customers
from daemon.store.queue_state import QueueNotFound, live_queue
from daemon.store.reports import ATTEMPT_COLUMNS, attempt_page, queue_summary
from daemon.store.states import CUSTOMER_STATES

bp = Blueprint("reports", __name__, url_prefix="/v2/autocall")

MAX_PER_PAGE = 500
CSV_PAGE = 2000  # calls per read of an export: one short job on a reader thread each
_TIMES = tuple(i for i, name in enumerate(ATTEMPT_COLUMNS) if name in ("started_at", "answered_at", "ended_at"))


@bp.get("/queue/<path:code>/customers")
def customers(code):
    """A page of the queue's customers with their attempts; ?state=&page=&per_page=, or
    ?after= (the `next` of the page before) instead of page= for a walk of any length."""
    state = request.args.get("state") or None
    errors = []
    if state is not None and state not in CUSTOMER_STATES:
        errors.append({"field": "state", "reason": f"one of {', '.join(CUSTOMER_STATES)}"})
    page = _int_arg("page", 1, 1, 10**9, errors)
    per_page = _int_arg("per_page", 100, 1, MAX_PER_PAGE, errors)
    after = _cursor_arg(errors)
    if after is not None and "page" in request.args:
        errors.append({"field": "after", "reason": "page or after, not both"})
    if errors:
        return invalid(errors)
    try:
        s = services()
        data = s.workers.read(list_customers, code, state=state, page=page, per_page=per_page, after=after)
    except QueueNotFound:
        return reply(404, "queue not found")
    data["next"] = None if data["next"] is None else _cursor(data["next"])
    return reply(200, "successfully", data=data)


# A cursor is opaque to clients (docs/api.md): today the last customer row id of the page, in
# decimal; only what `_cursor` makes is taken back.
_CURSOR_DIGITS = 18


def _cursor(row_id: int) -> str:
    return str(row_id)


def _cursor_arg(errors) -> int | None:
    raw = request.args.get("after")
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > _CURSOR_DIGITS:
        errors.append({"field": "after", "reason": "the `next` of an earlier page, as it was given"})
        return None
    return int(raw)


@bp.get("/queue/<path:code>/attempts.csv")
def attempts_csv(code):
    """Every call of the queue as CSV, oldest first, times in the configured time zone.

    Streamed a page at a time, each page read and formatted on a reader thread: the hub
    sends one page while others wait their turn, so an export of any size holds up nobody."""
    s = services()
    try:
        queue_id, _ = s.workers.read(live_queue, code)
    except QueueNotFound:
        return reply(404, "queue not found")
    tz = s.config.tz

    def pages():
        yield ",".join(("customer_id",) + ATTEMPT_COLUMNS) + "\r\n"
        after = 0
        while True:
            text, after = s.workers.read(_csv_page, queue_id, after, tz)
            if not text:
                return
            yield text

    filename = f"attempts-{_safe_filename(code)}.csv"
    return Response(pages(), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _csv_page(db, queue_id: int, after: int, tz) -> tuple[str, int]:
    """The CSV lines of the calls after attempt id `after`, and the last id in them ("" at the end)."""
    rows = attempt_page(db, queue_id, after, CSV_PAGE)
    lines = []
    for _, ext_id, *values in rows:
        for i in _TIMES:
            values[i] = _local_time(values[i], tz)
        lines.append([ext_id, *values])
    return _csv_text(lines), rows[-1][0] if rows else after


def _csv_text(lines) -> str:
    # Every cell quoted: a spreadsheet that splits on ";" (Excel where the decimal mark is ",",
    # as in Vietnam) would otherwise start a cell inside an id like `KH;=HYPERLINK(...)`.
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL).writerows([_cell(value) for value in line] for line in lines)
    return buffer.getvalue()


# OWASP's CSV-injection rule: a spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """`value` for a CSV cell: text that a spreadsheet would run as a formula gets a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


@bp.get("/queue/<path:code>")
def queue(code):
    """The queue's settings, state and customer counts per state."""
    try:
        s = services()
        return reply(200, "successfully", data=s.workers.read(queue_summary, code))
    except QueueNotFound:
        return reply(404, "queue not found")


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API."""
    text = resources.files("api").joinpath("openapi.json").read_text(encoding="utf-8")
    return Response(text, mimetype="application/json")


def _int_arg(name, default, low, high, errors) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        errors.append({"field": name, "reason": f"an integer from {low} to {high}"})
        return default
    return int(raw)


def _local_time(epoch, tz) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch, tz).isoformat(timespec="milliseconds")


def _safe_filename(code: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in code)[:64]
