"""Test-wide setup. gevent patches the standard library here, before anything imports it,
as every process entry point of autocall does."""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # A pytest-xdist worker waits for its next test on an Event that execnet's reader thread
    # sets; patched, that wait runs on gevent's hub, which must not find itself idle and give up.
    import gevent  # noqa: E402

    def _keep_the_hub_awake():
        while True:
            gevent.sleep(0.05)

    gevent.spawn(_keep_the_hub_awake)

# The API fixtures (config -> app -> db, client), shared by every API test module.
from tests.api_fixtures import app, client, config, db  # noqa: E402,F401

# A simulator and a real autocall-daemon process, shared by the daemon test modules.
from tests.daemon_fixtures import run  # noqa: E402,F401

# A real PostgreSQL server (one per session) and a fresh store on each backend.
from tests.pg_fixtures import pg_cluster, store_db, store_url  # noqa: E402,F401

# The web console's rig: a headless Chromium, and the API + daemon + simulator it looks at.
from tests.ui_fixtures import browser, console, screenshots  # noqa: E402,F401
