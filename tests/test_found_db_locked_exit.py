"""Found by attack9: a database locked by someone else at start-up was exit status 2.

Start-up migrates under a write transaction; when another connection holds the write lock
past the 30 s busy timeout (an operator's `sqlite3` session left inside BEGIN, a backup tool,
a stuck process), open_database raised StoreError, an AutocallError that exit_code() maps to
EX_CONFIG, 2 — which the units' RestartPreventExitStatus=2 never restarts. The lock goes away
by itself; the dialer and the API stayed down until someone noticed. A busy database is
"unavailable now" (75): systemd restarts the service and it comes up once the lock is gone."""

import sqlite3

import pytest

from daemon.store.schema import open_database
from tests.test_operator_messages import run_entry

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("module", ["api.server", "daemon.main"])
def test_a_database_locked_by_another_process_is_exit_75(tmp_path, module):
    path = tmp_path / "db" / "autocall.sqlite3"
    open_database(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a write lock that is not ours, held past the busy timeout
    try:
        done = run_entry(module, tmp_path, timeout=90)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 75, done.stderr
    assert "Traceback" not in done.stderr and str(path) in done.stderr
