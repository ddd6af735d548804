"""Found by the call-safety review: a channel FreeSWITCH did not end on `uuid_kill`.

`Call._hang_up` waited `hangup_grace` for CHANNEL_HANGUP_COMPLETE and then recorded the call
ended whether or not it was: with the first call still up (a kill the switch answered `-ERR No
such channel!` for, its session lock taken; or a `+OK` kill that never finished), the
customer's next number was dialled one second later, one person in two calls at once, and the
orphan stayed up until park_timeout. A call now ends only when the switch says its channel is
gone (the event, or `uuid_exists` false), killing it again meanwhile; the customer stays in it."""

import time
import uuid as uuidlib

import gevent
import pytest

from daemon import ivr
from daemon.call import Call, CallSettings
from daemon.esl import ESLClient
from daemon.ledger import Claim
from tests.daemon_fixtures import (
    REPO,
    all_final,
    import_customers,
    overlapping_calls,
    query,
    start_simulator,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)

STUCK = {"outcome": "answer", "answer_after": 0.5, "hangup_after": "never", "kill_fails": 1}
FIELDS = {"contract_number": "HD123456", "upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"}


def test_the_next_number_waits_until_the_switch_has_ended_the_first_call(run):
    # A's first number refuses its first kill with -ERR, B's with a +OK that does nothing: both
    # ways a real switch leaves a channel up (side by side: each waits out a 10 s hangup grace).
    sim, daemon = run(
        {
            "numbers": [
                {"glob": "0901*", **STUCK, "kill_reply": "err"},
                {"glob": "0903*", **STUCK, "kill_reply": "ok"},
                {"glob": "090[24]*", "outcome": "answer", "answer_after": 0.5, "hangup_after": "never"},
            ]
        }
    )
    daemon.start()
    # Never long enough to count: the round goes on at once to the customer's other number.
    import_customers(
        daemon.db_path,
        [("A", ["0901000001", "0902000002"]), ("B", ["0903000003", "0904000004"])],
        concurrent_call=2,
        max_recall_count=0,
        min_recall_duration=10**6,
    )
    wait_until(lambda: all_final(daemon.db_path), 60)
    uuids = {
        uuid: ext_id
        for ext_id, uuid in query(
            daemon.db_path, "SELECT c.ext_id, a.uuid FROM attempt a JOIN customer c ON c.id = a.customer_id"
        )
    }
    dialled = {}
    for r in sim.records:
        if r["event"] == "originate":
            dialled.setdefault(uuids[r["uuid"]], []).append(r["dial"].rsplit("/", 1)[1])
    assert dialled == {"A": ["0901000001", "0902000002"], "B": ["0903000003", "0904000004"]}
    assert overlapping_calls(sim.records, uuids) == []
    assert daemon.read_log().count("channel still up") == 2


def _call(sim, monotonic=time.monotonic):
    """A Call of IVR-1 on `sim` with a short hangup grace, its claim and its ESL client."""
    settings = CallSettings(
        "sofia/gateway/carrier/{number}",
        "",
        originate_timeout=10,
        max_call_seconds=600,
        destinations={},
        hangup_grace=0.5,
    )
    client = ESLClient(*sim.address, "ClueCon", timeout=5.0)
    client.connect()
    script = ivr.TemplateLoader(REPO / "ivr_templates", REPO / "ivr_templates" / "sounds").get("IVR-1").render(FIELDS)
    claim = Claim(1, str(uuidlib.uuid4()), str(uuidlib.uuid4()), "0901000001", 1, "A", FIELDS, 1, "Q", "IVR-1", 0)
    return client, claim, Call(claim, client, script, settings, time.time, monotonic=monotonic)


def test_a_channel_that_never_ends_is_given_up_after_max_call_seconds_and_said_loudly(caplog):
    # The call's own clock runs 100 times as fast: its max_call_seconds (600) lasts 6 s, while the
    # switch's park_timeout (600 simulated seconds at time scale 0.1) would take a minute.
    sim = start_simulator({"gateways": ["carrier"], "default": {**STUCK, "kill_fails": 1000}}, time_scale=0.1)
    client, claim, call = _call(sim, monotonic=lambda: time.monotonic() * 100)
    try:
        report = gevent.spawn(call.run).get(timeout=60)
        assert claim.uuid in sim.channels  # still up on the switch: nothing more the dialer can do
        assert report.answered_at is not None
        assert sim.channels[claim.uuid].kills_failed > 2  # it was killed again and again meanwhile
        assert [
            r.getMessage() for r in caplog.records if r.levelname == "ERROR" and "still has channel" in r.getMessage()
        ]
    finally:
        client.close()
        sim.stop()


def test_a_channel_gone_without_its_hangup_event_is_recorded_at_once():
    """The event lost (a switch that dropped it): `uuid_exists` false ends the wait."""
    sim = start_simulator({"gateways": ["carrier"], "default": {**STUCK, "kill_fails": 0}}, time_scale=0.05)
    client, claim, call = _call(sim)
    real = call.on_event

    def deaf(event):  # the hangup event never reaches the call
        if event.name != "CHANNEL_HANGUP_COMPLETE":
            real(event)

    call.on_event = deaf
    try:
        started = time.monotonic()
        gevent.spawn(call.run).get(timeout=60)
        assert claim.uuid not in sim.channels
        assert time.monotonic() - started < 10  # not park_timeout's 30 s
    finally:
        client.close()
        sim.stop()
