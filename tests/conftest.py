"""Test-wide setup. gevent patches the standard library here, before anything imports it,
as every process entry point of autocall does."""

from gevent import monkey

monkey.patch_all()

# The API fixtures (config -> app -> db, client), shared by every API test module.
from tests.api_fixtures import app, client, config, db  # noqa: E402,F401

# A simulator and a real autocall-daemon process, shared by the daemon test modules.
from tests.daemon_fixtures import run  # noqa: E402,F401

# A real PostgreSQL server (one per session) and a fresh store on each backend.
from tests.pg_fixtures import pg_cluster, store_db, store_url  # noqa: E402,F401
