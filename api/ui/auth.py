"""Who is looking at the console: login, sessions, CSRF tokens, roles and the login limit.

- A session is a random token in the cookie `autocall_ui` (HttpOnly; Secure; SameSite=Strict;
  Path=/ui/) and a `ui_session` row keyed by the token's SHA-256 (daemon/store/operators.py),
  so logout, `autocall users remove` or a new password end it at once. It ends after IDLE
  seconds without a request or MAX_AGE after login.
- Every form carries the session's CSRF token (`csrf`), compared in constant time; the login
  form, before any session, carries the one of its own short-lived cookie (double submit).
- Logins are limited per account name: after LIMIT_FAILURES failures in LIMIT_WINDOW seconds
  that name is refused until the window has passed; all names together get at most
  LIMIT_ALL_FAILURES failures a minute. Counted in this process (behind nginx every client
  has the proxy's address, so addresses are not counted). An attempt counts as a failure from
  the moment it begins, before its password is checked: attempts sent at once are limited
  like attempts sent one after the other.
- Every response of /ui/ carries a Content-Security-Policy that allows nothing from elsewhere
  and no inline script or style: text from customers' fields cannot become a script.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hmac
import logging
import re
import secrets
import time

import gevent
from flask import Flask, abort, current_app, g, jsonify, redirect, render_template, request, url_for

from api.db import DatabaseUnavailable
from api.services import services
from api.ui import bp, i18n
from daemon import passwords
from daemon.store import operators

log = logging.getLogger("autocall.api.ui")

COOKIE = "autocall_ui"
LOGIN_COOKIE = "autocall_ui_login"
LANG_COOKIE = "autocall_ui_lang"
PATH = "/ui/"
IDLE = 2 * 3600
MAX_AGE = 12 * 3600  # a shift
TOUCH_EVERY = 60.0  # seconds between two writes of a session's last request
LIMIT_FAILURES, LIMIT_WINDOW = 5, 900
LIMIT_ALL_FAILURES = 30  # a minute, over every name
OPEN_ENDPOINTS = ("ui.login", "ui.static", "ui.language")
EXTENSION = "autocall.ui"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self';"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class LoginLimit:
    """Failed logins per name in the last LIMIT_WINDOW seconds, and over all names in the last
    minute. Not shared between processes (docs/ui.md)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._by_name: dict[str, collections.deque] = {}
        self._all: collections.deque = collections.deque()

    def wait(self, name: str) -> float:
        """Seconds before `name` may try again; 0 when it may now."""
        now = self.clock()
        self._forget(now)
        failures = self._by_name.get(name) or collections.deque()
        waits = []
        if len(failures) >= LIMIT_FAILURES:
            waits.append(failures[0] + LIMIT_WINDOW - now)
        if len(self._all) >= LIMIT_ALL_FAILURES:
            waits.append(self._all[0] + 60 - now)
        return max(waits, default=0.0)

    def attempt(self, name: str) -> float:
        """Count an attempt of `name` as a failure now, before its password is checked (else
        attempts sent at once would all pass `wait`); its time, for `succeeded`."""
        now = self.clock()
        self._by_name.setdefault(name, collections.deque()).append(now)
        self._all.append(now)
        return now

    def succeeded(self, name: str, attempt: float):
        """The attempt begun at `attempt` succeeded: `name`'s failures are forgotten, and this
        attempt no longer counts against every name."""
        self._by_name.pop(name, None)
        with contextlib.suppress(ValueError):  # forgotten already: older than a minute
            self._all.remove(attempt)

    def cancel(self, name: str, attempt: float):
        """The attempt begun at `attempt` was not judged (the database could not answer): it
        no longer counts, neither for `name` nor over every name."""
        for failures in (self._by_name.get(name, collections.deque()), self._all):
            with contextlib.suppress(ValueError):  # forgotten already
                failures.remove(attempt)

    def _forget(self, now: float):
        while self._all and self._all[0] < now - 60:
            self._all.popleft()
        for name in list(self._by_name):
            failures = self._by_name[name]
            while failures and failures[0] < now - LIMIT_WINDOW:
                failures.popleft()
            if not failures:
                del self._by_name[name]


@dataclasses.dataclass
class Console:
    """What the console keeps in its process, beside the database."""

    limit: LoginLimit
    touching: set[str] = dataclasses.field(default_factory=set)  # sessions whose last request is being noted


def install(app: Flask):
    app.extensions[EXTENSION] = Console(LoginLimit())


def _console() -> Console:
    return current_app.extensions[EXTENSION]


# --- every request of /ui/ ----------------------------------------------------------------


@bp.before_request
def _identify():
    """Attach the session (g.session) and the language (g.lang); a request without a valid
    session goes to the login page (the JSON endpoints answer 401)."""
    lang = request.cookies.get(LANG_COOKIE, i18n.DEFAULT)
    g.lang = lang if lang in i18n.LANGUAGES else i18n.DEFAULT
    g.session = None
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    token = request.cookies.get(COOKIE, "")
    found = _valid_session(token) if token else None
    if found is None:
        if request.path.endswith(".json"):
            return jsonify(code=401, content="log in again"), 401
        target = request.full_path.rstrip("?") if request.method == "GET" else url_for("ui.queues")
        return redirect(url_for("ui.login", next=target), 303)
    g.session = found
    if request.method == "POST":
        check_csrf(request.form.get("csrf", ""), found.csrf)
    return None


def _valid_session(token: str) -> operators.Session | None:
    s = services()
    found = s.workers.read(operators.session, token)
    if found is None:
        return None
    now = time.time()
    # No write here may turn a page that only reads into a 503 (or hold it up) while another
    # process holds the write lock: a row that cannot be deleted or touched now is next time.
    if now - found.seen_at > IDLE or now - found.created_at > MAX_AGE:
        with contextlib.suppress(DatabaseUnavailable):
            s.workers.write(_in_transaction, operators.close_session, found.token_hash)
        return None
    touching = _console().touching
    if now - found.seen_at > TOUCH_EVERY and found.token_hash not in touching:  # one write a minute at most
        touching.add(found.token_hash)
        gevent.spawn(_touch, s, touching, found, now)  # not waited for: the page only reads
    return found


def _touch(s, touching: set[str], found: operators.Session, now: float):
    """Note the session's last request (in the background: with the write lock held elsewhere
    this waits up to the lock timeout, and must not hold up the page or be its 503)."""
    try:
        s.workers.write(_in_transaction, operators.touch_session, found.token_hash, now=now)
    except DatabaseUnavailable as e:
        log.info("console session of %r: its last request not noted yet (%s)", found.user, e.reason)
    finally:
        touching.discard(found.token_hash)


def _in_transaction(db, write, *args, **kwargs):
    with db.atomic():
        write(db, *args, **kwargs)


def check_csrf(given: str, expected: str):
    """400 unless the form's token is the expected one."""
    if not (given and expected and hmac.compare_digest(given.encode(), expected.encode())):
        abort(400, description="csrf")


def notice_seal(*parts) -> str:
    """A seal over the line the console shows after a redirect (`done=` on the queue page),
    keyed by this session's CSRF token: a link from elsewhere cannot make the console say that
    a queue was stopped or ids put on the DNC list when nobody did it."""
    text = "\0".join(str(part) for part in parts).encode()
    return hmac.new(g.session.csrf.encode(), text, "sha256").hexdigest()[:32]


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "ui.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def operator_only(view):
    """The view is for operators: a viewer gets 403."""

    @functools.wraps(view)
    def checked(*args, **kwargs):
        if g.session is None or not g.session.may_act:
            abort(403)
        return view(*args, **kwargs)

    return checked


def set_cookie(response, name: str, value: str, max_age: int | None):
    response.set_cookie(name, value, max_age=max_age, path=PATH, secure=True, httponly=True, samesite="Strict")


# --- login and logout ---------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form; POST checks the name and password and opens a session."""
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    target = _safe_next(request.values.get("next", ""))
    error, status = None, 200
    if request.method == "POST" and LOGIN_COOKIE not in request.cookies:
        # No login cookie at all: most likely plain HTTP, where the browser keeps no Secure
        # cookie (a reload, which the CSRF sentence asks for, would never help).
        error, status = i18n.label(g.lang, "login_insecure"), 400
    elif request.method == "POST":
        check_csrf(request.form.get("csrf", ""), request.cookies.get(LOGIN_COOKIE, ""))
        name = request.form.get("username", "").strip()[:64]
        password = request.form.get("password", "")
        wait = _console().limit.wait(name)
        if wait:
            error, status = i18n.label(g.lang, "login_limited", minutes=max(1, round(wait / 60))), 429
            log.warning("console login of %r refused: too many failures", name)
        else:
            attempt = _console().limit.attempt(name)
            try:
                response = _try_login(name, password, target, attempt)
            except DatabaseUnavailable:
                _console().limit.cancel(name, attempt)  # no password was judged wrong: not a guess
                raise
            if response is not None:
                return response
            error, status = i18n.label(g.lang, "login_failed"), 401
    page = render_template("login.html", csrf=token, next=target, error=error)
    response = current_app.make_response((page, status))
    set_cookie(response, LOGIN_COOKIE, token, 3600)
    return response


def _try_login(name: str, password: str, target: str, attempt: float):
    """A redirect into the console with a new session, or None (the attempt, counted as a
    failure when it began, stays counted)."""
    s = services()
    account = s.workers.read(operators.password_of, name) if operators.valid_name(name) else None
    ok = s.workers.compute(passwords.verify_password, password, account[1] if account else None)
    if not ok or account is None:
        log.warning("console login of %r failed", name)
        return None
    token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()
    if not s.workers.write(_open, account, name, token, csrf, now):
        log.warning("console login of %r failed: the account was changed or removed meanwhile", name)
        return None
    _console().limit.succeeded(name, attempt)
    log.info("console login of %r", name)
    response = redirect(target, 303)
    set_cookie(response, COOKIE, token, MAX_AGE)
    response.delete_cookie(LOGIN_COOKIE, path=PATH, secure=True, httponly=True, samesite="Strict")
    return response


def _open(db, account: tuple[int, str], name: str, token: str, csrf: str, now: float) -> bool:
    """Open the session, if the account still has the hash its password was checked against:
    `autocall users password` or `remove` may have run during the check (and a removed
    account's id may already be a new account's). Whether it was opened."""
    user_id, checked_hash = account
    with db.atomic():
        if operators.password_hash_of(db, user_id) != checked_hash:
            return False
        operators.prune_sessions(db, idle_before=now - IDLE, created_before=now - MAX_AGE)
        operators.open_session(db, user_id, token, csrf, now=now)
        operators.record(db, name, "login", now=now)
    return True


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _safe_next(target: str) -> str:
    """`target` if it is a page of the console, else the queues page (no open redirect; no
    control character, which a Location header cannot carry: a line break there was a 500)."""
    if target.startswith(PATH) and "\\" not in target and not _CONTROL.search(target):
        return target
    return url_for("ui.queues")


@bp.post("/logout")
def logout():
    """End this session."""
    session = g.session
    s = services()
    s.workers.write(_close, session.token_hash, session.user, time.time())
    response = redirect(url_for("ui.login"), 303)
    response.delete_cookie(COOKIE, path=PATH, secure=True, httponly=True, samesite="Strict")
    return response


def _close(db, token_hash: str, name: str, now: float):
    with db.atomic():
        operators.close_session(db, token_hash)
        operators.record(db, name, "logout", now=now)


@bp.get("/lang/<lang>")
def language(lang):
    """Switch the console's language (a preference, kept in a cookie)."""
    if lang not in i18n.LANGUAGES:
        abort(404)
    response = redirect(_safe_next(request.args.get("next", "")), 303)
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path=PATH, secure=True, samesite="Strict")
    return response
