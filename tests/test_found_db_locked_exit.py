"""Found by attack9: a database locked by someone else at start-up was exit status 2.

Start-up migrates under a write transaction; when another connection holds the write lock
past the busy timeout (an operator's `sqlite3` session left inside BEGIN, a backup tool,
a stuck process), open_database raised StoreError, an AutocallError that exit_code() maps to
EX_CONFIG, 2 — which the units' RestartPreventExitStatus=2 never restarts. The lock goes away
by itself; the dialer and the API stayed down until someone noticed. A busy database is
"unavailable now" (75): systemd restarts the service and it comes up once the lock is gone.

Since issue 12 a current schema is only read at start-up, so the lock matters only while there
is a schema to create or migrate: a new database file, as here (the daemon with a current
schema starts and waits to write: tests/test_daemon_db_outage.py)."""

import sqlite3

import pytest

from tests.test_operator_messages import run_entry

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("module", ["api.server", "daemon.main"])
def test_a_database_locked_by_another_process_is_exit_75(tmp_path, module):
    path = tmp_path / "db" / "autocall.sqlite3"
    path.parent.mkdir()
    sqlite3.connect(path).execute("PRAGMA journal_mode=wal").close()  # no schema yet: start-up must write
    (tmp_path / "autocall.toml").write_text("[database]\nbusy_timeout = 0.5\n")  # the daemon's; the API waits 30 s
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a write lock that is not ours, held past the busy timeout
    try:
        done = run_entry(module, tmp_path, timeout=90, AUTOCALL_CONFIG=str(tmp_path / "autocall.toml"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 75, done.stderr
    assert "Traceback" not in done.stderr and str(path) in done.stderr
