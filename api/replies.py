"""The seed's response shape, shared by every view and error handler."""
from __future__ import annotations

from flask import jsonify


def reply(code: int, content: str, **extra):
    """{"code", "content", ...} with HTTP status = code."""
    response = jsonify({"code": code, "content": content, **extra})
    response.status_code = code
    return response
