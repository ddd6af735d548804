"""The answers autocall-api's HTTP layer gives by itself (api/http.py): a request it refuses
before the application sees it, and gevent's own errors, as complete HTTP/1.1 responses with
the API's JSON body (`code`, `content`, a reason in `errors`), so no client ever reads plain
text or HTML from the API."""

from __future__ import annotations

import json


class Refusal(Exception):
    """A request the server answers itself: an HTTP status, a sentence, a reason; `body`, when
    given, is the whole JSON answer instead (with the same code and content)."""

    def __init__(self, code: int, content: str, reason: str = "", body: dict | None = None):
        super().__init__(content)
        self.code, self.content, self.reason, self.body = code, content, reason, body


IMPORT_PATH = "/v2/autocall/queue"  # POST: the seed's import


def import_too_large(limit: int) -> dict:
    """The import's answer to a body over `limit` bytes: the seed's `import fail` with empty
    lists (DESIGN §2), whether the server or the application finds it too large."""
    reason = f"body larger than {limit} bytes; split the import"
    return {
        "code": 400,
        "content": "import fail",
        "data": {"fail": [], "success": []},
        "errors": [{"field": "body", "reason": reason}],
        "error_count": 1,
    }


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


def error_response(code: int, content: str, reason: str = "", extra_headers=(), body: dict | None = None) -> bytes:
    """A complete HTTP/1.1 response with the API's JSON body (`body`, else one made of `code`,
    `content` and `reason`); the connection closes after it."""
    if body is None:
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
    if "Unexpected Content-Length" in text:
        return "a HEAD request has no body, so no Content-Length but 0"
    if "Content-Length" in text or "integer string conversion" in text:  # the latter: 4,300 digits or more
        return "Content-Length must be a whole number of bytes"
    return text.splitlines()[0][:200] if text else "malformed request"
