"""The HTTP layer of `autocall-api`: gevent's WSGI server with deadlines, a connection cap
and JSON errors.

What it adds to `gevent.pywsgi`, and a caller may rely on:

- A request's line and headers must arrive within `header_timeout` seconds of its first
  byte, its body within `body_timeout` of the end of its headers; otherwise the answer is
  `408` and the connection is closed. Each send of a response must finish within
  `body_timeout` too, else the connection is dropped. An idle kept-alive connection is closed after
  `keepalive_timeout`; a new one that sends nothing gets the same `header_timeout`.
- At most `max_connections` connections are served at once; the next ones are answered
  `503` at once (with `Retry-After`) and closed, so a flood of slow clients never makes
  `/healthz` wait.
- A request with a body and no valid bearer token is answered `401` before its body is
  read (else anyone who can connect makes the server hold `max_body_bytes` per connection),
  `/healthz` included (only its bodiless GET and HEAD need no token); the web console's
  forms under `/ui/` (their own login, api/ui/) are read up to `CONSOLE_MAX_BODY` bytes instead.
- The body is read here, whole, before the application runs: over `max_body_bytes`
  (by Content-Length or, chunked, by what arrives) is `413` (for the import, the seed's
  `400 import fail`: `http_errors.import_too_large`); the application gets the
  exact bytes and a Content-Length, and the same bytes object as `environ["autocall.body"]`
  (so a large body is not copied again on its way to the JSON reader).
- Every answer the server produces itself (400, 401, 408, 413, 414, 431, 500, 503) is JSON with
  `code` and `content`, like the application's.
- `TCP_NODELAY` on every connection, and a response's headers go out in one send with the
  start of its body, so a kept-alive request is not delayed by Nagle + delayed ACK.
- `%2F` and `%25` stay encoded in PATH_INFO, so a path segment can hold a "/" (the
  application's URL converters decode them: api/app.py).
"""

from __future__ import annotations

import errno
import hmac
import http.client
import io
import logging
import re
import socket
import time
from urllib.parse import unquote

import gevent
from gevent.pywsgi import (
    MAX_REQUEST_LINE,
    Input,
    WSGIHandler,
    WSGIServer,
    _InvalidClientInput,  # what its chunk parser raises on bad framing
)

from api.http_errors import IMPORT_PATH, Refusal, error_response, import_too_large, parse_error_reason
from api.jsonbody import BODY_KEY
from daemon.config import ApiConfig

log = logging.getLogger("autocall.api.http")

READ_PIECE = 65536  # bytes read from the socket at a time
REFUSE_DRAIN_SECONDS = 1.0  # a refused client's request is read (and dropped) this long, so close sends no RST
MAX_REFUSING = 64  # refused connections lingering at once; beyond that they close after the 503
MAX_ACCEPT = 16  # connections accepted per wake-up, before their handlers run (gevent: 100)
ACCEPT_PAUSE = 0.1  # out of file descriptors: stop accepting this long (the backlog waits)
MAX_HEADER_BYTES = 65536  # a request's header lines in all (gevent limits only each line, and their number)
# The web console (api/ui/) has its own login, so its forms come without a bearer token; they
# are small, so a body bigger than this is refused before anyone is known.
CONSOLE_PREFIX = "/ui/"
CONSOLE_MAX_BODY = 256 * 1024


class _Deadline(Exception):
    """A header or body deadline passed (raised by gevent.Timeout inside a read)."""


_BUSY = error_response(503, "server busy", "too many connections; try again", ("Retry-After: 1",))
_KEPT_ENCODED = re.compile(r"(%2[fF]|%25)")
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")  # RFC 9112's HTTP-version
_DIGITS = re.compile(r"[0-9]+")  # RFC 9110's Content-Length, 1*DIGIT (re's \d takes every script's digits)


def path_info(raw_path: str) -> str:
    """PATH_INFO as gevent makes it (percent-decoded, latin-1), except %2F and %25 stay."""
    return "".join(
        piece if _KEPT_ENCODED.fullmatch(piece) else unquote(piece, encoding="latin-1")
        for piece in _KEPT_ENCODED.split(raw_path)
    )


class ApiHandler(WSGIHandler):
    """One connection: requests read under deadlines, bodies read whole, errors as JSON."""

    _requests_done = 0
    # A client that stops reading the response is dropped quietly, like one that hung up.
    ignored_socket_errors = WSGIHandler.ignored_socket_errors + (errno.ETIMEDOUT,)

    def handle(self):
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a test's socketpair); nothing to tune
        super().handle()

    def handle_one_request(self):
        if self.rfile.closed:
            return None
        limits: ApiConfig = self.server.limits
        try:
            if not self._wait_for_request(limits):
                return None
            with gevent.Timeout(limits.header_timeout, _Deadline):
                if not self._read_head():
                    return None
            self.environ = self.get_environ()
            console = self.environ["PATH_INFO"].startswith(CONSOLE_PREFIX)
            if (self.content_length or self.wsgi_input.chunked_input) and not (console or self._authorized(limits)):
                # Not read: up to max_body_bytes held in memory for anyone who can connect.
                raise Refusal(401, "unauthorized")
            limit = CONSOLE_MAX_BODY if console else limits.max_body_bytes
            with gevent.Timeout(limits.body_timeout, _Deadline):
                body = self._read_body(limit)
            if body is None:
                return None
        except _Deadline:
            return self._refusal(Refusal(408, "request timeout", "the request did not arrive in time"))
        except Refusal as refusal:
            if refusal.code == 413 and self.command == "POST" and self.environ.get("PATH_INFO") == IMPORT_PATH:
                refusal = Refusal(400, "import fail", refusal.reason, body=import_too_large(limit))  # the seed's shape
            return self._refusal(refusal)
        except OSError:
            return None  # the client went away mid-request
        self._give_body(body)
        self.application = self.server.application
        self._requests_done += 1
        self.handle_one_response()
        if self.close_connection or self.rfile.closed:
            return None
        return True

    def _wait_for_request(self, limits: ApiConfig) -> bool:
        """Wait for a request's first byte: False on EOF or an idle kept-alive connection."""
        first = self._requests_done == 0
        try:
            with gevent.Timeout(limits.header_timeout if first else limits.keepalive_timeout, _Deadline):
                return bool(self.rfile.peek(1))
        except _Deadline:
            if first:
                raise
            return False  # idle keep-alive: close quietly, as any HTTP server does

    def _read_head(self) -> bool:
        line = self.rfile.readline(MAX_REQUEST_LINE)
        if not line:
            return False
        if not line.endswith(b"\n"):
            raise Refusal(414, "request line too long", f"the request line must be under {MAX_REQUEST_LINE} bytes")
        self.requestline = line.decode("latin-1")
        self.response_length = 0
        try:
            self.read_request(self.requestline)
        except http.client.HTTPException as e:  # more than 100 header lines
            raise Refusal(431, "request header too large", str(e)) from None
        except ValueError as e:
            if "Line too long" in str(e):  # gevent's word for a header line over 64 KiB
                raise Refusal(431, "request header too large", "a header line is longer than 65536 bytes") from None
            raise Refusal(400, "bad request", parse_error_reason(e)) from None
        # Across every Transfer-Encoding line: gevent reads the first, frames by them all joined.
        codings = [c.strip(" \t").lower() for value in self._transfer_codings for c in value.split(",")]
        if codings and codings != ["chunked"]:
            raise Refusal(400, "bad request", f"unsupported Transfer-Encoding {', '.join(self._transfer_codings)!r}")
        if codings and self.request_version == "HTTP/1.0":  # framing a 1.0 peer cannot mean (RFC 9112 6.1)
            raise Refusal(400, "bad request", "Transfer-Encoding needs HTTP/1.1")
        # Framed two ways, a proxy in front may see other requests than we do (RFC 9112 6.3).
        lengths = {value.strip() for value in self._content_lengths}
        if len(lengths) > 1 or (lengths and codings):
            raise Refusal(400, "bad request", "use one Content-Length, or Transfer-Encoding: chunked alone")
        return True

    def _check_http_version(self):
        # gevent reads the digits with int(): "HTTP/1.x" came out as a Content-Length error, "HTTP/1.+1" passed
        if _VERSION.fullmatch(self.request_version) and super()._check_http_version():
            return True
        raise Refusal(400, "bad request", f"unsupported HTTP version {self.request_version[:20]!r}; send HTTP/1.1")

    def MessageClass(self, rfile, *args):  # noqa: N802 (gevent's name)
        headers = super().MessageClass(_HeaderBudget(rfile, MAX_HEADER_BYTES), *args)
        # before read_request drops Content-Length when the body is chunked
        self._content_lengths = headers.get_all("content-length") or ()
        self._transfer_codings = headers.get_all("transfer-encoding") or ()
        # and before it reads a Content-Length with int(), which takes "+19", "1_9" and "19\v"
        for value in self._content_lengths:
            if not _DIGITS.fullmatch(value.strip(" \t")):
                raise Refusal(400, "bad request", "Content-Length must be a whole number of bytes")
        return headers

    def _read_body(self, limit: int) -> bytes | None:
        """The whole body (b"" when none); None if the client left; Refusal when too large."""
        source = self.wsgi_input
        if self.content_length is not None and self.content_length > limit:
            raise Refusal(413, "request body too large", f"at most {limit} bytes")
        if not source.chunked_input and not self.content_length:
            return b""
        pieces: list[bytes] = []
        size = 0
        while True:
            try:
                piece = source.read(READ_PIECE)
            except _InvalidClientInput as e:
                raise Refusal(400, "bad request", str(e)) from None
            except OSError:
                return None
            if not piece:
                return b"".join(pieces)
            size += len(piece)
            if size > limit:
                raise Refusal(413, "request body too large", f"at most {limit} bytes")
            pieces.append(piece)

    def _authorized(self, limits: ApiConfig) -> bool:
        """The request carries one of the API's bearer tokens (as api/app.py checks it): only
        then is its body read. /healthz too: only its bodiless GET and HEAD need no token."""
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        ok = False
        for token in limits.tokens:
            ok |= hmac.compare_digest(given.strip().encode(), token.encode())
        return ok and scheme.lower() == "bearer"

    def _give_body(self, body: bytes):
        env = self.environ
        env["wsgi.input"] = io.BytesIO(body)  # shares `body`: no copy until written to
        env[BODY_KEY] = body
        env["wsgi.input_terminated"] = True
        env.pop("HTTP_TRANSFER_ENCODING", None)
        if body or "CONTENT_LENGTH" in env:
            env["CONTENT_LENGTH"] = str(len(body))
        self.wsgi_input = Input(self.rfile, 0)  # nothing left to discard after the response

    def get_environ(self):
        env = super().get_environ()
        path = self.path.split("?", 1)[0]
        env["PATH_INFO"] = path_info(path)
        return env

    def _refusal(self, refusal: Refusal):
        self.close_connection = True
        log.info(
            "refused a request from %s: %d %s%s",
            self.client_address[0],
            refusal.code,
            refusal.content,
            f" ({refusal.reason})" if refusal.reason else "",
        )
        # Sent here, then what the client is still sending is read (and dropped) for a moment:
        # closing on unread bytes sends a RST, which can destroy the answer before it is read.
        try:
            self._sendall(error_response(refusal.code, refusal.content, refusal.reason, body=refusal.body))
            self.socket.shutdown(socket.SHUT_WR)
            with gevent.Timeout(REFUSE_DRAIN_SECONDS, False):
                while self.socket.recv(READ_PIECE):
                    pass
        except OSError:
            pass
        return None

    def _send_error_response_if_possible(self, error_code):
        # gevent's own 400/500 answers (after the application ran) are plain text; ours are JSON.
        if self.response_length:
            self.close_connection = True
            return
        content = "internal error" if error_code == 500 else "bad request"
        try:
            self._sendall(error_response(error_code, content))
        except OSError:
            pass
        self.close_connection = True

    def _sendall(self, data):
        # Each send of a response must finish within body_timeout: a client that stops
        # reading would otherwise hold its connection (and a slot under the cap) forever.
        try:
            with gevent.Timeout(self.server.limits.body_timeout, _Deadline):
                super()._sendall(data)
        except _Deadline:
            raise OSError(errno.ETIMEDOUT, "the client stopped reading the response") from None

    def _write_with_headers(self, data):
        # One send for headers and a small first piece of body: two small sends on a kept-alive
        # connection would meet Nagle + delayed ACK (40 ms) even where TCP_NODELAY is refused.
        self.headers_sent = True
        self.finalize_headers()
        if self.command == "HEAD":  # no body, so no chunks: gevent would still end them with "0\r\n\r\n"
            self.response_use_chunked = False
        head = bytearray(b"HTTP/1.1 " + self.status + b"\r\n")
        for header, value in self.response_headers:
            head += header + b": " + value + b"\r\n"
        head += b"\r\n"
        if data and not self.response_use_chunked and len(data) <= READ_PIECE:
            self._sendall(bytes(head) + data)
            return
        self._sendall(head)
        self._write(data)


class _HeaderBudget:
    """The connection's rfile as the header parser reads it: 431 once the lines pass `budget` bytes."""

    def __init__(self, rfile, budget: int):
        self._rfile, self._left = rfile, budget

    def readline(self, limit=-1):
        line = self._rfile.readline(limit)
        self._left -= len(line)
        if self._left < 0:
            raise Refusal(
                431, "request header too large", f"the header lines must be under {MAX_HEADER_BYTES} bytes in all"
            )
        return line


class ApiServer(WSGIServer):
    """gevent's WSGIServer with the limits of `api` settings (see the module docstring);
    `active` counts the connections being served."""

    handler_class = ApiHandler
    max_accept = MAX_ACCEPT

    def __init__(self, listener, application, limits: ApiConfig, **kwargs):
        super().__init__(listener, application, **kwargs)
        self.limits = limits
        self.active = 0
        self._refusing = 0
        self._out_of_files_said = float("-inf")

    def handle(self, sock, address):
        if self.active >= self.limits.max_connections:
            self._refuse(sock)
            return
        self.active += 1
        try:
            super().handle(sock, address)
        finally:
            self.active -= 1

    def do_read(self):
        try:
            return super().do_read()
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE):
                raise
        # gevent would log a traceback per failed accept; pause instead, with a line now and then.
        now = time.monotonic()
        if now - self._out_of_files_said > 10:
            self._out_of_files_said = now
            log.warning(
                "out of file descriptors with %d connections: pausing accepts "
                "(lower api.max_connections or raise LimitNOFILE=)",
                self.active,
            )
        self.stop_accepting()
        gevent.spawn_later(ACCEPT_PAUSE, self._resume_accepting)
        return None

    def _resume_accepting(self):
        if self.started:
            self.start_accepting()

    def _refuse(self, sock):
        # Read what the client already sent (unread bytes would turn our close into a RST that
        # can destroy the 503 before it is read), answer, and linger while few others do.
        lingering = self._refusing < MAX_REFUSING
        self._refusing += lingering
        try:
            _read_waiting(sock)
            sock.settimeout(REFUSE_DRAIN_SECONDS)
            sock.sendall(_BUSY)
            sock.shutdown(socket.SHUT_WR)
            if lingering:
                with gevent.Timeout(REFUSE_DRAIN_SECONDS, False):
                    while sock.recv(READ_PIECE):
                        pass
        except OSError:
            pass
        finally:
            self._refusing -= lingering
            sock.close()


def _read_waiting(sock):
    sock.settimeout(0)
    try:
        while sock.recv(READ_PIECE):
            pass
    except BlockingIOError:
        pass
