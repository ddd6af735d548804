"""Liveness for load balancers and systemd checks: no token needed."""

from __future__ import annotations

from flask import Blueprint

from api.replies import reply
from api.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness without a token: the process answers and a reader thread can read the database."""
    services().workers.read(lambda db: db.execute_sql("SELECT 1 FROM queue LIMIT 1").fetchone())
    return reply(200, "ok")
