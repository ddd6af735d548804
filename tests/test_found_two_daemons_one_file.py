"""Found by the call-safety review of 2026-12-03: a second autocall-daemon on the same SQLite
file was not refused, and put a customer on two calls at once.

The docs said one dialer per SQLite file, but nothing kept to it: an operator starting one by
hand beside the service, or a second unit pointed at the same file. Both took the host name
as their node, so the second one's start-up recovery read the first one's live call as its
own, did not find it on its own switch, closed it CALL_LOST and called the customer again
while the first call was still up. Now the dialer holds an flock on the database file for
its whole life (`dbfile.hold`): the second exits 75 (EX_TEMPFAIL, so a systemd unit retries
until the first is gone) with a line that names the other's pid, and touches nothing. (The
lock was first on the state file `<database>-daemon`; the careless-operator review removed
that file as a stray and the second dialer ran.)"""

import os
import subprocess
import sys

import pytest

from daemon import dbfile, statefile
from daemon.errors import Unavailable
from tests.daemon_fixtures import REPO, DaemonProcess, import_customers, query, start_simulator, wait_until

pytestmark = pytest.mark.timeout(120)

LONG = {"gateways": ["carrier"], "default": {"outcome": "answer", "answer_after": 1, "hangup_after": 300}}


def test_a_second_daemon_on_the_same_file_is_refused_and_touches_nothing(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    db = tmp_path / "autocall.sqlite3"
    sim1 = start_simulator(LONG)
    sim2 = start_simulator(LONG, clock=sim1.clock)
    first = DaemonProcess(tmp_path / "a", sim1, db_path=db)
    second = DaemonProcess(tmp_path / "b", sim2, db_path=db)
    try:
        import_customers(db, [("A", ["0901000001"])], max_recall_count=3)
        first.start()
        wait_until(lambda: query(db, "SELECT state FROM attempt") == [("answered",)], 30)
        code = _run_to_exit(second)  # not DaemonProcess.start: that one waits for it to connect
        log = second.read_log()
        assert code == 75, log
        assert f"another autocall-daemon (pid {first.proc.pid}) already runs on {db}" in log, log
        # It has exited: whatever its recovery would have done, it did before the exit.
        assert not sim2.channels and not [r for r in sim2.records if r["event"] == "originate"]
        [(state, cause)] = query(db, "SELECT state, hangup_cause FROM attempt")  # one call, not closed as lost
        assert (state, cause) in (("answered", None), ("done", "NORMAL_CLEARING")), (state, cause)
        assert first.proc.poll() is None
        statefile.path_for(db).unlink()  # an operator tidying up: the lock is not in that file
        assert _run_to_exit(second) == 75
        assert second.read_log().count("already runs on") == 2
    finally:
        first.stop_quietly()
        sim1.stop()
        sim2.stop()


def _run_to_exit(daemon: DaemonProcess, timeout: float = 20) -> int:
    log = open(daemon.log_path, "a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.main", "--config", str(daemon.config)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:  # it ran on (the defect): it must not outlive the test
            proc.kill()
            proc.wait()
        log.close()


def test_the_lock_is_the_database_file_itself_and_names_the_holder(tmp_path):
    db = tmp_path / "autocall.sqlite3"
    db.touch()
    held = dbfile.hold(db)
    try:
        with pytest.raises(Unavailable, match=f"another autocall-daemon \\(pid {os.getpid()}\\) already runs on {db}"):
            dbfile.hold(db)  # flock is per open file: a second one in one process is refused too
    finally:
        os.close(held)
    os.close(dbfile.hold(db))  # free again once the holder let go
