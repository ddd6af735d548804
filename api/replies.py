"""The seed's response shape, shared by every view and error handler."""

from __future__ import annotations

from flask import jsonify
from flask.json.provider import DefaultJSONProvider


class JSONProvider(DefaultJSONProvider):
    """Readable Vietnamese in replies; a lone surrogate echoed from a request comes back escaped."""

    ensure_ascii = False
    sort_keys = False

    def dumps(self, obj, **kwargs):
        text = super().dumps(obj, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = super().dumps(obj, **{**kwargs, "ensure_ascii": True})
        return text


def reply(code: int, content: str, **extra):
    """{"code", "content", ...} with HTTP status = code."""
    response = jsonify({"code": code, "content": content, **extra})
    response.status_code = code
    return response


def invalid(errors: list[dict], total: int | None = None):
    """400 for a request whose fields are wrong, with a reason for each (the first 1,000 of
    `total`: api/problems.py)."""
    return reply(400, "invalid request", errors=errors, error_count=len(errors) if total is None else total)
