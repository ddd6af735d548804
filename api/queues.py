"""The endpoints: the seed's five commands, the report reads, and /healthz."""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gc
import io
import logging
from importlib import resources

from flask import Blueprint, Response, g, request, stream_with_context
from werkzeug.exceptions import RequestEntityTooLarge

from api import schema
from api.replies import reply
from api.services import services
from daemon.store import customers as store_customers, queue_state, reports
from daemon.store.queue_state import QueueNotFound, QueueRunning
from daemon.store.states import CUSTOMER_STATES

log = logging.getLogger(__name__)

bp = Blueprint("queues", __name__, url_prefix="/v2/autocall")
health_bp = Blueprint("health", __name__)

MAX_PER_PAGE = 500


def _body():
    """The request's JSON body; schema.Invalid if unreadable."""
    return schema.parse_json(request.get_data(cache=False))


def _invalid(e: schema.Invalid):
    return reply(400, "invalid request", errors=e.errors)


@bp.post("/queue")
def import_queue():
    """Import customers into a queue (created if new, merged if not)."""
    empty = {"fail": [], "success": []}
    config = services().config
    with _collector_paused():
        try:
            req, rejected, warnings = schema.import_request(_body(), services().templates)
        except schema.Invalid as e:
            return reply(400, "import fail", data=empty, errors=e.errors)
        except RequestEntityTooLarge:
            reason = f"body larger than {config.api.max_body_bytes} bytes; split the import"
            return reply(400, "import fail", data=empty, errors=[{"field": "body", "reason": reason}])
        result = store_customers.import_customers(g.db, req, config.queue_defaults, chunk=config.api.import_chunk)
    rejected += result.rejected
    log.info("import into %r: %d accepted, %d rejected", req.queue_code, len(result.success), len(rejected))
    # The seed's shape, plus reasons only when there is something to say.
    extra = {"errors": rejected} if rejected else {}
    if warnings:
        extra["warnings"] = warnings
    return reply(200, "successfully",
                 data={"fail": [r["id"] for r in rejected], "success": result.success}, **extra)


@contextlib.contextmanager
def _collector_paused():
    """A large import makes millions of objects that all live until the reply is sent:
    the cyclic collector walking them meanwhile only costs time (a seventh of it, measured)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _command(action):
    """Run `action(code)` for a {"queue_code"} body; 404 when the queue is unknown."""
    try:
        code = schema.queue_code(_body())
        action(code)
    except schema.Invalid as e:
        return _invalid(e)
    except QueueNotFound:
        return reply(404, "queue not found")
    except QueueRunning:
        return reply(409, "queue is running, stop it first")
    return reply(200, "successfully")


@bp.post("/queue/dnc")
def dnc():
    """Put customers of a queue on its do-not-call list."""
    try:
        code, ids = schema.dnc_request(_body())
        store_customers.block(g.db, code, ids, chunk=services().config.api.import_chunk)
    except schema.Invalid as e:
        return _invalid(e)
    except QueueNotFound:
        return reply(404, "queue not found")
    log.info("dnc on %r: %d ids", code, len(ids))
    return reply(200, "successfully")


@bp.post("/queue/stop")
def stop():
    """Pause a queue: no new call of it is originated once this answers."""
    return _command(lambda code: queue_state.set_running(g.db, code, False))


@bp.post("/queue/start")
def start():
    """Resume a paused queue."""
    return _command(lambda code: queue_state.set_running(g.db, code, True))


@bp.post("/queue/delete")
def delete():
    """Withdraw a stopped queue; unfinished customers end `deleted`."""
    return _command(lambda code: store_customers.delete_queue(g.db, code))


@bp.get("/queue/<path:code>/customers")
def customers(code):
    """A page of the queue's customers with their attempts; ?state=&page=&per_page=."""
    state = request.args.get("state") or None
    errors = []
    if state is not None and state not in CUSTOMER_STATES:
        errors.append({"field": "state", "reason": f"one of {', '.join(CUSTOMER_STATES)}"})
    page = _int_arg("page", 1, 1, 10**9, errors)
    per_page = _int_arg("per_page", 100, 1, MAX_PER_PAGE, errors)
    if errors:
        return _invalid(schema.Invalid(errors))
    try:
        data = reports.list_customers(g.db, code, state=state, page=page, per_page=per_page)
    except QueueNotFound:
        return reply(404, "queue not found")
    return reply(200, "successfully", data=data)


@bp.get("/queue/<path:code>/attempts.csv")
def attempts_csv(code):
    """Every call of the queue as CSV, oldest first, times in the configured time zone."""
    db = g.db
    try:
        attempts = reports.iter_attempts(db, code)
    except QueueNotFound:
        return reply(404, "queue not found")
    tz = services().config.tz

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(("customer_id",) + reports.ATTEMPT_COLUMNS)
        with db.connection_context():
            for ext_id, values in attempts:
                for name in ("started_at", "answered_at", "ended_at"):
                    values[name] = _local_time(values[name], tz)
                writer.writerow((ext_id, *values.values()))
                if buffer.tell() > 65536:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    filename = f"attempts-{_safe_filename(code)}.csv"
    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/queue/<path:code>")
def queue(code):
    """The queue's settings, state and customer counts per state."""
    try:
        return reply(200, "successfully", data=reports.queue_summary(g.db, code))
    except QueueNotFound:
        return reply(404, "queue not found")


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API."""
    text = resources.files("api").joinpath("openapi.json").read_text(encoding="utf-8")
    return Response(text, mimetype="application/json")


@health_bp.get("/healthz")
def healthz():
    """Liveness without a token: the process answers and the database is readable."""
    g.db.execute_sql("SELECT 1").fetchone()
    return reply(200, "ok")


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

