"""The database unavailable under a running dialer (issue 12): a write lock held past every
timeout, a full disk, a file it may not write. The daemon is a real process on a real SQLite
file; the faults are real (tests/db_faults.py). Whatever the fault: no call result is lost, no
customer is left `calling`, no call starts while the dialer cannot record it, dialing resumes
once the database takes writes, and the log says so once per episode."""

import contextlib
import io
import re
import sqlite3
import time

import gevent
import pytest

from daemon import cli
from daemon.store.schema import open_database
from tests.daemon_fixtures import all_final, import_customers, menu_offset, query, wait_until
from tests.db_faults import Tmpfs, full_disk, unwritable, write_lock
from tests.test_operator_messages import one_line, run_entry

pytestmark = pytest.mark.timeout(120)

BUSY_TIMEOUT = 0.3  # the daemon's database.busy_timeout here: every fault outlasts it many times
# Every callee answers at once and talks 100 simulated seconds (2 s real), long enough for the
# fault to begin while the calls are up; min_recall_duration is 3 s, so each call succeeds.
TALKS = {"default": {"outcome": "answer", "answer_after": 1, "hangup_after": 100}}
HOLD = 2.0  # real seconds each fault lasts at least: several busy timeouts
PAUSED = "dialing paused"
RESUMED = re.compile(r"database writable again after [\d.]+s: (\d+) writes that waited in memory are written")


def start(run, customers=6, db_path=None, **dialer):
    sim, daemon = run(TALKS, database={"busy_timeout": BUSY_TIMEOUT}, db_path=db_path, **dialer)
    import_customers(
        daemon.db_path, [(f"C{i}", [f"090100000{i}"]) for i in range(customers)], concurrent_call=3, max_recall_count=0
    )
    daemon.start()
    return sim, daemon


def originates(sim) -> int:
    return sum(1 for r in sim.records if r["event"] == "originate") + len(sim.channels)


def calling(db_path) -> int:
    return query(db_path, "SELECT COUNT(*) FROM customer WHERE state = 'calling'")[0][0]


def status_text(db_path) -> str:
    """What `autocall status --db` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["status", "--db", str(db_path)]) == 0
    return out.getvalue()


def ride_out(sim, daemon, fault):
    """Start the fault once three calls are up; while it lasts (HOLD at least), those calls end
    and their results wait in memory, and no call starts. Returns what `autocall status` said."""
    wait_until(lambda: len(sim.channels) == 3, 30)
    with fault():
        began = time.monotonic()
        wait_until(lambda: not sim.channels and PAUSED in daemon.read_log(), 30)
        wait_until(lambda: "writes waiting" in status_text(daemon.db_path), 10)
        seen = status_text(daemon.db_path)
        assert calling(daemon.db_path) == 3  # the calls are over: their results wait in the daemon
        gevent.sleep(max(0.0, HOLD - (time.monotonic() - began)))
        assert originates(sim) == 3  # nobody is called while the call cannot be recorded
    return seen


def assert_nothing_lost(sim, daemon, waited_at_least=3):
    """Once the fault is gone: everyone called once and recorded with the call's real result,
    one WARNING and one INFO for the episode, a clean stop."""
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert dict(query(daemon.db_path, "SELECT ext_id, state FROM customer")) == {f"C{i}": "success" for i in range(6)}
    causes = query(daemon.db_path, "SELECT hangup_cause, outcome, state FROM attempt")
    assert causes == [("NORMAL_CLEARING", "success", "done")] * 6  # the real results, none CALL_LOST
    assert originates(sim) == 6
    log = daemon.read_log()
    assert log.count(PAUSED) == 1, log  # one warning when the episode began...
    [waited] = RESUMED.findall(log)  # ...and one line when it ended
    assert int(waited) >= waited_at_least
    assert "Traceback" not in log
    wait_until(lambda: "dialer: 0 calls in progress" in status_text(daemon.db_path), 10)
    assert daemon.terminate() == 0


@pytest.fixture
def disk(tmp_path):
    """A 16 MiB tmpfs for the database, to fill."""
    if not Tmpfs.available():
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN) on this machine")
    fs = Tmpfs(tmp_path / "disk", 16 << 20)
    yield fs
    fs.unmount()


def test_a_write_lock_held_past_every_timeout_mid_calls_loses_no_result_and_dialing_resumes(run):
    sim, daemon = start(run)
    seen = ride_out(sim, daemon, lambda: write_lock(daemon.db_path))
    assert "dialer: database unavailable since" in seen
    assert re.search(r"database is locked\): dialing paused, \d+ writes waiting", seen), seen  # 3 results, steps
    assert_nothing_lost(sim, daemon)


def test_a_disk_that_fills_mid_calls_loses_no_result_and_dialing_resumes(run, disk):
    sim, daemon = start(run, db_path=disk.path / "autocall.sqlite3")
    seen = ride_out(sim, daemon, lambda: full_disk(disk.path, daemon.db_path))
    assert "dialer: database unavailable since" in seen and "database or disk is full" in seen, seen
    assert_nothing_lost(sim, daemon)


def test_a_database_file_the_daemon_may_not_write_at_start_pauses_dialing_until_it_may(run):
    sim, daemon = run(TALKS, database={"busy_timeout": BUSY_TIMEOUT})
    import_customers(daemon.db_path, [(f"C{i}", [f"090100000{i}"]) for i in range(6)], concurrent_call=3)
    with unwritable(daemon.db_path):  # restored from a backup under the wrong owner, say
        daemon.start()
        wait_until(lambda: "readonly database" in status_text(daemon.db_path), 20)
        gevent.sleep(HOLD)
        assert originates(sim) == 0 and calling(daemon.db_path) == 0
    assert_nothing_lost(sim, daemon, waited_at_least=0)  # its first claim ends the episode


def test_a_write_lock_held_at_start_on_a_current_schema_only_delays_dialing(run):
    sim, daemon = run(TALKS, database={"busy_timeout": BUSY_TIMEOUT})
    import_customers(daemon.db_path, [(f"C{i}", [f"090100000{i}"]) for i in range(6)], concurrent_call=3)
    with write_lock(daemon.db_path):  # start-up only reads a current schema: no lock to wait for
        daemon.start()
        wait_until(lambda: PAUSED in daemon.read_log(), 20)
        gevent.sleep(HOLD)
        assert originates(sim) == 0
    assert_nothing_lost(sim, daemon, waited_at_least=0)


def test_a_daemon_stopped_while_results_wait_exits_75_and_the_next_start_loses_nobody(run):
    sim, daemon = start(run, drain_timeout=1)  # the writes' last chance at the stop: 1 s, not 10
    wait_until(lambda: len(sim.channels) == 3, 30)
    with write_lock(daemon.db_path):
        wait_until(lambda: not sim.channels and PAUSED in daemon.read_log(), 30)
        assert daemon.terminate() == 75  # EX_TEMPFAIL: systemd would start it again
    log = daemon.read_log()
    assert re.search(r"autocall-daemon stopped with \d+ writes unwritten", log) and "Traceback" not in log
    # The next start finds the three attempts open and no channel for them; their results went
    # with the process, but the switch kept each call's end (its hangup record): they are read
    # back, not recalled; the rest as usual.
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert dict(query(daemon.db_path, "SELECT ext_id, state FROM customer")) == {f"C{i}": "success" for i in range(6)}
    assert query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE hangup_cause = 'CALL_LOST'") == [(0,)]
    assert originates(sim) == 6  # nobody called twice
    assert daemon.terminate() == 0


def test_a_result_still_waiting_for_the_database_when_the_daemon_stops_is_read_back_from_the_switch(run):
    # Each callee confirms (key 9: promise_to_pay) while a write lock holds every write off; the
    # daemon stops with those results in memory. The switch keeps each call's end with the
    # result on its channel, so the next start records them, where before they ended `success`
    # with no result at all.
    scenario = {"default": {"outcome": "answer", "answer_after": 1, "hangup_after": "never"}}
    scenario["default"]["keys"] = [[menu_offset() + 3.0, "9"]]
    sim, daemon = run(scenario, time_scale=0.2, database={"busy_timeout": BUSY_TIMEOUT}, drain_timeout=1)
    import_customers(daemon.db_path, [("C0", ["0901000000"]), ("C1", ["0901000001"])], max_recall_count=0)
    daemon.start()
    wait_until(lambda: len(sim.channels) == 2, 30)  # answered: the menu is seconds away
    with write_lock(daemon.db_path):
        wait_until(lambda: originates(sim) == 2 and not sim.channels and PAUSED in daemon.read_log(), 60)
        assert daemon.terminate() == 75
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert query(daemon.db_path, "SELECT ext_id, state, result FROM customer ORDER BY ext_id") == [
        ("C0", "success", "promise_to_pay"),
        ("C1", "success", "promise_to_pay"),
    ]
    assert query(daemon.db_path, "SELECT DISTINCT result FROM attempt") == [("promise_to_pay",)]
    assert originates(sim) == 2
    assert daemon.terminate() == 0


# --- start-up: a database that cannot be opened or migrated now is exit 75, restarted ---


def _locked_new(tmp_path):
    db = tmp_path / "db" / "autocall.sqlite3"
    db.parent.mkdir()
    sqlite3.connect(db).execute("PRAGMA journal_mode=wal").close()  # no schema yet: start-up must write
    return db, write_lock(db)


def _read_only_filesystem(tmp_path):
    fs = _mounted(tmp_path)
    db = fs.path / "autocall.sqlite3"
    open_database(db).close()
    fs.remount("ro")
    return db, _finally(lambda: fs.remount("rw"))


def _full_disk_new(tmp_path):
    fs = _mounted(tmp_path)
    return fs.path / "autocall.sqlite3", full_disk(fs.path)


def _unwritable_new(tmp_path):
    db = tmp_path / "db" / "autocall.sqlite3"
    db.parent.mkdir()
    db.touch(0o640)
    return db, unwritable(db)


def _unwritable_directory(tmp_path):
    db = tmp_path / "db" / "autocall.sqlite3"
    open_database(db).close()  # the last connection gone: no -wal, no -shm, they must be made
    return db, unwritable(db.parent)


def _mounted(tmp_path) -> Tmpfs:
    if not Tmpfs.available():
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN) on this machine")
    fs = Tmpfs(tmp_path / "disk", 1 << 20)
    _MOUNTS.append(fs)
    return fs


_MOUNTS: list = []


@contextlib.contextmanager
def _finally(undo):
    try:
        yield
    finally:
        undo()


@pytest.mark.parametrize(
    "fault", [_locked_new, _read_only_filesystem, _full_disk_new, _unwritable_new, _unwritable_directory]
)
def test_a_database_start_up_cannot_open_or_migrate_now_is_one_line_and_exit_75(tmp_path, fault):
    config = tmp_path / "autocall.toml"
    config.write_text("[database]\nbusy_timeout = 0.3\n")
    try:
        db, condition = fault(tmp_path)
        with condition:
            done = run_entry("daemon.main", tmp_path, AUTOCALL_DB=str(db), AUTOCALL_CONFIG=str(config))
    finally:
        while _MOUNTS:
            _MOUNTS.pop().unmount()
    assert done.returncode == 75, done.stderr  # EX_TEMPFAIL: systemd starts it again (test_deploy_files)
    assert one_line(done, "autocall-daemon: ").startswith(f"autocall-daemon: database {db}: "), done.stderr
