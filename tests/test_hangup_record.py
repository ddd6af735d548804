"""daemon/hangup.py and what it needs of the store and the ledger: the switch's record of a
call's end read back, turned into a report, planned by reconciliation; the slot and the IVR
step kept on the attempt row (schema 3)."""

import gevent
import peewee as pw
import pytest

from daemon import hangup
from daemon.config import QueueDefaults
from daemon.ledger import Ledger, LedgerThread
from daemon.reconcile import LOST, plan
from daemon.store import customers, reports, schema
from daemon.store.records import Claim, ImportRequest, NewCustomer

NOW = 1_800_000_000.0
DAY = dict(day_start=NOW - 3600, next_day=NOW + 86400, daily_cap=5)


def claim(uuid="u1", slot=3, answered_at=None, result=None):
    return Claim(1, uuid, "job", "0901000001", 7, "A", {}, 3, "Q", "IVR-1", 10, answered_at, slot, "menu", result)


def record_text(uuid="u1", cause="NORMAL_CLEARING", answer=NOW - 40, end=NOW - 10, sip="200", keys="19", result=""):
    return f"{uuid}:{cause}:{int(answer * 1e6) if answer else 0}:{int(end * 1e6)}:{sip}:{keys}:{result}"


class Switch:
    """Answers `hash select/autocall/<slot>` from `records` (slot -> text), counting the asks."""

    def __init__(self, records):
        self.records, self.asked = records, []

    def api(self, command):
        self.asked.append(command)
        return self.records.get(int(command.rsplit("/", 1)[1]), "")


# --- reading a record ------------------------------------------------------------------------


def test_a_record_reads_back_what_the_hook_stored():
    assert hangup.parse_record(record_text()) == hangup.HangupRecord(
        "u1", "NORMAL_CLEARING", int((NOW - 40) * 1e6), int((NOW - 10) * 1e6), "200", "19"
    )
    assert hangup.parse_record(record_text(sip="", keys="none")).keys == ""
    assert hangup.parse_record(record_text(sip="")).sip_status is None
    assert hangup.parse_record(record_text(result="promise_to_pay")).result == "promise_to_pay"


def test_a_record_left_by_the_version_before_results_reads_back_without_one():
    old = record_text().rsplit(":", 1)[0]  # `<uuid>:<cause>:<answer>:<end>:<sip>:<keys>`
    assert hangup.parse_record(old) == hangup.parse_record(record_text())
    assert hangup.parse_record(old).result is None


@pytest.mark.parametrize("result", ["_undef_", "a b", "9x", "a:b"])
def test_a_result_that_no_template_could_name_is_no_result(result):
    assert hangup.parse_record(record_text(result=result)).result is None


@pytest.mark.parametrize("text", ["", "u1:NORMAL_CLEARING", "u1::0:1::", "u1:X:soon:1::", "u1:A B:0:1::"])
def test_text_that_is_no_record_reads_as_none(text):
    assert hangup.parse_record(text) is None


def test_only_a_record_of_this_very_call_counts():
    switch = Switch({3: record_text("u1"), 4: record_text("an-older-call-of-slot-4")})
    claims = [claim("u1", 3), claim("u2", 4), claim("u3", 5), claim("u4", None)]
    assert list(hangup.read_records(switch, claims)) == ["u1"]
    assert switch.asked == ["hash select/autocall/3", "hash select/autocall/4", "hash select/autocall/5"]


def test_a_switch_without_mod_hash_is_said_once_and_recovers_nothing(caplog):
    switch = Switch({3: "-ERR hash Command not found!\n", 4: "-ERR hash Command not found!\n"})
    assert hangup.read_records(switch, [claim("u1", 3), claim("u2", 4)]) == {}
    assert len(switch.asked) == 1
    assert "load mod_hash" in caplog.text


# --- the report it makes ---------------------------------------------------------------------


def test_an_answered_record_reports_the_switchs_talk_time_keys_and_the_result_so_far():
    record = hangup.parse_record(record_text())
    report = hangup.recorded_report(record, claim(result="promise_to_pay"), NOW)
    assert (report.answered_at, report.ended_at, report.talk_seconds) == (NOW - 40, NOW - 10, 30.0)
    assert (report.cause, report.sip_status, report.keys, report.result) == (
        "NORMAL_CLEARING",
        "200",
        "19",
        "promise_to_pay",
    )
    assert not report.interrupted and report.stop_reason is None


def test_the_result_the_channel_carried_outranks_the_stores():
    # The store's is older when the daemon stopped before its write of the newer one landed.
    record = hangup.parse_record(record_text(result="promise_to_pay"))
    assert hangup.recorded_report(record, claim(result="wants_agent"), NOW).result == "promise_to_pay"
    assert hangup.recorded_report(record, claim(), NOW).result == "promise_to_pay"


def test_an_unanswered_record_reports_no_answer_and_no_talk():
    record = hangup.parse_record(record_text(cause="NO_ANSWER", answer=0, sip="", keys="none"))
    report = hangup.recorded_report(record, claim(), NOW)
    assert (report.answered_at, report.talk_seconds, report.cause, report.keys) == (None, 0.0, "NO_ANSWER", "")


def test_a_switch_clock_ahead_of_ours_puts_no_time_in_our_future():
    record = hangup.parse_record(record_text(answer=NOW + 100, end=NOW + 130))
    report = hangup.recorded_report(record, claim(answered_at=NOW - 5), NOW)
    assert (report.answered_at, report.ended_at, report.talk_seconds) == (NOW - 5, NOW, 30.0)


def test_reconciliation_closes_a_recorded_call_with_its_record_and_a_silent_one_as_lost():
    records = {"u1": hangup.parse_record(record_text())}
    reattach, ended = plan([claim("u1"), claim("u2"), claim("u3")], {"u3": {"callstate": "ACTIVE"}}, NOW, records)
    assert [r.claim.uuid for r in reattach] == ["u3"]
    assert [(c.uuid, r.cause, r.interrupted) for c, r in ended] == [
        ("u1", "NORMAL_CLEARING", False),
        ("u2", LOST, True),
    ]


# --- the store and the ledger ----------------------------------------------------------------


@pytest.fixture
def db(tmp_path):
    db = schema.open_database(tmp_path / "store.sqlite3")
    request = ImportRequest("Q", "IVR-1", {}, [NewCustomer(f"C{i}", [f"090100000{i}"], {}) for i in range(3)])
    customers.import_customers(db, request, QueueDefaults(), now=lambda: NOW - 10)
    return db


def test_claims_take_the_slots_given_in_order_and_reconciliation_reads_them_back(db):
    ledger = Ledger(db)
    [queue] = reports.running_queues(db)
    claims = ledger.claim_many(queue, 2, now=NOW, slots=[0, 5, 6], **DAY)
    assert [c.slot for c in claims] == [0, 5]
    ledger.mark_step(claims[0].attempt_id, "menu", None)
    ledger.mark_step(claims[0].attempt_id, "thanks", "promise_to_pay")
    ledger.mark_step(claims[0].attempt_id, "end", None)  # a later step keeps the result
    opened = {c.uuid: (c.slot, c.step, c.result) for c in ledger.open_attempts()}
    assert opened == {claims[0].uuid: (0, "end", "promise_to_pay"), claims[1].uuid: (5, None, None)}


def test_the_ledger_thread_lists_open_attempts_with_a_step_still_waiting_to_be_written(db):
    ledger = Ledger(db)
    [c] = ledger.claim_many(reports.running_queues(db)[0], 1, now=NOW, slots=[0], **DAY)
    thread = LedgerThread(ledger)
    try:

        def step_then_list():  # in one greenlet, as the dialer detaches a call and reconciles
            thread.mark_step(c.attempt_id, "info", None)
            return thread.open_attempts()

        [opened] = gevent.spawn(step_then_list).get(timeout=10)
    finally:
        thread.close()
    assert opened.step == "info"


def test_a_schema_2_file_gains_the_slot_and_step_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = pw.SqliteDatabase(str(path))
    for migrate in schema.MIGRATIONS[:2]:
        migrate(old)
    old.execute_sql("ALTER TABLE attempt DROP COLUMN step")  # as version 2 left it: _v1 used today's models
    old.execute_sql("ALTER TABLE attempt DROP COLUMN slot")
    old.execute_sql("PRAGMA user_version = 2")
    old.close()
    db = schema.open_database(path)
    assert db.execute_sql("PRAGMA user_version").fetchone() == (schema.SCHEMA_VERSION,)
    columns = [r[1] for r in db.execute_sql("PRAGMA table_info(attempt)")]
    assert columns[-2:] == ["slot", "step"]
