"""What an operator may do from the console: stop or start a queue, add customer ids to its
DNC list. Each is the store call the API's command makes (api/commands.py), so a stop from
here stops dialing exactly as `POST /queue/stop` does, and is written to the audit log."""

from __future__ import annotations

import json
import logging
import time

from flask import abort, g, redirect, request, url_for

from api import schema
from api.services import services
from api.ui import bp, i18n
from api.ui.auth import notice_seal, operator_only
from daemon.store import operators
from daemon.store.customers import block
from daemon.store.queue_state import QueueNotFound, set_running

log = logging.getLogger("autocall.api.ui")

MAX_DNC_IDS = 1000  # per form; the API takes any number


def _set_running(db, code: str, running: bool, who: str, now: float):
    with db.atomic():
        set_running(db, code, running, now=lambda: now)
        operators.record(db, who, "queue.start" if running else "queue.stop", target=code, now=now)


def _switch(running: bool):
    code = request.form.get("code", "")
    who = g.session.user
    try:
        services().workers.write(_set_running, code, running, who, time.time())
    except QueueNotFound:
        abort(404)
    log.info("console: %s %s queue %r", who, "started" if running else "stopped", code)
    done = "started" if running else "stopped"
    return redirect(url_for("ui.queue", code=code, done=done, seal=notice_seal(code, done, None)), 303)


@bp.post("/queue/stop")
@operator_only
def stop():
    """Stop the queue: no new call of it once this answers (as POST /queue/stop)."""
    return _switch(False)


@bp.post("/queue/start")
@operator_only
def start():
    """Start the queue again (as POST /queue/start)."""
    return _switch(True)


def dnc_ids(text: str, lang: str) -> list[str]:
    """The ids of the form's text, one a line, blank lines dropped, each as the API takes an id;
    400 with the reason otherwise."""
    ids = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    if not ids:
        abort(400, description=i18n.label(lang, "dnc_empty"))
    if len(ids) > MAX_DNC_IDS:
        abort(400, description=i18n.label(lang, "dnc_too_many", n=MAX_DNC_IDS))
    for ext_id in ids:
        if schema.customer_id_problem(ext_id):
            abort(400, description=i18n.label(lang, "dnc_bad_id", id=ext_id[:100]))
    return ids


@bp.post("/queue/dnc")
@operator_only
def dnc():
    """Put customer ids on the queue's DNC list (as POST /queue/dnc): pending ones are never dialed."""
    code = request.form.get("code", "")
    ids = dnc_ids(request.form.get("ids", ""), g.lang)
    who = g.session.user
    try:
        services().workers.write(_block, code, ids, who, time.time())
    except QueueNotFound:
        abort(404)
    log.info("console: %s put %d ids on the DNC list of %r", who, len(ids), code)
    seal = notice_seal(code, "dnc", len(ids))
    return redirect(url_for("ui.queue", code=code, done="dnc", n=len(ids), seal=seal), 303)


def _block(db, code: str, ids: list[str], who: str, now: float):
    """The API's block of `ids` (at most MAX_DNC_IDS: one chunk) and its audit line, in one
    transaction: both or neither. QueueNotFound (nothing written) without a live queue `code`."""
    forms = list(dict.fromkeys(form for ext_id in ids for form in schema.dnc_forms(ext_id)))  # the audit: as typed
    with db.atomic():
        if not block(db, code, forms, chunk=len(forms), now=lambda: now):
            raise QueueNotFound(code)
        # Every id, as a JSON list: one id may hold ", " (and a cut list would name ids never sent).
        operators.record(db, who, "queue.dnc", target=code, detail=json.dumps(ids, ensure_ascii=False), now=now)
