"""Calling policy (issue 17), pure and on real databases: recalls by cause (`retry_when`,
`no_key`, per-cause delays), trunks by prefix (routing, caps, failover order, marked down),
caller ids (rotation, validation, nothing unsafe in the originate), priority in the claim,
and the API's new optional import fields on the real Flask app."""

import dataclasses
import json

import pytest

from api import schema as api_schema
from daemon import outcome
from daemon.config import ConfigError, QueueDefaults, _build
from daemon.esl import commands
from daemon.esl.errors import UnsafeArgument
from daemon.outcome import Progress, next_state
from daemon.store import customers, reports
from daemon.store.records import CallReport, ImportRequest, NewCustomer
from daemon.store.schema import execute
from daemon.store.states import FAILED, PENDING, SUCCESS
from daemon.trunks import Trunk, TrunkPool, carrier_prefixes
from tests.api_fixtures import make_config, post, rows, seed_import

NOW = 1_800_000_000.0
ONE = Progress(("0901000001",), 0, 0, frozenset())


# --- recalls by cause --------------------------------------------------------------------


def test_an_answered_call_with_no_accepted_key_is_no_key_only_where_the_queue_asks():
    heard = dict(answered=True, talk_seconds=40, cause="NORMAL_CLEARING", min_talk=3, key_accepted=False)
    assert outcome.classify(**heard) == outcome.SUCCESS  # today's rule, the default
    assert outcome.classify(**heard, retry_when=("no_answer", "no_key")) == outcome.NO_KEY
    assert outcome.classify(**{**heard, "key_accepted": True}, retry_when=("no_key",)) == outcome.SUCCESS
    assert outcome.classify(**{**heard, "talk_seconds": 1}, retry_when=("no_key",)) == outcome.SHORT


def test_a_call_that_ended_while_we_were_away_counts_a_recorded_result_as_a_key():
    report = CallReport(NOW, NOW + 40, 40.0, "NORMAL_CLEARING", result=None)
    assert outcome.of_report(report, 3, ("no_key",)) == outcome.NO_KEY
    assert outcome.of_report(dataclasses.replace(report, result="promise_to_pay"), 3, ("no_key",)) == outcome.SUCCESS


@pytest.mark.parametrize(
    "result,cause,expected",
    [
        (outcome.RETRY, "USER_BUSY", "busy"),
        (outcome.RETRY, "NO_ANSWER", "no_answer"),
        (outcome.RETRY, "CALL_REJECTED", "rejected"),
        (outcome.RETRY, "NORMAL_TEMPORARY_FAILURE", "unreachable"),
        (outcome.RETRY, "SOMETHING_NEW", "other"),
        (outcome.SHORT, "NORMAL_CLEARING", "short"),
        (outcome.NO_KEY, "NORMAL_CLEARING", "no_key"),
        (outcome.DEAD_NUMBER, "UNALLOCATED_NUMBER", None),
    ],
)
def test_recall_causes(result, cause, expected):
    assert outcome.recall_cause(result, cause) == expected


def test_a_round_ending_on_a_cause_the_queue_does_not_retry_fails_the_customer():
    nxt = next_state(
        ONE,
        "0901000001",
        outcome.RETRY,
        cause="USER_BUSY",
        max_recall_count=3,
        recall_delay=600,
        on_dnc=False,
        retry_when=("no_answer",),
    )
    assert nxt.state == FAILED
    nxt = next_state(
        ONE,
        "0901000001",
        outcome.RETRY,
        cause="NO_ANSWER",
        max_recall_count=3,
        recall_delay=600,
        on_dnc=False,
        retry_when=("no_answer",),
    )
    assert (nxt.state, nxt.delay) == (PENDING, 600)


def test_the_next_number_of_a_round_is_tried_whatever_retry_when_says():
    two = Progress(("0901000001", "0901000002"), 0, 0, frozenset())
    nxt = next_state(
        two,
        "0901000001",
        outcome.RETRY,
        cause="USER_BUSY",
        max_recall_count=3,
        recall_delay=600,
        on_dnc=False,
        retry_when=(),
    )
    assert (nxt.state, nxt.number_index, nxt.delay) == (PENDING, 1, 0.0)


def test_per_cause_recall_delays_busy_soon_no_answer_later():
    delays = {"busy": 120.0, "no_answer": 1800.0}
    common = dict(max_recall_count=3, recall_delay=600, on_dnc=False, recall_delays=delays)
    assert next_state(ONE, "0901000001", outcome.RETRY, cause="USER_BUSY", **common).delay == 120
    assert next_state(ONE, "0901000001", outcome.RETRY, cause="NO_ANSWER", **common).delay == 1800
    assert next_state(ONE, "0901000001", outcome.SHORT, cause="NORMAL_CLEARING", **common).delay == 600


def test_config_reads_recall_delays_and_refuses_unknown_causes():
    dialer = _build({"dialer": {"recall_delays": {"busy": 120, "no_answer": 1800}}}, None, {}).dialer
    assert dict(dialer.recall_delays) == {"busy": 120.0, "no_answer": 1800.0}
    with pytest.raises(ConfigError, match="dialer.recall_delays: unknown cause 'engaged'"):
        _build({"dialer": {"recall_delays": {"engaged": 1}}}, None, {})


# --- trunks ------------------------------------------------------------------------------

VIETTEL = Trunk("viettel", "sofia/gateway/viettel/{number}", carrier_prefixes()["Viettel"], 2, 100.0, ("0281",))
VINA = Trunk("vina", "sofia/gateway/vina/{number}", carrier_prefixes()["Vinaphone"], 1, 100.0, ("0282", "0283"))
ANY = Trunk("any", "sofia/gateway/carrier/{number}", (), 5, 100.0)
FALLBACK = Trunk("default", "sofia/gateway/carrier/{number}", (), 10, 100.0)


def pool(*trunks, down_after=2, down_for=60.0):
    return TrunkPool(trunks, FALLBACK, down_after=down_after, down_for=down_for, now=0.0)


def test_the_carrier_table_names_the_five_carriers_with_distinct_prefixes():
    table = carrier_prefixes()
    assert set(table) == {"Viettel", "Vinaphone", "MobiFone", "Vietnamobile", "Gmobile"}
    every = [p for prefixes in table.values() for p in prefixes]
    assert len(every) == len(set(every)) and "098" in table["Viettel"] and "091" in table["Vinaphone"]


def test_a_number_goes_to_its_carriers_trunk_first_then_catch_all_then_the_rest():
    p = pool(VINA, VIETTEL, ANY)
    assert [t.name for t in p.candidates("0982596021")] == ["viettel", "any", "vina"]
    assert [t.name for t in p.candidates("0912000001")] == ["vina", "any", "viettel"]
    assert [t.name for t in p.candidates("0700000001")] == ["any", "vina", "viettel"]  # MobiFone: no trunk of its own


def test_without_a_catch_all_trunk_the_dialers_dial_string_takes_the_rest():
    p = pool(VIETTEL)
    assert [t.name for t in p.trunks] == ["viettel", "default"]
    assert p.acquire("0700000001", 0.0).name == "default"


def test_a_full_trunk_spills_over_and_channels_are_counted_per_trunk():
    p = pool(VIETTEL, VINA)
    taken = [p.acquire("0982596021", 0.0).name for _ in range(3)]
    assert taken == ["viettel", "viettel", "default"]  # viettel holds 2
    assert (p.busy("viettel"), p.busy("default")) == (2, 1)
    p.release("viettel")
    assert p.acquire("0982596021", 0.0).name == "viettel"


def test_per_trunk_cps_is_a_token_bucket_of_its_own():
    slow = Trunk("slow", "sofia/gateway/slow/{number}", ("098",), 50, 10.0)  # one token per tenth of a second
    p = pool(slow)
    assert p.acquire("0982596021", 0.0).name == "slow"
    assert p.acquire("0982596021", 0.0).name == "default"  # slow has no token left now
    assert p.acquire("0982596021", 0.2).name == "slow"


def test_failover_takes_the_next_candidate_not_tried():
    p = pool(VIETTEL, ANY)
    first = p.acquire("0982596021", 0.0)
    second = p.acquire("0982596021", 0.0, frozenset({first.name}))
    assert (first.name, second.name) == ("viettel", "any")
    assert p.acquire("0982596021", 0.0, frozenset({"viettel", "any"})) is None  # "any" takes every number: no default


def test_a_trunk_failing_again_and_again_is_marked_down_for_a_while_then_used_again():
    p = pool(VIETTEL, ANY, down_after=2, down_for=60.0)
    p.failed("viettel", "NORMAL_TEMPORARY_FAILURE", 10.0)
    assert not p.is_down("viettel", 10.0)
    p.failed("viettel", "NORMAL_TEMPORARY_FAILURE", 11.0)
    assert p.is_down("viettel", 11.0)
    assert "viettel 0/2 down for 60s (2 failures in a row, NORMAL_TEMPORARY_FAILURE)" in p.describe(11.0)
    assert p.acquire("0982596021", 12.0).name == "any"  # down: passed over while another can take it
    assert p.acquire("0982596021", 72.0).name == "viettel"  # its time is up
    p.worked("viettel", 72.0)
    assert not p.is_down("viettel", 72.0)


def test_a_down_trunk_still_carries_a_call_no_trunk_that_is_up_can_take():
    p = pool(VIETTEL, down_after=1)
    p.failed("viettel", "INVALID_GATEWAY", 0.0)
    assert p.acquire("0982596021", 1.0, frozenset({"default"})).name == "viettel"


def test_the_status_line_of_many_trunks_down_stays_short_enough_for_the_state_file():
    many = [
        Trunk(f"trunk-{i:02d}-{'x' * 20}", "sofia/gateway/t/{number}", (f"09{i:02d}",), 100, 10.0) for i in range(64)
    ]
    p = pool(*many, down_after=1)
    for t in many:
        p.failed(t.name, "NORMAL_TEMPORARY_FAILURE", 0.0)
    line = p.describe(1.0)
    assert len(line) <= 400 and line.endswith("...")


def test_prometheus_shows_each_trunks_calls_limit_and_down_state():
    from daemon.metrics import trunk_families

    p = pool(VIETTEL, down_after=1)
    p.acquire("0982596021", 0.0)
    p.failed("viettel", "INVALID_GATEWAY", 0.0)
    samples = {(f.name, s.labels["trunk"]): s.value for f in trunk_families(p, 1.0, "pbx1") for s in f.samples}
    assert samples[("autocall_trunk_calls_in_progress", "viettel")] == 1.0
    assert samples[("autocall_trunk_channel_limit", "viettel")] == 2.0
    assert samples[("autocall_trunk_down", "viettel")] == 1.0
    assert samples[("autocall_trunk_down", "default")] == 0.0


def test_room_sums_free_channels_with_tokens_over_the_trunks():
    p = pool(VIETTEL, VINA)
    assert p.room(0.0) == 2 + 1 + 10
    p.acquire("0912000001", 0.0)
    assert p.room(0.0) == 2 + 0 + 10


def test_caller_ids_rotate_over_a_trunks_pool():
    p = pool(VINA)
    assert [p.caller_id("vina") for _ in range(3)] == ["0282", "0283", "0282"]
    assert p.caller_id("default") is None


def test_a_reload_keeps_calls_in_progress_counted_on_their_trunk():
    p = pool(VIETTEL)
    p.acquire("0982596021", 0.0)
    p.configure((dataclasses.replace(VIETTEL, channel_limit=1),), FALLBACK, down_after=2, down_for=60, now=1.0)
    assert p.busy("viettel") == 1 and p.acquire("0982596021", 1.0).name == "default"


@pytest.mark.parametrize(
    "trunk,message",
    [
        ({"dial_string": "sofia/gateway/x/{number}"}, r"trunks\[0\]\.name"),
        ({"name": "x"}, r"trunks\[0\] \(x\)\.dial_string: required"),
        ({"name": "x", "dial_string": "sofia/gateway/x/{number},y"}, r"dial_string: may hold only"),
        ({"name": "x", "dial_string": "a/{number}", "carriers": ["Viettel2"]}, r"carriers: expected names"),
        ({"name": "x", "dial_string": "a/{number}", "prefixes": ["98"]}, r"prefixes: expected national-form"),
        ({"name": "x", "dial_string": "a/{number}", "caller_ids": ["0281}"]}, r"caller_ids: expected digits"),
        ({"name": "x", "dial_string": "a/{number}", "cap": 3}, r"cap: unknown key"),
        ({"name": "default", "dial_string": "a/{number}"}, r"'default' is taken"),
    ],
)
def test_a_bad_trunk_is_refused_naming_the_entry_and_key(trunk, message):
    with pytest.raises(ConfigError, match=message):
        _build({"trunks": [trunk]}, None, {})


def test_the_configured_caller_ids_are_the_dialers_and_every_trunks():
    config = _build(
        {
            "dialer": {"caller_id": "02800000000"},
            "trunks": [{"name": "v", "dial_string": "sofia/gateway/v/{number}", "caller_ids": ["0281", "0282"]}],
        },
        None,
        {},
    )
    assert config.caller_ids == {"02800000000", "0281", "0282"}


def test_the_originate_refuses_a_caller_id_number_or_dial_string_that_is_not_safe():
    base = dict(
        uuid="u1",
        number="0982596021",
        attempt_id=1,
        queue_id=1,
        dial_string="sofia/gateway/v/{number}",
        caller_id="0281",
        originate_timeout=30,
        park_timeout=600,
    )
    assert "origination_caller_id_number=0281}" in commands.originate(**base)
    for bad in (
        {"caller_id": "0281,origination_uuid=x"},
        {"caller_id": "0281}bridge"},
        {"number": "0982596021 &bridge(x)"},
        {"dial_string": "sofia/gateway/v/{number}|sofia/gateway/w/{number}"},
    ):
        with pytest.raises(UnsafeArgument):
            commands.originate(**{**base, **bad})


# --- priority in the claim ---------------------------------------------------------------


@pytest.fixture
def db(store_db):
    return store_db


def _import(db, people, **settings):
    request = ImportRequest("Q", "IVR-1", settings, [NewCustomer(x, [n], {}, p) for x, n, p in people])
    return customers.import_customers(db, request, QueueDefaults(), now=lambda: NOW - 10)


def _claim(db, limit, now=NOW):
    [queue] = reports.running_queues(db)
    with db.atomic():
        return customers.claim_many(db, queue, limit, now=now, day_start=NOW - 3600, next_day=NOW + 86400, daily_cap=0)


def test_the_claim_takes_higher_priority_first_then_import_order(db):
    _import(db, [("A", "0901000001", 0), ("B", "0901000002", 2), ("C", "0901000003", 1), ("D", "0901000004", 2)])
    assert [c.ext_id for c in _claim(db, 3)] == ["B", "D", "C"]
    assert [c.ext_id for c in _claim(db, 3)] == ["A"]


def test_within_a_priority_a_recall_due_earlier_goes_before_a_later_first_call(db):
    _import(db, [("A", "0901000001", 1), ("B", "0901000002", 1)])
    execute(db, "UPDATE customer SET next_call_at = ? WHERE ext_id = 'B'", (NOW - 100,))  # a recall due 100 s ago
    assert [c.ext_id for c in _claim(db, 2)] == ["B", "A"]


def test_a_customer_not_due_yet_is_passed_over_whatever_its_priority(db):
    _import(db, [("A", "0901000001", 0), ("B", "0901000002", 9)])
    execute(db, "UPDATE customer SET next_call_at = ? WHERE ext_id = 'B'", (NOW + 600,))
    assert [c.ext_id for c in _claim(db, 2)] == ["A"]


def test_a_claim_carries_the_queues_retry_when_and_caller_id(db):
    _import(db, [("A", "0901000001", 0)], retry_when=["no_answer", "no_key"], caller_id="0281")
    [claim] = _claim(db, 1)
    assert (claim.retry_when, claim.caller_id) == (("no_answer", "no_key"), "0281")
    report = CallReport(NOW, NOW + 40, 40.0, "NORMAL_CLEARING", key_accepted=False, trunk="viettel")
    with db.atomic():
        assert customers.finish(db, claim, report, recall_delay=60, recall_delays={"no_key": 7200}) == (
            outcome.NO_KEY,
            PENDING,
        )
    state, next_call = execute(db, "SELECT state, next_call_at FROM customer").fetchone()
    assert (state, next_call) == (PENDING, NOW + 40 + 7200)
    assert execute(db, "SELECT outcome, trunk FROM attempt").fetchone() == (outcome.NO_KEY, "viettel")


def test_without_retry_when_an_answered_call_without_keys_is_a_success_as_before(db):
    _import(db, [("A", "0901000001", 0)])
    [claim] = _claim(db, 1)
    with db.atomic():
        result = customers.finish(
            db, claim, CallReport(NOW, NOW + 40, 40.0, "NORMAL_CLEARING", key_accepted=False), recall_delay=60
        )
    assert result == (outcome.SUCCESS, SUCCESS)


def test_the_claim_reads_due_customers_by_the_priority_index(tmp_path):
    from daemon.store.schema import open_database

    db = open_database(tmp_path / "a.sqlite3")
    plan = execute(
        db,
        "EXPLAIN QUERY PLAN " + customers._DUE_ROWS,
        (1, 0, NOW, 10),
    ).fetchall()
    assert "USING INDEX customer_due_priority (queue_id=? AND priority=? AND next_call_at<?)" in str(plan)


# --- the API's optional fields -----------------------------------------------------------


@pytest.fixture
def policy_app(tmp_path):
    from api.app import create_app
    from api.services import services

    base = make_config(tmp_path)
    config = dataclasses.replace(
        base,
        trunks=(VIETTEL, VINA),
        priority=dataclasses.replace(base.priority, by_dpd=((90, 3), (30, 1))),
    )
    app = create_app(config)
    yield app
    services(app).workers.close()


def queue_row(app):
    from api.services import services

    return rows(services(app).db, "SELECT retry_when, caller_id FROM queue")[0]


def test_an_import_sets_retry_when_and_a_configured_caller_id(policy_app):
    client = policy_app.test_client()
    body = seed_import() | {"retry_when": ["no_answer", "busy", "no_key"], "caller_id": "0283"}
    reply = post(client, "/queue", body)
    assert (reply.status_code, reply.get_json()["content"]) == (200, "successfully")
    retry_when, caller_id = queue_row(policy_app)
    assert (json.loads(retry_when), caller_id) == (["no_answer", "busy", "no_key"], "0283")


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("retry_when", ["no_answer", "engaged"], "distinct recall causes"),
        ("retry_when", ["busy", "busy"], "distinct recall causes"),
        ("retry_when", "busy", "distinct recall causes"),
        ("caller_id", "0999", "not a configured caller id"),
        ("caller_id", "0281,x=1", "expected digits"),
        ("caller_id", 281, "expected digits"),
    ],
)
def test_a_bad_retry_when_or_caller_id_refuses_the_import_and_changes_nothing(policy_app, field, value, reason):
    from api.services import services

    reply = post(policy_app.test_client(), "/queue", seed_import() | {field: value})
    body = reply.get_json()
    assert (reply.status_code, body["content"], body["data"]) == (400, "import fail", {"fail": [], "success": []})
    assert body["errors"][0]["field"] == field and reason in body["errors"][0]["reason"]
    assert rows(services(policy_app).db, "SELECT COUNT(*) FROM queue") == [(0,)]


def test_priority_is_the_customers_own_or_derived_from_dpd(policy_app):
    from api.services import services

    people = [
        {**seed_import()["customers"][0], "id": "OWN", "priority": 7, "dpd": 120},
        {**seed_import()["customers"][0], "id": "DPD90", "dpd": 95, "mobiles": ["0982596022"]},
        {**seed_import()["customers"][0], "id": "DPD30", "dpd": 30, "mobiles": ["0982596023"]},
        {**seed_import()["customers"][0], "id": "DPD5", "dpd": 5, "mobiles": ["0982596024"]},
        {**seed_import()["customers"][0], "id": "BAD", "priority": 10, "mobiles": ["0982596025"]},
    ]
    reply = post(policy_app.test_client(), "/queue", seed_import() | {"customers": people})
    body = reply.get_json()
    assert body["data"]["fail"] == ["BAD"] and "priority: expected a whole number from 0 to 9" in str(body["errors"])
    got = dict(rows(services(policy_app).db, "SELECT ext_id, priority FROM customer"))
    assert got == {"OWN": 7, "DPD90": 3, "DPD30": 1, "DPD5": 0}


def test_the_seed_import_still_answers_as_the_api_document_says(policy_app):
    reply = post(policy_app.test_client(), "/queue", seed_import())
    assert reply.get_json() == {
        "code": 200,
        "content": "successfully",
        "data": {"fail": [], "success": ["TEL4VN_Test"]},
    }
    assert queue_row(policy_app) == (None, None)


def test_import_policy_defaults_refuse_every_caller_id():
    errors: list = []
    api_schema._caller_id("0281", frozenset(), {}, errors)
    assert "none are configured" in errors[0]["reason"]
