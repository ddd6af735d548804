"""Flask application factory: config in, WSGI app out.

Every response is JSON with `code` and `content`, and the HTTP status equals `code`,
errors included (401, 404, 405, 413, 500 never produce an HTML page).
"""

from __future__ import annotations

import hmac
import logging
import re
from urllib.parse import quote

from flask import Flask, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import PathConverter, UnicodeConverter

from api import commands, health, reports, ui
from api.db import DatabaseUnavailable, Workers
from api.replies import JSONProvider, reply
from api.services import Services
from daemon.config import Config
from daemon.errors import ConfigError
from daemon.ivr import TemplateLoader
from daemon.store.schema import database, open_database

log = logging.getLogger("autocall.api")

# Short English sentences for errors raised by Flask/Werkzeug themselves.
_CONTENT = {
    401: "unauthorized",
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
    500: "internal error",
}


_ENCODED = re.compile(r"%2[fF]|%25")


def _decode_segment(value: str) -> str:
    return _ENCODED.sub(lambda m: "%" if m.group() == "%25" else "/", value)


class SegmentConverter(UnicodeConverter):
    """A path segment where %2F is a "/" and %25 a "%" (api/http.py leaves those two encoded,
    so that a queue code holding "/" can be named in one segment)."""

    def to_python(self, value):
        return _decode_segment(value)

    def to_url(self, value):
        return quote(value, safe="")


class EncodedPathConverter(PathConverter):
    """`<path:...>` with the same decoding: raw slashes separate, %2F is part of the value."""

    def to_python(self, value):
        return _decode_segment(value)


# Every printable ASCII character but the space: what a query string may hold as it is.
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


def _escaped_query(wsgi_app):
    """`wsgi_app` with the raw non-ASCII bytes of a query string percent-encoded: the same URL
    (RFC 3986), but Werkzeug decodes a raw query as strict UTF-8 (`?next=\\xff` raised
    UnicodeDecodeError, a 500) but reads their escapes without complaint."""

    def escaped(environ, start_response):
        query = environ.get("QUERY_STRING", "")
        if not query.isascii():  # a WSGI str holds the request's bytes as latin-1
            environ["QUERY_STRING"] = quote(query.encode("latin-1"), safe=_QUERY_SAFE)
        return wsgi_app(environ, start_response)

    return escaped


def create_app(config: Config, db=None) -> Flask:
    """Build the API for `config`; `db` defaults to opening `config.database`."""
    if not config.api.tokens:
        raise ConfigError("api.tokens: no bearer token configured (set AUTOCALL_API_TOKENS)")
    app = Flask(__name__)
    app.url_map.converters.update(default=SegmentConverter, string=SegmentConverter, path=EncodedPathConverter)
    app.url_map.merge_slashes = False  # its redirect would be an HTML page, and "//" may be in a queue code
    app.config["MAX_CONTENT_LENGTH"] = config.api.max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False  # its answer is an empty text/html 200; no CORS here
    app.json = JSONProvider(app)
    where, budget = config.database if db is None else db.database, config.api.lock_timeout
    if db is None:
        db = open_database(where, busy_timeout=budget)
        db.close()  # the connection that migrated it: the worker threads have their own
    workers = Workers(
        lambda: database(where, busy_timeout=budget, one_thread=True),
        readers=config.api.read_threads,
        lock_timeout=budget,
    )
    Services(config=config, db=db, templates=TemplateLoader.from_config(config), workers=workers).install(app)
    tokens = [t.encode() for t in config.api.tokens]

    @app.before_request
    def authenticate():
        if request.endpoint in ("health.healthz", None) or request.blueprint == ui.NAME:
            return None  # health checks, 404/405 (their own JSON reply), the console (its own login)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        given = given.strip().encode()
        # Compare against every token, in constant time, so timing reveals nothing.
        ok = False
        for token in tokens:
            ok |= hmac.compare_digest(given, token)
        if scheme.lower() != "bearer" or not ok:
            return reply(401, "unauthorized")
        return None

    @app.errorhandler(DatabaseUnavailable)
    def database_unavailable(e: DatabaseUnavailable):
        log.warning("%s %s: database unavailable: %s", request.method, request.path, e.reason)
        # The transaction at hand was rolled back, but a large import or DNC list commits in
        # chunks: what it wrote before stays (docs/api.md), so "nothing was written" would mislead.
        # A read wrote nothing: that is not for it to say.
        kept = "" if request.method in ("GET", "HEAD") else " (what it wrote before is kept)"
        reason = f"{e.reason}; the request was not finished: send it again{kept}"
        response = reply(503, "database unavailable", errors=[{"reason": reason}])
        response.headers["Retry-After"] = str(e.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        code = e.code or 500
        response = reply(code, _CONTENT.get(code, e.name.lower()))
        if isinstance(e, MethodNotAllowed) and e.valid_methods:
            response.headers["Allow"] = ", ".join(e.valid_methods)  # RFC 9110 15.5.6
        return response

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return reply(500, _CONTENT[500])

    for blueprint in (commands.bp, reports.bp, health.bp):
        app.register_blueprint(blueprint)
    ui.install(app)
    app.wsgi_app = _escaped_query(app.wsgi_app)  # type: ignore[method-assign]
    return app
