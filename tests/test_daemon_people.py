"""autocall-daemon as a real process (issue 11): one person is never in two calls at once,
however a client shuffles queues around them."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from daemon.config import DialerConfig
from daemon.store import customers as store_customers
from daemon.store import queue_state
from daemon.store.schema import open_database
from tests.daemon_fixtures import (
    DaemonProcess,
    all_final,
    import_customers,
    overlapping_calls,
    query,
    start_simulator,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

# Each callee answers at once and talks 250 simulated seconds (5 s real): long calls.
LONG_CALLS = {"gateways": ["carrier"], "default": {"outcome": "answer", "answer_after": 1, "hangup_after": 250}}
PEOPLE = [(f"K{i}", [f"090100000{i}"]) for i in range(5)]


@pytest.fixture
def daemon(tmp_path):
    sim = start_simulator(LONG_CALLS)
    process = DaemonProcess(tmp_path, sim)
    process.sim = sim
    yield process
    process.stop_quietly()
    sim.stop()


def number_of(db_path) -> dict:
    return dict(query(db_path, "SELECT uuid, number FROM attempt"))


def answered(db_path) -> int:
    return query(db_path, "SELECT COUNT(*) FROM attempt WHERE state = 'answered'")[0][0]


def test_stop_delete_and_reimport_while_calls_are_up_never_calls_those_numbers_twice_at_once(daemon):
    import_customers(daemon.db_path, PEOPLE, max_recall_count=0)
    daemon.start()
    wait_until(lambda: answered(daemon.db_path) == 5, 30)
    db = open_database(daemon.db_path)
    queue_state.set_running(db, "Q", False)  # POST /queue/stop
    store_customers.delete_queue(db, "Q")  # POST /queue/delete: calls in progress are not cut
    db.close()
    import_customers(daemon.db_path, PEOPLE, max_recall_count=0)  # the same queue_code, the same people
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert daemon.terminate() == 0

    # Every number was called twice, once per queue, and never by both at once.
    assert overlapping_calls(daemon.sim.records, number_of(daemon.db_path)) == []
    calls = query(
        daemon.db_path,
        "SELECT a.number, q.state, a.outcome FROM attempt a JOIN queue q ON q.id = a.queue_id ORDER BY a.number, a.id",
    )
    assert calls == [(n, state, "success") for _, [n] in PEOPLE for state in ("deleted", "running")]


def test_the_same_person_in_two_queues_is_called_by_one_queue_at_a_time(daemon):
    import_customers(daemon.db_path, PEOPLE, code="A", max_recall_count=0)
    import_customers(daemon.db_path, PEOPLE, code="B", max_recall_count=0)
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert daemon.terminate() == 0

    assert overlapping_calls(daemon.sim.records, number_of(daemon.db_path)) == []
    per_number = query(daemon.db_path, "SELECT number, COUNT(DISTINCT queue_id) FROM attempt GROUP BY number")
    assert per_number == [(n, 2) for _, [n] in PEOPLE]


def test_stop_delete_reimport_cycles_and_a_second_queue_never_pass_the_daily_cap(tmp_path):
    sim = start_simulator({"gateways": ["carrier"], "default": {"outcome": "busy"}})
    daemon = DaemonProcess(tmp_path, sim, daily_cap=2)
    try:
        daemon.start()
        for code in ("Q", "Q", "Q", "Q", "B"):  # the three cycles, then another queue
            import_customers(daemon.db_path, [("K1", ["0901000001"])], code=code, max_recall_count=10)
            wait_until(lambda code=code: put_off_until_tomorrow(daemon.db_path, code), 30)
            db = open_database(daemon.db_path)
            queue_state.set_running(db, code, False)
            store_customers.delete_queue(db, code)
            db.close()
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
        sim.stop()
    assert query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE number = '0901000001'") == [(2,)]


def put_off_until_tomorrow(db_path, code) -> bool:
    """The live queue's customer waits past today (its daily cap), after no call still open:
    until tomorrow's window opens, the local midnight (the window is open all day). Not "an hour
    from now": between 23:00 and midnight, Asia/Ho_Chi_Minh, tomorrow is less than that away."""
    local = dt.datetime.now(ZoneInfo(DialerConfig().timezone))
    tomorrow = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        query(
            db_path,
            "SELECT COUNT(*) FROM customer c JOIN queue q ON q.id = c.queue_id"
            " WHERE q.code = ? AND q.state != 'deleted' AND c.state = 'pending'"
            " AND c.next_call_at > ?",
            code,
            tomorrow.timestamp() - 1,
        )[0][0]
        == 1
    )
