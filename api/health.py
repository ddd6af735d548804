"""Liveness for load balancers and systemd checks: no token needed."""

from __future__ import annotations

from flask import Blueprint, g

from api.replies import reply

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness without a token: the process answers and the database is readable."""
    g.db.execute_sql("SELECT 1").fetchone()
    return reply(200, "ok")
