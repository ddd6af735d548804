"""The dialer's state file beside the database and its line in `autocall status`: written in place
at a fixed size (a full disk does not refuse it), read back, shown, and called old when the
dialer stopped writing it."""

import logging
import os
import re
import stat
import time

import pytest

from daemon import dbfile, statefile, status
from tests.daemon_fixtures import wait_until
from tests.db_faults import Tmpfs, full_disk

NOW = 1_800_000_000.0
PAUSED = {
    "pid": 4242,
    "at": NOW - 1,
    "status": "database unavailable since 10:00:00 (database is locked): dialing paused, 3 writes waiting",
    "calls": 0,
    "database": {"since": NOW - 60, "reason": "database is locked", "waiting": 3},
}


def test_the_state_file_is_beside_the_database_fixed_in_size_and_0640(tmp_path):
    db = tmp_path / "autocall.sqlite3"
    state = statefile.StateFile(db)
    old = os.umask(0o022)  # a login shell's: it would give 0644
    try:
        assert state.write({"pid": 1, "at": NOW, "status": "a longer status than the next one", "calls": 3})
    finally:
        os.umask(old)
    assert state.write({"pid": 1, "at": NOW, "status": "short", "calls": 0})
    path = tmp_path / "autocall.sqlite3-daemon"
    assert path.stat().st_size == statefile.SIZE
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert statefile.read(db) == {"pid": 1, "at": NOW, "status": "short", "calls": 0}
    state.close()


def test_no_state_file_reads_as_none_and_a_broken_one_as_unknown(tmp_path):
    db = tmp_path / "autocall.sqlite3"
    assert statefile.read(db) is None
    path = tmp_path / "autocall.sqlite3-daemon"
    for text, reason in [
        ("", "is empty"),  # made on a disk already full: its blocks could not be reserved
        (" " * 1023 + "\n", "is empty"),
        ("{not json", "holds no dialer state"),
        ("[1, 2]", "holds no dialer state"),  # JSON, but no state
    ]:
        path.write_text(text)
        assert statefile.read(db) == {"unreadable": f"{path} {reason}", "database": str(db), "holder": None}


def test_status_of_an_unreadable_state_file_says_so_and_who_holds_the_database(tmp_path):
    db = tmp_path / "autocall.sqlite3"
    db.touch()
    statefile.path_for(db).touch()
    assert status.render_dialer(statefile.read(db), now=NOW) == [
        f"dialer: state unknown ({statefile.path_for(db)} is empty); no autocall-daemon holds {db}: is it running?"
    ]
    held = dbfile.hold(db)  # as a running dialer does
    try:
        assert status.render_dialer(statefile.read(db), now=NOW) == [
            f"dialer: state unknown ({statefile.path_for(db)} is empty); autocall-daemon pid {os.getpid()} holds {db}"
        ]
    finally:
        os.close(held)


def test_a_state_file_removed_or_replaced_under_the_dialer_is_made_again(tmp_path):
    # Found by the careless-operator review: the dialer went on writing the file it had open,
    # so once an operator removed it `autocall status` never showed the dialer again.
    db = tmp_path / "autocall.sqlite3"
    state = statefile.StateFile(db)
    assert state.write({"pid": 1, "at": NOW, "status": "dialing", "calls": 0})
    statefile.path_for(db).unlink()
    assert state.write({"pid": 1, "at": NOW, "status": "still dialing", "calls": 2})
    assert statefile.read(db)["status"] == "still dialing"
    statefile.path_for(db).write_text("{}")  # another file in its place (a restored backup)
    assert state.write({"pid": 1, "at": NOW, "status": "dialing again", "calls": 1})
    assert statefile.read(db)["status"] == "dialing again"
    state.close()


def test_a_state_too_long_for_the_file_is_written_cut_not_refused(tmp_path):
    # Found by the careless-operator review: a long database error (in the status and in the
    # outage's reason) raised ValueError out of the dialer's report loop, which also pings the
    # watchdog: systemd would have restarted the dialer in the middle of the outage.
    reason = "không ghi được cơ sở dữ liệu: " * 40  # Vietnamese: up to 3 bytes a character
    state = {**PAUSED, "status": f"database unavailable since 10:00:00 ({reason})", "database": {"reason": reason}}
    db = tmp_path / "autocall.sqlite3"
    assert statefile.StateFile(db).write(state)
    read = statefile.read(db)
    assert read["pid"] == 4242 and read["status"].startswith("database unavailable since 10:00:00 (không")
    assert len(read["status"]) == statefile.SHORT and read["status"].endswith("…")


def test_the_state_file_is_still_written_when_the_disk_is_full(tmp_path):
    if not Tmpfs.available():
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN) on this machine")
    fs = Tmpfs(tmp_path / "disk", 1 << 20)
    try:
        state = statefile.StateFile(fs.path / "autocall.sqlite3")
        assert state.write({"at": NOW, "status": "dialing"})
        with full_disk(fs.path):
            assert state.write(PAUSED)  # in place, in the blocks it reserved
            assert statefile.read(fs.path / "autocall.sqlite3") == PAUSED
        state.close()
    finally:
        fs.unmount()


def test_status_shows_the_dialer_paused_and_why():
    text = status.render([], now=NOW, dialer=PAUSED)
    assert text.splitlines()[1] == f"dialer: {PAUSED['status']}"


def test_status_calls_a_state_the_dialer_stopped_writing_old():
    old = {**PAUSED, "at": NOW - 600}
    assert status.render_dialer(old, now=NOW) == [
        "dialer: not heard from for 600s (pid 4242): is autocall-daemon running?"
    ]
    assert status.render_dialer(None, now=NOW) == []


def test_each_node_of_a_shared_database_gets_its_line_and_a_silent_one_is_called_so():
    lines = status.render_nodes([("pbx1", 3.0, "12 calls in progress"), ("pbx2", 95.0, "4 calls in progress")])
    assert lines == [
        "dialer pbx1: 12 calls in progress",
        "dialer pbx2: not heard from for 95s: is autocall-daemon running there?",
    ]


def test_a_state_file_made_on_a_full_disk_says_so_once_and_is_written_when_there_is_room(tmp_path, caplog):
    if not Tmpfs.available():
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN) on this machine")
    fs = Tmpfs(tmp_path / "disk", 1 << 20)
    caplog.set_level(logging.DEBUG, logger="autocall.statefile")
    try:
        state = statefile.StateFile(fs.path / "autocall.sqlite3")
        with full_disk(fs.path):
            assert not state.write(PAUSED) and not state.write(PAUSED)
        failed = [r for r in caplog.records if r.getMessage().startswith("cannot write")]
        assert [r.levelno for r in failed] == [logging.WARNING, logging.DEBUG]
        assert "autocall.sqlite3-daemon" in failed[0].getMessage()
        assert state.write(PAUSED) and statefile.read(fs.path / "autocall.sqlite3") == PAUSED
        assert caplog.records[-1].levelno == logging.INFO
        state.close()
    finally:
        fs.unmount()


def test_status_tells_a_dialer_that_stopped_or_died_from_one_that_runs(run):
    """Found by the careless-operator review: after a stop or a crash `autocall status` went on
    saying `dialer: 0 calls in progress` for 15 s. The dialer's last write says it stopped; a
    dialer that died is told by nothing holding the database (dbfile.holder)."""
    sim, daemon = run({"default": {"outcome": "busy"}})
    db = daemon.db_path
    daemon.start()
    wait_until(lambda: statefile.read(db) is not None, 10)
    assert status.render_dialer(statefile.look(db), now=time.time()) == ["dialer: 0 calls in progress"]
    assert daemon.terminate() == 0
    [line] = status.render_dialer(statefile.look(db), now=time.time())
    assert re.fullmatch(rf"dialer: stopped \ds ago \(pid {daemon.proc.pid}\)", line), line
    daemon.start()
    wait_until(lambda: not statefile.read(db).get("stopped"), 10)
    daemon.kill9()
    [line] = status.render_dialer(statefile.look(db), now=time.time())
    assert line.startswith(f"dialer: not running: pid {daemon.proc.pid} ended ") and "(killed?)" in line, line


def test_status_of_a_state_from_the_future_or_without_a_time_says_so(tmp_path):
    db = tmp_path / "autocall.sqlite3"
    assert status.render_dialer({**PAUSED, "at": NOW + 600}, now=NOW) == [
        f"dialer: {PAUSED['status']} (written 600s ahead of this host's clock: did the clock step back?)"
    ]
    statefile.path_for(db).write_text('{"at": "x", "status": "?"}')  # was a traceback
    assert statefile.read(db)["unreadable"].endswith("holds no dialer state")


@pytest.mark.timeout(10)
def test_a_state_path_that_is_no_file_is_unknown_without_hanging(tmp_path):
    db = tmp_path / "autocall.sqlite3"
    os.mkfifo(statefile.path_for(db))  # opened for reading, it would wait for a writer
    assert "not a regular file" in statefile.read(db)["unreadable"]
