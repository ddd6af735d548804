"""The seed's five commands: import, dnc, stop, start, delete (DESIGN §2, docs/api.md), and
the DNC list of numbers beside them."""

from __future__ import annotations

import contextlib
import gc
import logging

from flask import Blueprint, request
from werkzeug.exceptions import RequestEntityTooLarge

from api import schema
from api.http_errors import import_too_large
from api.jsonbody import BODY_KEY
from api.replies import invalid, reply
from api.services import services
from daemon.store.customers import block, delete_queue, import_customers
from daemon.store.dnc import block_numbers
from daemon.store.queue_state import QueueNotFound, QueueRunning, set_running

log = logging.getLogger("autocall.api")

bp = Blueprint("commands", __name__, url_prefix="/v2/autocall")


# A body this small is checked on the hub at once (well under a millisecond) by the commands
# whose checks consult no template: a stop or a DNC must not wait behind the seconds a big
# import's check takes on the compute thread (two 200,000-customer imports held a stop 2.6 s).
SMALL_BODY = 64 * 1024


def _checked(check, *args, small_on_hub=False):
    """`check(body, *args)` on the request's raw body, off the hub (api/db.py: a big body
    takes a while to read and check), or with `small_on_hub` on it when the body is at most
    SMALL_BODY bytes; schema.Invalid if the body is unreadable or wrong."""
    # autocall-api's server hands the body over whole (api/http.py); Flask's copy is for others.
    raw = request.environ.get(BODY_KEY)
    if raw is None:
        raw = request.get_data(cache=False)
    if small_on_hub and len(raw) <= SMALL_BODY:
        return check(raw, *args)
    return services().workers.compute(check, raw, *args)


@bp.post("/queue")
def import_queue():
    """Import customers into a queue (created if new, merged if not)."""
    empty = {"fail": [], "success": []}
    s = services()
    config = s.config
    with _collector_paused():
        try:
            policy = schema.ImportPolicy(config.caller_ids, config.priority.of)
            req, rejected, warnings = _checked(
                schema.import_request, s.templates, config.notifier.callback_hosts, policy
            )
        except schema.Invalid as e:
            return reply(400, "import fail", data=empty, errors=e.errors, error_count=e.total)
        except RequestEntityTooLarge:
            return reply(**import_too_large(config.api.max_body_bytes))
        result = import_customers(s.db, req, config.queue_defaults, chunk=config.api.import_chunk, run=s.workers.write)
        code = req.queue_code
        del req  # its customers freed now, before the collector is back: else its first run walks them all
    rejected.extend(result.rejected)
    warnings.extend(result.warnings)
    log.info("import into %r: %d accepted, %d rejected", code, len(result.success), len(rejected))
    # The seed's shape, plus reasons (the first 1,000, and how many) only when there is something to say.
    extra = {"errors": rejected.listed, "error_count": rejected.total} if rejected else {}
    if warnings:
        extra |= {"warnings": warnings.listed, "warning_count": warnings.total}
    return reply(200, "successfully", data={"fail": rejected.ids, "success": result.success}, **extra)


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
    """Run `action(db, code)` on the writer thread for a {"queue_code"} body; 404 when the
    queue is unknown."""
    s = services()
    try:
        code = _checked(schema.queue_code, small_on_hub=True)
        s.workers.write(action, code)
    except schema.Invalid as e:
        return invalid(e.errors, e.total)
    except QueueNotFound:
        return reply(404, "queue not found")
    except QueueRunning:
        return reply(409, "queue is running, stop it first")
    return reply(200, "successfully")


UNKNOWN_QUEUE_NOTE = (
    "no live queue has this queue_code; the ids are kept on its DNC list all the same:"
    " an import of them into a queue of this code will be refused"
)


@bp.post("/queue/dnc")
def dnc():
    """Put customers of a queue on its do-not-call list (kept for the queue code, even before
    the queue exists: the seed's 404 then says so in `note`)."""
    try:
        code, ids = _checked(schema.dnc_request, small_on_hub=True)
    except schema.Invalid as e:
        return invalid(e.errors, e.total)
    s = services()
    live = block(s.db, code, ids, chunk=s.config.api.import_chunk, run=s.workers.write)
    log.info("dnc on %r: %d ids%s", code, len(ids), "" if live else " (no such queue yet: kept)")
    if not live:
        return reply(404, "queue not found", note=UNKNOWN_QUEUE_NOTE)
    return reply(200, "successfully")


@bp.post("/dnc/numbers")
def dnc_numbers():
    """Put numbers on the do-not-call list of every queue: never dialled again."""
    try:
        numbers = _checked(schema.dnc_numbers_request, small_on_hub=True)
    except schema.Invalid as e:
        return invalid(e.errors, e.total)
    s = services()
    block_numbers(s.db, numbers, chunk=s.config.api.import_chunk, run=s.workers.write)
    log.info("dnc: %d numbers", len(numbers))
    return reply(200, "successfully")


@bp.post("/queue/stop")
def stop():
    """Pause a queue: no new call of it is originated once this answers."""
    return _command(lambda db, code: set_running(db, code, False))


@bp.post("/queue/start")
def start():
    """Resume a paused queue."""
    return _command(lambda db, code: set_running(db, code, True))


@bp.post("/queue/delete")
def delete():
    """Withdraw a stopped queue; unfinished customers end `deleted`."""
    return _command(delete_queue)
