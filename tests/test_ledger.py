"""The dialer's transactions on a real SQLite file: claims honour stop, DNC, caps and dead
numbers; finishing a call applies the recall rules; config errors stop the queue."""

import json

import peewee as pw
import pytest

from daemon.config import QueueDefaults
from daemon.ledger import QUEUES_REREAD, CallReport, Ledger
from daemon.store import queue_state, records, schema
from daemon.store.customers import block, delete_queue, import_customers
from daemon.store.schema import execute
from tests.daemon_fixtures import wait_until
from tests.pg_fixtures import close

NOW = 1_800_000_000.0
DAY = dict(day_start=NOW - 3600, next_day=NOW + 86400)


@pytest.fixture
def db(store_db):
    """A fresh store on each backend (tests/pg_fixtures.py)."""
    return store_db


@pytest.fixture
def ledger(db):
    return Ledger(db)


def import_(db, *customers, code="Q", **settings):
    request = records.ImportRequest(
        code,
        "IVR-1",
        settings,
        [records.NewCustomer(ext_id, list(mobiles), {"upcoming_amount": 5}) for ext_id, mobiles in customers],
    )
    import_customers(db, request, QueueDefaults(), now=lambda: NOW - 10)


def queue_info(ledger, code="Q"):
    return next(q for q in ledger.running_queues() if q.code == code)


def claim(ledger, code="Q", cap=5, now=NOW):
    return ledger.claim(queue_info(ledger, code), now=now, daily_cap=cap, **DAY)


def state_of(db, ext_id):
    return execute(db, "SELECT state FROM customer WHERE ext_id = ?", (ext_id,)).fetchone()[0]


def answered(talk, cause="NORMAL_CLEARING"):
    return CallReport(answered_at=NOW, ended_at=NOW + talk, talk_seconds=talk, cause=cause, sip_status="200")


def refused(cause, sip="486"):
    return CallReport(answered_at=None, ended_at=NOW + 1, talk_seconds=0.0, cause=cause, sip_status=sip)


def test_the_queues_are_read_again_only_once_someone_committed_a_change(db, store_url):
    """An idle dialer does not read its running queues every second for nothing; a write by
    anyone, another process's connection or the ledger's own, is seen at the next look, but
    not its own heartbeat."""
    ledger = Ledger(db, node="n1")
    sqlite = isinstance(db, pw.SqliteDatabase)
    import_(db, ("A1", ["0901000001"]))
    assert [q.code for q in ledger.changed_running_queues()] == ["Q"]
    assert ledger.changed_running_queues() is None
    ledger.write_many([("beat", ("n1",), {"grace": 60, "recall_delay": 60})])
    assert ledger.changed_running_queues() is None
    other = schema.open_database(store_url)  # the API's own connection
    try:
        import_(other, ("B1", ["0901000002"]), code="Q2")
        assert [q.code for q in ledger.changed_running_queues()] == ["Q", "Q2"]
        queue_state.set_running(other, "Q2", False)  # a stop: the queue alone changes
        assert [q.code for q in ledger.changed_running_queues()] == ["Q"]
        execute(other, "UPDATE customer SET next_call_at = ? WHERE ext_id = 'A1'", (NOW + 60,))  # by hand
        assert [q.next_due for q in ledger.changed_running_queues()] == [NOW + 60]
    finally:
        close(other)
    ledger.write_many([("beat", ("n1",), {"grace": 60, "recall_delay": 60})])
    claim(ledger, now=NOW + 60)  # the ledger's own write: Q has nobody due now
    assert [q.next_due for q in ledger.changed_running_queues() if q.code == "Q"] == [None]
    ledger.write_many([("mark_answered", (1, NOW), {}), ("beat", ("n1",), {"grace": 60, "recall_delay": 60})])
    # An answer changes no queue: SQLite cannot tell it from one that does, PostgreSQL can.
    assert (ledger.changed_running_queues() is None) is not sqlite
    db.close()  # SQLite's counts are its connection's: one opened afresh reads again
    assert (ledger.changed_running_queues() is None) is not sqlite


def test_the_queues_are_read_again_after_a_minute_whatever_the_store_says(db):
    """A change the token cannot see (a PostgreSQL restore with its triggers off, written here
    under the token's nose) waits a minute at most, not for the next restart."""
    ledger, now = Ledger(db, node="n1"), [1000.0]
    ledger.clock = lambda: now[0]
    import_(db, ("A1", ["0901000001"]))
    assert [q.next_due for q in ledger.changed_running_queues()] == [NOW - 10]
    execute(db, "UPDATE customer SET next_call_at = ?", (NOW + 600,))
    ledger._queues_token = schema.dialect_of(db).change_token(db)  # the write unseen
    now[0] += QUEUES_REREAD - 1
    assert ledger.changed_running_queues() is None
    now[0] += 1
    assert [q.next_due for q in ledger.changed_running_queues()] == [NOW + 600]
    assert ledger.changed_running_queues() is None


def test_a_heartbeat_that_takes_over_a_dead_nodes_calls_is_a_change(db):
    ledger, dead = Ledger(db, node="n1"), Ledger(db, node="n2")
    import_(db, ("A1", ["0901000001"]))
    dead.write_many([("beat", ("n2",), {"grace": 60, "recall_delay": 0})])
    claim(dead)
    assert ledger.changed_running_queues()[0].next_due is None  # A1 in n2's call
    execute(db, "UPDATE node SET beat_at = beat_at - 3600 WHERE name = 'n2'")
    ledger.changed_running_queues()
    assert ledger.write_many([("beat", ("n1",), {"grace": 60, "recall_delay": 0})]) == [{"n2": 1}]
    assert ledger.changed_running_queues()[0].next_due is not None  # A1 due again


def test_claim_takes_customers_in_import_order_into_a_call(db, ledger):
    import_(db, ("A", ["0901000001"]), ("B", ["0901000002"]))
    first = claim(ledger)
    assert (first.ext_id, first.number, first.min_talk, first.template) == ("A", "0901000001", 3, "IVR-1")
    assert state_of(db, "A") == "calling"
    row = execute(db, "SELECT uuid, job_uuid, state, number FROM attempt").fetchone()
    assert row == (first.uuid, first.job_uuid, "dialing", "0901000001")
    assert claim(ledger).ext_id == "B"
    assert claim(ledger) is None


def test_no_claim_from_a_stopped_queue_or_of_a_dnc_customer(db, ledger):
    import_(db, ("A", ["0901000001"]), ("B", ["0901000002"]))
    info = queue_info(ledger)
    block(db, "Q", ["A"])
    assert ledger.claim(info, now=NOW, daily_cap=5, **DAY).ext_id == "B"
    import_(db, ("C", ["0901000003"]))
    queue_state.set_running(db, "Q", False)
    # The dialer still holds the queue as running in memory: the claim itself re-checks.
    assert ledger.claim(info, now=NOW, daily_cap=5, **DAY) is None
    assert state_of(db, "C") == "pending"


def test_a_customer_at_its_daily_cap_waits_for_tomorrow_across_all_its_numbers(db, ledger):
    import_(db, ("A", ["0901000001", "0901000002", "0901000003"]), max_recall_count=5)
    for i in range(2):
        ledger.finish(claim(ledger, cap=2, now=NOW + 5 * i), refused("USER_BUSY"), recall_delay=0)
    assert claim(ledger, cap=2, now=NOW + 20) is None
    assert execute(db, "SELECT next_call_at FROM customer").fetchone()[0] == DAY["next_day"]


def test_finish_applies_the_recall_rules_across_numbers_and_rounds(db, ledger):
    import_(db, ("A", ["0901000001", "0901000002"]), max_recall_count=1)
    c = claim(ledger)
    assert ledger.finish(c, refused("USER_BUSY"), recall_delay=60) == ("retry", "pending")
    c = claim(ledger, now=NOW + 1)
    assert c.number == "0901000002"  # next number at once
    assert ledger.finish(c, answered(1.0), recall_delay=60) == ("short", "pending")
    assert claim(ledger, now=NOW + 30) is None  # round over: recall delay
    c = claim(ledger, now=NOW + 120)
    assert (c.number, ledger.finish(c, refused("NO_ANSWER", None), recall_delay=60)) == (
        "0901000001",
        ("retry", "pending"),
    )
    c = claim(ledger, now=NOW + 121)
    assert ledger.finish(c, refused("CALL_REJECTED", "603"), recall_delay=60) == ("retry", "failed")
    row = execute(db, "SELECT state, round, last_cause FROM customer").fetchone()
    assert row == ("failed", 2, "CALL_REJECTED")
    attempts = execute(db, "SELECT number, hangup_cause, outcome, state FROM attempt ORDER BY id").fetchall()
    assert attempts == [
        ("0901000001", "USER_BUSY", "retry", "done"),
        ("0901000002", "NORMAL_CLEARING", "short", "done"),
        ("0901000001", "NO_ANSWER", "retry", "done"),
        ("0901000002", "CALL_REJECTED", "retry", "done"),
    ]


def test_success_records_talk_time_keys_and_result(db, ledger):
    import_(db, ("A", ["0901000001"]))
    c = claim(ledger)
    report = CallReport(NOW, NOW + 20, 20.0, "NORMAL_CLEARING", "200", keys="19", result="promise_to_pay")
    assert ledger.finish(c, report, recall_delay=60) == ("success", "success")
    assert execute(db, "SELECT state, result FROM customer").fetchone() == ("success", "promise_to_pay")
    assert execute(db, "SELECT talk_seconds, keys, result FROM attempt").fetchone() == (20.0, "19", "promise_to_pay")
    # Finishing twice changes nothing (a late duplicate after reconciliation).
    assert ledger.finish(c, refused("USER_BUSY"), recall_delay=60) == ("retry", "unchanged")
    assert execute(db, "SELECT hangup_cause FROM attempt").fetchone() == ("NORMAL_CLEARING",)


def test_a_dead_number_is_never_dialed_again(db, ledger):
    import_(db, ("A", ["0909000001", "0901000002"]), max_recall_count=3)
    ledger.finish(claim(ledger), refused("UNALLOCATED_NUMBER", "404"), recall_delay=0)
    for i in range(3):
        c = claim(ledger, now=NOW + 10 + i, cap=0)
        assert c.number == "0901000002"
        ledger.finish(c, refused("USER_BUSY"), recall_delay=0)
    assert json.loads(execute(db, "SELECT dead_numbers FROM customer").fetchone()[0]) == ["0909000001"]


def test_an_invalid_gateway_stops_the_queue_with_a_reason_and_keeps_the_customer(db, ledger):
    import_(db, ("A", ["0901000001"]), ("B", ["0901000002"]))
    c = claim(ledger)
    assert ledger.finish(c, refused("INVALID_GATEWAY", None), recall_delay=60) == ("config_error", "pending")
    state, reason = execute(db, "SELECT state, stop_reason FROM queue").fetchone()
    assert state == "stopped" and "INVALID_GATEWAY" in reason
    assert execute(db, "SELECT state, round, number_index FROM customer WHERE ext_id='A'").fetchone() == (
        "pending",
        0,
        0,
    )
    assert ledger.running_queues() == []
    # Not counted against the customer's daily cap.
    queue_state.set_running(db, "Q", True)
    assert execute(db, "SELECT stop_reason FROM queue").fetchone() == (None,)
    assert claim(ledger, cap=1).ext_id == "A"


def test_an_answered_call_the_switch_could_not_play_is_a_config_error_not_short(db, ledger):
    import_(db, ("A", ["0901000001"]))
    c = claim(ledger)
    report = CallReport(
        NOW,
        NOW + 1,
        1.0,
        "FILE_NOT_FOUND",
        "200",
        stop_reason="FreeSWITCH cannot play /s/xin_chao.wav (FILE NOT FOUND)",
    )
    assert ledger.finish(c, report, recall_delay=60) == ("config_error", "pending")
    assert execute(db, "SELECT state, stop_reason FROM queue").fetchone() == (
        "stopped",
        "FreeSWITCH cannot play /s/xin_chao.wav (FILE NOT FOUND)",
    )
    assert execute(db, "SELECT outcome, hangup_cause FROM attempt").fetchone() == ("config_error", "FILE_NOT_FOUND")
    queue_state.set_running(db, "Q", True)
    assert claim(ledger, cap=1).ext_id == "A"  # neither a round nor the daily cap was used


def test_dnc_while_in_a_call_stops_the_recalls(db, ledger):
    import_(db, ("A", ["0901000001"]))
    c = claim(ledger)
    block(db, "Q", ["A"])
    assert state_of(db, "A") == "calling"  # left as is during the call
    assert ledger.finish(c, refused("USER_BUSY"), recall_delay=0) == ("retry", "dnc")


def test_a_queue_deleted_during_a_call_keeps_the_attempt_and_the_deleted_state(db, ledger):
    import_(db, ("A", ["0901000001"]))
    c = claim(ledger)
    queue_state.set_running(db, "Q", False)
    delete_queue(db, "Q")
    assert ledger.finish(c, answered(30), recall_delay=0) == ("success", "deleted")
    assert execute(db, "SELECT outcome FROM attempt").fetchone() == ("success",)


def test_abandon_returns_a_never_dialed_customer_or_fails_it(db, ledger):
    import_(db, ("A", ["0901000001"]), ("B", ["0901000002"]))
    a, b = claim(ledger), claim(ledger)
    ledger.abandon(a, cause="SOUND_FILE_MISSING", now=NOW, stop_reason="sound files missing: x.wav")
    ledger.abandon(b, cause="TEMPLATE: field upcoming_amount", now=NOW, customer_state="failed")
    assert (state_of(db, "A"), state_of(db, "B")) == ("pending", "failed")
    assert execute(db, "SELECT state, stop_reason FROM queue").fetchone() == (
        "stopped",
        "sound files missing: x.wav",
    )
    assert execute(db, "SELECT outcome FROM attempt").fetchall() == [("not_dialed",), ("not_dialed",)]


def test_open_attempts_lists_calls_not_closed(db, ledger):
    import_(db, ("A", ["0901000001"]), ("B", ["0901000002"]))
    a, b = claim(ledger), claim(ledger)
    ledger.mark_answered(b.attempt_id, NOW + 2)
    ledger.finish(a, refused("USER_BUSY"), recall_delay=0)
    [open_b] = ledger.open_attempts()
    assert (open_b.uuid, open_b.ext_id, open_b.answered_at, open_b.fields) == (
        b.uuid,
        "B",
        NOW + 2,
        {"upcoming_amount": 5},
    )


def test_each_node_records_its_calls_and_reconciles_only_those(db):
    import_(db, ("A", ["0901000001"]), ("B", ["0901000002"]), ("C", ["0901000003"]))
    pbx1, pbx2, unnamed = Ledger(db, node="pbx1"), Ledger(db, node="pbx2"), Ledger(db)
    a, b, c = claim(pbx1), claim(pbx2), claim(unnamed)  # C: as a daemon before nodes had names
    assert execute(db, "SELECT uuid, node FROM attempt ORDER BY id").fetchall() == [
        (a.uuid, "pbx1"),
        (b.uuid, "pbx2"),
        (c.uuid, None),
    ]
    assert [x.uuid for x in pbx1.open_attempts()] == [a.uuid, c.uuid]
    assert [x.uuid for x in pbx2.open_attempts()] == [b.uuid, c.uuid]
    assert [x.uuid for x in unnamed.open_attempts()] == [a.uuid, b.uuid, c.uuid]


def test_claim_many_takes_a_batch_in_due_order_in_one_transaction(db, ledger):
    import_(db, *[(f"C{i}", [f"09010000{i:02}"]) for i in range(10)], concurrent_call=10)
    claims = ledger.claim_many(queue_info(ledger), 4, now=NOW, daily_cap=5, **DAY)
    assert [c.ext_id for c in claims] == ["C0", "C1", "C2", "C3"]
    assert len({c.uuid for c in claims}) == 4
    assert execute(db, "SELECT COUNT(*) FROM customer WHERE state = 'calling'").fetchone() == (4,)
    rest = ledger.claim_many(queue_info(ledger), 100, now=NOW, daily_cap=5, **DAY)
    assert [c.ext_id for c in rest] == [f"C{i}" for i in range(4, 10)]


def test_the_ledger_thread_writes_concurrent_results_together_and_answers_each_caller(db, ledger):
    import gevent

    from daemon.ledger import LedgerThread

    import_(db, *[(f"C{i}", [f"09010000{i:02}"]) for i in range(6)], concurrent_call=6)
    claims = ledger.claim_many(queue_info(ledger), 6, now=NOW, daily_cap=5, **DAY)
    thread = LedgerThread(ledger)
    try:
        for c in claims[:3]:
            thread.mark_answered(c.attempt_id, NOW + 1)
        reports = [answered(30)] * 3 + [refused("USER_BUSY")] * 3
        jobs = [gevent.spawn(thread.finish, c, r, recall_delay=60) for c, r in zip(claims, reports)]
        gevent.joinall(jobs, timeout=10, raise_error=True)
        assert [job.value for job in jobs] == [("success", "success")] * 3 + [("retry", "pending")] * 3
    finally:
        thread.close()
    assert execute(db, "SELECT COUNT(*) FROM attempt WHERE state = 'done' AND answered_at = ?", (NOW,)).fetchone() == (
        3,
    )


class TripCounter:
    """Wraps a Ledger's write_many to count the transactions the ledger thread runs."""

    def __init__(self, ledger):
        self.trips, self._write_many = [], ledger.write_many
        ledger.write_many = self

    def __call__(self, writes):
        self.trips.append([name for name, _, _ in writes])
        return self._write_many(writes)


def test_an_ivr_step_rides_with_the_next_result_in_one_transaction_and_an_answer_goes_at_once(db, ledger):
    import gevent

    from daemon.ledger import LAZY_WRITE, LedgerThread

    import_(db, ("A", ["0901000001"]), ("B", ["0902000001"]))
    a, b = ledger.claim_many(queue_info(ledger), 2, now=NOW, daily_cap=5, **DAY)
    trips = TripCounter(ledger)
    thread = LedgerThread(ledger)
    try:
        thread.mark_step(a.attempt_id, "greeting", None)
        thread.mark_step(a.attempt_id, "menu", None)
        gevent.sleep(LAZY_WRITE / 10)
        assert trips.trips == []  # nobody waits for them: not yet
        thread.finish(b, refused("USER_BUSY"), recall_delay=60)
        assert trips.trips == [["mark_step", "mark_step", "finish"]]
        thread.mark_answered(a.attempt_id, NOW + 1)
        wait_until(lambda: len(trips.trips) == 2, LAZY_WRITE / 2)  # `autocall status` shows it at once
        assert trips.trips[1:] == [["mark_answered"]]
        thread.mark_step(a.attempt_id, "menu", None)
        gevent.sleep(LAZY_WRITE / 10)
        assert len(trips.trips) == 2  # no result in it: it waits for company...
        wait_until(lambda: len(trips.trips) == 3, LAZY_WRITE * 2)  # ...and, none coming, goes by itself
        assert trips.trips[2:] == [["mark_step"]]
        thread.mark_step(a.attempt_id, "thanks", "promise_to_pay")  # a result: written at once
        wait_until(lambda: len(trips.trips) == 4, LAZY_WRITE / 2)
        assert trips.trips[3:] == [["mark_step"]]
    finally:
        thread.close()
    row = execute(db, "SELECT answered_at, step, result FROM attempt WHERE id = ?", (a.attempt_id,)).fetchone()
    assert row == (NOW + 1, "thanks", "promise_to_pay")


def test_closing_the_ledger_thread_writes_the_steps_still_waiting(db, ledger):
    from daemon.ledger import LedgerThread

    import_(db, ("A", ["0901000001"]))
    [a] = ledger.claim_many(queue_info(ledger), 1, now=NOW, daily_cap=5, **DAY)
    thread = LedgerThread(ledger)
    thread.mark_answered(a.attempt_id, NOW + 1)
    thread.mark_step(a.attempt_id, "menu", None)
    assert thread.close(timeout=5) == 0  # closes the connection; the next statement opens another
    row = execute(db, "SELECT answered_at, step FROM attempt WHERE id = ?", (a.attempt_id,)).fetchone()
    assert row == (NOW + 1, "menu")


def test_daily_cap_0_turns_the_cap_off(db, ledger):
    import_(db, ("A", ["0901000001"]), max_recall_count=10)
    for i in range(7):  # more than the default 5 a day
        ledger.finish(claim(ledger, cap=0, now=NOW + 5 * i), refused("USER_BUSY"), recall_delay=0)
    assert claim(ledger, cap=0, now=NOW + 40) is not None
