"""The console's pages: queues, one queue, one customer, templates (with "listen"), system,
audit log. Each view reads on the API's reader threads (api/db.py) and renders a template."""

from __future__ import annotations

import hmac
import logging
import math
import os
import time

from flask import Response, abort, current_app, g, render_template, request
from werkzeug.exceptions import HTTPException

from api import reports as api_reports
from api.db import DatabaseUnavailable
from api.services import services
from api.ui import bp, i18n, listen
from api.ui.auth import notice_seal
from api.ui.live import labelled, queue_rows
from daemon import ivr, statefile, status
from daemon.pacing import CallingWindow
from daemon.store import console, nodes, operators, outbox
from daemon.store.queue_state import QueueNotFound, live_queue
from daemon.store.states import CUSTOMER_STATES

log = logging.getLogger("autocall.api.ui")

PER_PAGE = 50
TIMELINE_MINUTES = 60
# The seed's sample customer: what the templates page renders when no customer is named.
SAMPLE_FIELDS = {
    "contract_number": "HD123456",
    "upcoming_due_date": "2021-07-13",
    "upcoming_amount": 5000000,
    "due_date": "2021-07-13",
    "dpd": 5,
    "number_of_ovd_inst": 6,
    "total_ovd_amount": 3211100,
}


@bp.app_template_global()
def t(key: str, **values) -> str:
    """The label `key` in the page's language."""
    return i18n.label(g.get("lang", i18n.DEFAULT), key, **values)


@bp.context_processor
def _page_globals():
    return {"tz": services().config.dialer.timezone}


@bp.app_template_filter("when")
def _when(epoch, seconds: bool = True) -> str:
    return i18n.when(epoch, services().config.tz, seconds=seconds)


for _name in ("number", "money", "date", "duration"):
    bp.add_app_template_filter(getattr(i18n, _name), _name)
bp.add_app_template_filter(i18n.field, "field")


@bp.errorhandler(HTTPException)
def _error(e: HTTPException):
    """An HTML page for the console's errors (the API's own stay JSON)."""
    code = e.code or 500
    if e.description == "csrf":
        message = t("csrf_failed")
    elif code == 403:
        message = t("forbidden")
    elif code == 404:
        message = t("not_found")
    else:
        message = e.description or e.name
    return render_template("error.html", code=code, message=message), code


@bp.errorhandler(Exception)
def _unexpected(e: Exception):
    """A bug, as the console's page (the app's handler would answer the API's JSON 500)."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return render_template("error.html", code=500, message=t("internal_error")), 500


@bp.errorhandler(DatabaseUnavailable)
def _database_unavailable(e: DatabaseUnavailable):
    """The API's 503 (api/app.py), as a page that says why and reloads itself."""
    response = current_app.make_response((render_template("error.html", code=503, message=e.reason), 503))
    response.headers["Retry-After"] = str(e.retry_after)
    return response


@bp.get("/")
def queues():
    """Every live queue: state, progress, calls in progress, counts, calls per minute, ETA."""
    rows = services().workers.read(queue_rows, now=time.time())
    return render_template("queues.html", queues=labelled(rows, g.lang))


def _queue_arg(name: str = "code") -> str:
    code = request.args.get(name, "")
    if not code:
        abort(404)
    return code


def _queue_page(db, code: str, *, state, search, page, now):
    queue_id, _ = live_queue(db, code)
    [row] = queue_rows(db, now=now, code=code)
    return {
        "row": row,
        "outcomes": console.outcomes(db, queue_id),
        "timeline": console.calls_per_minute(db, now=now, minutes=TIMELINE_MINUTES, queue_id=queue_id).get(
            queue_id, [0] * TIMELINE_MINUTES
        ),
        "customers": console.customer_page(db, code, state=state, search=search, page=page, per_page=PER_PAGE),
    }


@bp.get("/queue")
def queue():
    """One queue: its numbers, outcomes by cause and result, calls per minute, its customers."""
    code = _queue_arg()
    state = request.args.get("state") or None
    if state is not None and state not in CUSTOMER_STATES:
        abort(400, description=f"state: one of {', '.join(CUSTOMER_STATES)}")
    search = request.args.get("q", "").strip()[:100] or None
    page = _page_arg()
    now = time.time()
    try:
        data = services().workers.read(_queue_page, code, state=state, search=search, page=page, now=now)
    except QueueNotFound:
        abort(404)
    labelled([data["row"]], g.lang)
    customers = data["customers"]
    pages = max(1, math.ceil(customers["total"] / PER_PAGE))
    return render_template(
        "queue.html",
        code=code,
        state=state,
        search=search or "",
        pages=pages,
        states=CUSTOMER_STATES,
        timeline_start=now - 60 * TIMELINE_MINUTES,
        **_done(code),
        **data,
    )


def _done(code: str) -> dict:
    """What the page says was just done: only what this session's own redirect sealed (a link
    from elsewhere says nothing), and its count only a whole number."""
    done, n = request.args.get("done"), _count_arg("n")
    if not hmac.compare_digest(request.args.get("seal", "").encode(), notice_seal(code, done, n).encode()):
        done = None
    return {"done": done, "done_n": n}


def _count_arg(name: str) -> int | None:
    raw = request.args.get(name, "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None


def _page_arg() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 10**6 else 1


@bp.get("/queue/attempts.csv")
def attempts_csv():
    """The queue's calls as CSV: the API's own export (GET /v2/autocall/queue/<code>/attempts.csv)."""
    return api_reports.attempts_csv(_queue_arg())


@bp.get("/customer")
def customer():
    """One customer of a queue: its fields, numbers and every call."""
    code, ext_id = _queue_arg("queue"), request.args.get("id", "")
    return render_template("customer.html", code=code, customer=_customer_or_404(code, ext_id))


def _customer_or_404(code: str, ext_id: str) -> dict:
    """The customer `ext_id` of the live queue `code`, as console.customer reads it; else 404."""
    try:
        found = services().workers.read(console.customer, code, ext_id)
    except QueueNotFound:
        abort(404)
    if found is None:
        abort(404)
    return found


def _sample() -> tuple[dict, dict | None]:
    """The fields to render the templates with: a customer named by ?queue=&id=, else the seed's."""
    code, ext_id = request.args.get("queue"), request.args.get("id")
    if not code or ext_id is None:
        return SAMPLE_FIELDS, None
    return _customer_or_404(code, ext_id)["fields"], {"queue": code, "id": ext_id}


def _template_views(loader: ivr.TemplateLoader, fields: dict) -> list[dict]:
    """Each template's check and, when it is valid, its call rendered for `fields`. On the
    compute thread: the loader is not made for several threads at once."""
    views = []
    for name in loader.names():
        view: dict = {"name": name, "problems": [str(p) for p in loader.check(name)], "steps": [], "error": None}
        if not view["problems"]:
            try:
                template = loader.get(name)
                script = template.render(fields)
            except ivr.TemplateError as e:
                view["error"] = str(e)
            else:
                view["description"] = template.description
                view["transcript"] = script.transcript()
                view["steps"] = [
                    {
                        "id": step.id,
                        "describe": step.describe(),
                        "files": [os.path.relpath(path, loader.sounds_dir) for path in getattr(step, "files", ())],
                    }
                    for step in script.steps.values()
                ]
        views.append(view)
    return views


@bp.get("/templates")
def templates():
    """Every template's check and its call rendered for a sample customer, with "listen"."""
    fields, chosen = _sample()
    s = services()
    views = s.workers.compute(_template_views, s.templates, fields)
    return render_template("templates.html", templates=views, fields=fields, chosen=chosen)


def _listen_wav(loader: ivr.TemplateLoader, name: str, fields: dict) -> bytes:
    script = loader.get(name).render(fields)
    return listen.stitch(listen.no_key_path(script))


@bp.get("/templates/<name>/listen.wav")
def listen_wav(name):
    """The call of template `name` for the sample customer, as one WAV: what a callee who
    presses no key hears, from the sound pack."""
    fields, _ = _sample()
    s = services()
    try:
        wav = s.workers.compute(_listen_wav, s.templates, name, fields)
    except ivr.UnknownTemplate:
        abort(404)
    except (ivr.TemplateError, listen.Unstitchable) as e:
        abort(409, description=str(e))
    return Response(wav, mimetype="audio/wav", headers={"Content-Length": str(len(wav))})


def _system(db, config, now: float) -> dict:
    window = CallingWindow(config.dialer.window_start, config.dialer.window_end, config.tz)
    return {
        "nodes": nodes.states(db),
        "backlog": outbox.backlog(db),
        "capped": console.capped_today(db, day_start=window.day_start(now), cap=config.dialer.daily_cap),
        "window_open": window.is_open(now),
        "opens_at": window.next_open(now),
    }


@bp.get("/system")
def system():
    """The dialer and its FreeSWITCH link, the calling window, the daily cap, the webhooks."""
    s = services()
    config, now = s.config, time.time()
    data = s.workers.read(_system, config, now)
    dialer = statefile.look(config.db_path) if config.db_path else None
    return render_template(
        "system.html",
        config=config,
        now=now,
        dialer=dialer,
        dialer_line=" ".join(status.render_dialer(dialer, now=now)).removeprefix("dialer: "),
        dialer_age=None if dialer is None else now - float(dialer.get("at", 0)),
        stale_after=statefile.STALE_AFTER,
        **data,
    )


@bp.get("/audit")
def audit():
    """What operators did, newest first."""
    page = _page_arg()
    rows, total = services().workers.read(operators.audit_page, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    return render_template("audit.html", rows=rows, page=page, pages=max(1, math.ceil(total / PER_PAGE)))
