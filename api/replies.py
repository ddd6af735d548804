"""The seed's response shape, shared by every view and error handler."""
from __future__ import annotations

from flask import jsonify


def reply(code: int, content: str, **extra):
    """{"code", "content", ...} with HTTP status = code."""
    response = jsonify({"code": code, "content": content, **extra})
    response.status_code = code
    return response


def invalid(errors: list[dict]):
    """400 for a request whose fields are wrong, with a reason for each."""
    return reply(400, "invalid request", errors=errors)
