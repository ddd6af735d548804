"""The operator's web console under `/ui/` of autocall-api (docs/ui.md).

    auth.py     accounts' login, sessions (cookie + ui_session row), CSRF, roles, the login limit
    pages.py    the pages: queues, one queue, one customer, templates (and "listen"), system, audit
    actions.py  what an operator may do: stop / start a queue, add DNC ids (the API's own store calls)
    live.py     the small JSON the pages poll for their live numbers
    i18n.py     Vietnamese and English labels; numbers, money and times the Vietnamese way
    listen.py   the no-key path of a rendered call, stitched into one WAV

Server-rendered Jinja pages; the JavaScript in static/ only refreshes numbers and draws the
charts (uPlot, vendored in static/vendor/ with its licence). No page loads anything from
elsewhere, and the Content-Security-Policy says so.
"""

from __future__ import annotations

from flask import Blueprint, Flask

NAME = "ui"

bp = Blueprint(NAME, __name__, url_prefix="/ui", template_folder="templates", static_folder="static")


def install(app: Flask):
    """Register the console's blueprint (with its views) on `app`."""
    from api.ui import actions, auth, live, pages  # noqa: F401 - their views register on `bp`

    auth.install(app)
    app.register_blueprint(bp)
