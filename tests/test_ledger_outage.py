"""The ledger when the database is unavailable, on a real SQLite file: writes a lock refuses wait
in memory and land in order once it goes, one episode said once; a bug in one write fails it
alone; a connection that found the file read-only opens it afresh once it is writable."""

import logging
import sqlite3

import gevent
import pytest

from daemon.ledger import CallReport, Ledger, LedgerThread, StoreUnavailable
from daemon.outage import DatabaseOutage
from daemon.store.schema import open_database
from tests.daemon_fixtures import wait_until
from tests.db_faults import unwritable
from tests.test_ledger import DAY, NOW, import_, queue_info

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def db(path):
    return open_database(path, busy_timeout=0.1)


def claims(db, count):
    import_(db, *[(f"C{i}", [f"090100000{i}"]) for i in range(count)])
    ledger = Ledger(db)
    return ledger.claim_many(queue_info(ledger), count, now=NOW, daily_cap=5, **DAY)


def rows(db):
    return db.execute_sql(
        "SELECT c.ext_id, c.state, a.state, a.hangup_cause, a.answered_at IS NOT NULL"
        " FROM attempt a JOIN customer c ON c.id = a.customer_id ORDER BY c.ext_id"
    ).fetchall()


def talked(seconds):
    return CallReport(NOW, NOW + seconds, seconds, "NORMAL_CLEARING", "200")


def test_writes_a_held_lock_refuses_wait_in_memory_and_land_in_order_once_it_goes(db, path, caplog):
    caplog.set_level(logging.INFO, logger="autocall.database")
    a, b, c = claims(db, 3)
    outage = DatabaseOutage()
    thread = LedgerThread(Ledger(db), outage, sleep=lambda seconds: gevent.sleep(0.02))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # an operator's sqlite3, past the busy timeout (0.1 s)
    try:
        thread.mark_answered(a.attempt_id, NOW + 1)
        assert thread.finish(a, talked(30), recall_delay=60) is None  # refused: it waits in memory
        assert outage.active and outage.waiting == 2
        # While the outage lasts nobody waits on a write: each is queued behind the others.
        assert thread.finish(b, CallReport(None, NOW + 2, 0.0, "USER_BUSY", "486"), recall_delay=60) is None
        thread.abandon(c, cause="SOUND_FILE_MISSING", now=NOW + 3)
        assert outage.waiting == 4
        assert thread.open_attempts() == []  # their calls are over, whatever the file says yet
        assert [r[1:3] for r in rows(db)] == [("calling", "dialing")] * 3
        assert "dialing paused, 4 writes waiting" in outage.describe()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_until(lambda: not outage.active, 10)
    assert rows(db) == [
        ("C0", "success", "done", "NORMAL_CLEARING", 1),
        ("C1", "pending", "done", "USER_BUSY", 0),
        ("C2", "pending", "done", "SOUND_FILE_MISSING", 0),
    ]
    assert outage.waiting == 0 and outage.describe() == ""
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in messages] == ["WARNING", "INFO"]  # one episode, said once
    assert "database is locked: dialing paused" in messages[0][1]
    assert "4 writes that waited in memory are written" in messages[1][1]
    assert thread.close() == 0


def test_a_write_that_fails_for_a_bug_fails_alone_and_the_others_land(db):
    a, b = claims(db, 2)
    thread = LedgerThread(Ledger(db))
    done = gevent.spawn(thread.finish, a, talked(30), recall_delay=60)
    bad = gevent.spawn(thread.abandon, b, cause="X", now=NOW, customer_state="dnc")  # abandon refuses that
    gevent.joinall([done, bad], timeout=10)
    assert done.value == ("success", "success")
    assert isinstance(bad.exception, ValueError)
    assert [r[:3] for r in rows(db)] == [("C0", "success", "done"), ("C1", "calling", "dialing")]
    assert thread.close() == 0


def test_a_connection_that_found_the_file_read_only_opens_it_afresh_once_it_is_writable(db, path):
    import_(db, ("A", ["0901000001"]))
    db.close()
    ledger = Ledger(db)
    with unwritable(path):
        queue = queue_info(ledger)  # reading works
        with pytest.raises(StoreUnavailable, match="readonly database"):
            ledger.claim_many(queue, 1, now=NOW, daily_cap=5, **DAY)
    # SQLite keeps a connection read-only once it opened the file so; the ledger opened anew.
    [claim] = ledger.claim_many(queue, 1, now=NOW, daily_cap=5, **DAY)
    assert claim.ext_id == "A"
