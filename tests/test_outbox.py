"""The outbox on both backends: every path to a result writes its event in the same
transaction (daemon/store/outbox.py's triggers), fan-out builds one delivery per endpoint that
wants the event, and deliveries go through pending, delivered and dead."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from daemon.config import QueueDefaults
from daemon.ledger import CallReport, Ledger
from daemon.store import commands, customers, dnc, outbox, queue_state, records
from daemon.store.schema import execute
from daemon.webhooks import Webhook

NOW = 1_800_000_000.0
DAY = dict(day_start=NOW - 3600, next_day=NOW + 86400)
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture
def db(store_db):
    return store_db


def import_(db, *ids, code="Q", numbers=None, **settings):
    people = [records.NewCustomer(x, (numbers or {}).get(x, [f"0901{abs(hash(x)) % 10**6:06d}"]), {}) for x in ids]
    request = records.ImportRequest(code, "IVR-1", settings, people)
    return customers.import_customers(db, request, QueueDefaults(), now=lambda: NOW - 10)


def claims(db, code="Q", n=10):
    ledger = Ledger(db)
    queue = next(q for q in ledger.running_queues() if q.code == code)
    return ledger.claim_many(queue, n, now=NOW, daily_cap=5, **DAY)


def events(db):
    return execute(db, "SELECT type, state, cause, result FROM outbox ORDER BY id").fetchall()


def report(cause="NORMAL_CLEARING", talk=30.0, result=None, keys="1"):
    answered = NOW if talk else None
    return CallReport(answered, NOW + talk + 1, talk, cause, "200" if talk else "486", keys, result)


def test_a_call_that_ends_a_customer_writes_both_events_with_its_result(db):
    import_(db, "A", "B")
    a, b = claims(db)
    ledger = Ledger(db)
    ledger.finish(a, report(result="promise_to_pay"), recall_delay=60)
    assert events(db) == [
        ("attempt.finished", "success", "NORMAL_CLEARING", "promise_to_pay"),
        ("customer.finished", "success", "NORMAL_CLEARING", "promise_to_pay"),
    ]
    ledger.finish(b, report("USER_BUSY", talk=0), recall_delay=60)  # recalled: the customer goes on
    assert events(db)[2:] == [("attempt.finished", "retry", "USER_BUSY", None)]


def test_no_event_outlives_a_rolled_back_result(db):
    import_(db, "A")
    [a] = claims(db)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with db.atomic():
            customers.finish(db, a, report(), recall_delay=60)
            raise Boom
    assert events(db) == []


def test_every_way_to_an_end_writes_customer_finished_and_a_delete_does_not(db):
    import_(db, "DNC", "DEAD", "GONE", numbers={"DEAD": ["0901000009"]})
    commands.block(db, "Q", ["DNC"], now=lambda: NOW)
    dnc.block_numbers(db, ["0901000009"], now=lambda: NOW)  # DEAD's only number
    claims(db)  # finds DEAD with no number left to call: it ends dnc at the claim
    queue_state.set_running(db, "Q", False, now=lambda: NOW)
    commands.delete_queue(db, "Q", now=lambda: NOW)
    ended = [(kind, state) for kind, state, _, _ in events(db)]
    assert ended == [
        ("customer.finished", "dnc"),
        ("customer.finished", "dnc"),
        ("queue.stopped", "stopped"),
    ]


def test_a_claimed_customer_given_back_unplayed_writes_no_attempt_event(db):
    import_(db, "A")
    [a] = claims(db)
    Ledger(db).abandon(a, cause="WITHDRAWN_BEFORE_DIAL", now=NOW)
    assert events(db) == []


def test_a_queue_the_dialer_stops_says_why(db):
    import_(db, "A")
    [a] = claims(db)
    Ledger(db).finish(a, report("CHAN_NOT_IMPLEMENTED", talk=0), recall_delay=60)
    [stopped] = [e for e in events(db) if e[0] == "queue.stopped"]
    assert "CHAN_NOT_IMPLEMENTED" in stopped[2]


def test_queue_finished_comes_once_when_the_last_customer_ends_and_again_after_an_import(db):
    import_(db, "A", "B", "C")
    commands.block(db, "Q", ["A", "B"], now=lambda: NOW)  # one statement, two rows
    assert [e[0] for e in events(db)].count("queue.finished") == 0  # C is still to call
    [c] = claims(db)
    Ledger(db).finish(c, report(), recall_delay=60)
    assert [e[0] for e in events(db)].count("queue.finished") == 1
    import_(db, "D", "E")
    commands.block(db, "Q", ["D", "E"], now=lambda: NOW)  # the two last, in one statement
    assert [e[0] for e in events(db)].count("queue.finished") == 2


WANTS_ALL = Webhook("crm", "https://crm.example/hook", "S").endpoint()
ONLY_STOPS = Webhook("ops", "https://ops.example/hook", "S", ("queue.stopped",), ("R",)).endpoint()


def test_fan_out_gives_each_endpoint_the_events_it_wants_once_with_the_body_built_then(db):
    import_(db, "A", callback_url="https://platform.example/cb")
    import_(db, "B", code="R")
    [a] = claims(db)
    Ledger(db).finish(a, report(result="promise_to_pay"), recall_delay=60)
    queue_state.set_running(db, "R", False, now=lambda: NOW)
    with db.atomic():
        assert outbox.fan_out(db, [WANTS_ALL, ONLY_STOPS], now=NOW, tz=TZ) == 4
    with db.atomic():
        assert outbox.fan_out(db, [WANTS_ALL, ONLY_STOPS], now=NOW, tz=TZ) == 0
    rows = execute(db, "SELECT endpoint, url, body FROM delivery ORDER BY id").fetchall()
    sent = [(endpoint, json.loads(body)["type"], json.loads(body)["queue_code"]) for endpoint, _, body in rows]
    assert sent == [
        ("crm", "attempt.finished", "Q"),
        ("callback", "attempt.finished", "Q"),
        ("crm", "customer.finished", "Q"),
        ("callback", "customer.finished", "Q"),
        ("crm", "queue.finished", "Q"),
        ("callback", "queue.finished", "Q"),
        ("crm", "queue.stopped", "R"),
        ("ops", "queue.stopped", "R"),
    ]
    finished = json.loads(rows[2][2])
    assert finished["customer"]["id"] == "A" and finished["customer"]["state"] == "success"
    assert finished["customer"]["result"] == "promise_to_pay" and finished["customer"]["keys"] == "1"
    assert finished["customer"]["attempts"]["count"] == 1 and finished["customer"]["attempts"]["answered"] == 1
    assert finished["occurred_at"] == dt.datetime.fromtimestamp(NOW + 31, TZ).isoformat(timespec="milliseconds")
    assert json.loads(rows[0][2])["attempt"]["hangup_cause"] == "NORMAL_CLEARING"
    assert json.loads(rows[4][2])["queue"] == {"state": "running"}


def _one_delivery(db):
    import_(db, "A")
    queue_state.set_running(db, "Q", False, now=lambda: NOW)
    with db.atomic():
        outbox.fan_out(db, [WANTS_ALL], now=NOW, tz=TZ)


def test_a_taken_delivery_is_leased_and_comes_back_when_its_lease_ends(db):
    _one_delivery(db)
    with db.atomic():
        [d] = outbox.take(db, now=NOW, lease=15, limit=5)
    assert d.tries == 1 and json.loads(d.body)["type"] == "queue.stopped"
    with db.atomic():
        assert outbox.take(db, now=NOW + 14, lease=15, limit=5) == []
    with db.atomic():
        [again] = outbox.take(db, now=NOW + 15, lease=15, limit=5)
    assert again.id == d.id and again.tries == 2


def test_a_failed_delivery_waits_its_retry_then_dies_and_an_operator_retry_revives_it(db):
    _one_delivery(db)
    with db.atomic():
        [d] = outbox.take(db, now=NOW, lease=15, limit=5)
        outbox.failed(db, d.id, now=NOW + 1, error="HTTP 500", status=500, retry_at=NOW + 60)
    assert outbox.backlog(db).failing == 1
    with db.atomic():
        assert outbox.take(db, now=NOW + 59, lease=15, limit=5) == []
        [d] = outbox.take(db, now=NOW + 60, lease=15, limit=5)
        outbox.failed(db, d.id, now=NOW + 61, error="HTTP 500", status=500, retry_at=None)
    assert outbox.backlog(db).dead == 1
    [listed] = outbox.deliveries(db, state=outbox.DEAD)
    assert (listed["type"], listed["last_error"], listed["tries"]) == ("queue.stopped", "HTTP 500", 2)
    with db.atomic():
        assert outbox.retry(db, now=NOW + 100) == 1
        [d] = outbox.take(db, now=NOW + 100, lease=15, limit=5)
        outbox.delivered(db, d.id, now=NOW + 101, status=204)
    assert outbox.backlog(db) == outbox.Backlog(0, None, 0, 0, 0)


def test_replay_dispatches_kept_events_again_and_prune_forgets_what_is_done(db):
    _one_delivery(db)
    with db.atomic():
        [d] = outbox.take(db, now=NOW, lease=15, limit=5)
        outbox.delivered(db, d.id, now=NOW + 1, status=200)
        assert outbox.replay(db, since=NOW - 3600) == 1
        outbox.fan_out(db, [WANTS_ALL], now=NOW + 2, tz=TZ)
    bodies = [json.loads(b) for (b,) in execute(db, "SELECT body FROM delivery ORDER BY id")]
    assert len(bodies) == 2 and bodies[0]["id"] == bodies[1]["id"]  # the same event, the same id
    with db.atomic():
        [d] = outbox.take(db, now=NOW + 3, lease=15, limit=5)
        outbox.delivered(db, d.id, now=NOW + 4, status=200)
        assert outbox.prune(db, before=NOW + 10) == 1
    assert execute(db, "SELECT COUNT(*) FROM delivery").fetchone()[0] == 0
