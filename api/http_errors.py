"""The answers autocall-api's HTTP layer gives by itself (api/http.py): a request it refuses
before the application sees it, and gevent's own errors, as complete HTTP/1.1 responses with
the API's JSON body (`code`, `content`, a reason in `errors`), so no client ever reads plain
text or HTML from the API."""

from __future__ import annotations

import json


class Refusal(Exception):
    """A request the server answers itself: an HTTP status, a sentence, a reason."""

    def __init__(self, code: int, content: str, reason: str = ""):
        super().__init__(content)
        self.code, self.content, self.reason = code, content, reason


_STATUS = {
    400: "Bad Request",
    401: "Unauthorized",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def error_response(code: int, content: str, reason: str = "", extra_headers=()) -> bytes:
    """A complete HTTP/1.1 response with the API's JSON body; the connection closes after it."""
    body = {"code": code, "content": content}
    if reason:
        body["errors"] = [{"reason": reason}]
    data = json.dumps(body, ensure_ascii=False).encode()
    head = [
        f"HTTP/1.1 {code} {_STATUS[code]}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        "Connection: close",
        *extra_headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data


def parse_error_reason(error: ValueError) -> str:
    """A sentence for a request gevent could not parse (its messages name its internals)."""
    text = getattr(error, "formatted_message", None) or str(error)
    if "Content-Length" in text or "invalid literal for int()" in text:
        return "Content-Length must be a whole number of bytes"
    return text.splitlines()[0][:200] if text else "malformed request"
