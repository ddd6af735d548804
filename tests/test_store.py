"""The store on real SQLite files: every customer transition as a function, databases that
do not share their models, and the rule that only `store/customers.py` and `store/commands.py`
write a customer's state."""

import re
from pathlib import Path

import pytest

from daemon.config import QueueDefaults
from daemon.ledger import Ledger
from daemon.store import customers, pages, postgres, queue_state, reports, schema, sqlite
from daemon.store.records import CallReport, ImportRequest, NewCustomer
from daemon.store.schema import execute
from daemon.store.states import CALLING, CUSTOMER_STATES, DNC, FAILED, PENDING, SUCCESS

NOW = 1_800_000_000.0
DAY = dict(day_start=NOW - 3600, next_day=NOW + 86400, daily_cap=5)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(store_db):
    """A fresh store on each backend (tests/pg_fixtures.py)."""
    return store_db


def add(db, *people, code="Q", **settings):
    """Import [(id, [numbers])] into queue `code`; returns the ImportResult."""
    request = ImportRequest(
        code, "IVR-1", settings, [NewCustomer(ext_id, list(numbers), {"n": ext_id}) for ext_id, numbers in people]
    )
    return customers.import_customers(db, request, QueueDefaults(), now=lambda: NOW - 10)


def row(db, ext_id, columns="state, round, number_index, last_cause"):
    return execute(db, f"SELECT {columns} FROM customer WHERE ext_id = ?", (ext_id,)).fetchone()


def claim(db, code="Q", limit=1, now=NOW):
    [queue] = [q for q in reports.running_queues(db) if q.code == code]
    with db.atomic():
        return customers.claim_many(db, queue, limit, now=now, **DAY)


def busy(at=NOW + 1):
    return CallReport(answered_at=None, ended_at=at, talk_seconds=0.0, cause="USER_BUSY", sip_status="486")


# --- one database, one file ---------------------------------------------------------------


def test_two_databases_in_one_process_each_keep_their_own_rows(tmp_path):
    a = schema.open_database(tmp_path / "a.sqlite3")
    b = schema.open_database(tmp_path / "b.sqlite3")
    assert add(a, ("A1", ["0901000001"])).success == ["A1"]
    add(b, ("B1", ["0901000002"]), ("B2", ["0901000003"]), code="QB")
    assert execute(a, "SELECT code FROM queue").fetchall() == [("Q",)]
    assert execute(b, "SELECT code FROM queue").fetchall() == [("QB",)]
    assert [c.ext_id for c in Ledger(a).claim_many(reports.running_queues(a)[0], 5, now=NOW, **DAY)] == ["A1"]
    assert reports.customer_counts(b)[1][PENDING] == 2


def test_two_apps_in_one_process_write_their_own_files(tmp_path):
    from api.app import create_app
    from api.services import services
    from tests.api_fixtures import make_config, post, seed_import

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = create_app(make_config(tmp_path / "a")), create_app(make_config(tmp_path / "b"))
    assert post(first.test_client(), "/queue", seed_import()).status_code == 200
    db_a, db_b = (services(app).db for app in (first, second))
    with db_a.connection_context(), db_b.connection_context():
        assert execute(db_a, "SELECT COUNT(*) FROM customer").fetchone() == (1,)
        assert execute(db_b, "SELECT COUNT(*) FROM customer").fetchone() == (0,)


# --- the API's transitions ----------------------------------------------------------------


def test_import_adds_refreshes_rearms_and_refuses_by_state(db):
    add(
        db,
        ("NEW", ["0901000001"]),
        ("SAME", ["0901000002", "0901000003"]),
        ("MOVED", ["0901000004", "0901000005"]),
        ("DONE", ["0901000006"]),
        ("CALL", ["0901000007"]),
    )
    execute(db, "UPDATE customer SET number_index = 1 WHERE ext_id IN ('SAME', 'MOVED')")
    execute(db, "UPDATE customer SET state = ?, round = 2, last_cause = 'X' WHERE ext_id = 'DONE'", (FAILED,))
    execute(db, "UPDATE customer SET state = ? WHERE ext_id = 'CALL'", (CALLING,))
    result = add(
        db,
        ("SAME", ["0901000002", "0901000003"]),
        ("MOVED", ["0901000009"]),
        ("DONE", ["0901000006"]),
        ("CALL", ["0901000007"]),
    )
    assert result.success == ["SAME", "MOVED", "DONE"]
    assert [r["id"] for r in result.rejected] == ["CALL"]
    assert row(db, "NEW") == (PENDING, 0, 0, None)
    assert row(db, "SAME") == (PENDING, 0, 1, None)  # same numbers: keeps its place
    assert row(db, "MOVED") == (PENDING, 0, 0, None)  # new numbers: the list starts over
    assert row(db, "DONE") == (PENDING, 0, 0, None)  # finished: armed for fresh rounds
    assert row(db, "CALL")[0] == CALLING


def test_block_ends_pending_customers_dnc_and_remembers_ids_not_yet_imported(db):
    add(db, ("P", ["0901000001"]), ("C", ["0901000002"]), ("S", ["0901000003"]))
    execute(db, "UPDATE customer SET state = ? WHERE ext_id = 'C'", (CALLING,))
    execute(db, "UPDATE customer SET state = ? WHERE ext_id = 'S'", (SUCCESS,))
    assert customers.block(db, "Q", ["P", "C", "S", "LATER"]) is True
    customers.block(db, "Q", ["LATER"])  # twice is harmless
    assert [row(db, x)[0] for x in ("P", "C", "S")] == [DNC, CALLING, SUCCESS]
    assert [r["id"] for r in add(db, ("LATER", ["0901000004"])).rejected] == ["LATER"]


def test_delete_queue_needs_a_stopped_queue_and_closes_only_unfinished_customers(db):
    add(db, ("P", ["0901000001"]), ("C", ["0901000002"]), ("S", ["0901000003"]))
    execute(db, "UPDATE customer SET state = ? WHERE ext_id = 'C'", (CALLING,))
    execute(db, "UPDATE customer SET state = ? WHERE ext_id = 'S'", (SUCCESS,))
    with pytest.raises(queue_state.QueueRunning):
        customers.delete_queue(db, "Q")
    queue_state.set_running(db, "Q", False)
    customers.delete_queue(db, "Q")
    assert [row(db, x)[0] for x in ("P", "C", "S")] == ["deleted", "deleted", SUCCESS]
    assert reports.customer_counts(db) == {}
    assert add(db, ("P", ["0901000001"])).success == ["P"]  # the code is free again: a new queue


# --- the dialer's transitions -------------------------------------------------------------


def test_claim_many_takes_due_customers_and_fails_one_without_a_live_number(db):
    add(db, ("DEAD", ["0901000001"]), ("LIVE", ["0901000002"]))
    execute(db, "UPDATE customer SET dead_numbers = '[\"0901000001\"]' WHERE ext_id = 'DEAD'")
    [c] = claim(db, limit=5)
    assert (c.ext_id, c.number) == ("LIVE", "0901000002")
    assert row(db, "DEAD") == (FAILED, 0, 0, "NO_LIVE_NUMBER")
    assert row(db, "LIVE")[0] == CALLING
    assert execute(db, "SELECT id, uuid, state FROM attempt").fetchall() == [(c.attempt_id, c.uuid, "dialing")]


def test_the_dialer_transitions_refuse_to_run_outside_a_transaction(db):
    add(db, ("A", ["0901000001"]))
    queue = reports.running_queues(db)[0]
    with pytest.raises(RuntimeError, match="atomic"):
        customers.claim_many(db, queue, 1, now=NOW, **DAY)
    assert row(db, "A")[0] == PENDING


def test_finish_moves_the_customer_by_the_recall_rules_once(db):
    add(db, ("A", ["0901000001", "0901000002"]), max_recall_count=0)
    [c] = claim(db)
    customers.mark_answered(db, c.attempt_id, NOW + 0.5)
    with db.atomic():
        assert customers.finish(db, c, busy(), recall_delay=60) == ("retry", PENDING)
        assert customers.finish(db, c, busy(), recall_delay=60) == ("retry", "unchanged")
    assert row(db, "A", "state, number_index, next_call_at") == (PENDING, 1, NOW + 1)
    assert execute(db, "SELECT state, answered_at, outcome FROM attempt").fetchone() == ("done", NOW + 0.5, "retry")
    [c] = claim(db, now=NOW + 2)
    with db.atomic():
        assert customers.finish(db, c, busy(NOW + 3), recall_delay=60) == ("retry", FAILED)


def test_abandon_puts_the_customer_back_or_fails_it_and_may_stop_the_queue(db):
    add(db, ("A", ["0901000001"]), ("B", ["0901000002"]))
    a, b = claim(db, limit=2)
    with db.atomic():
        customers.abandon(db, a, cause="SOUND_FILE_MISSING", now=NOW, stop_reason="sound files missing: x.wav")
        customers.abandon(db, b, cause="TEMPLATE: no amount", now=NOW, customer_state=FAILED)
        with pytest.raises(ValueError):
            customers.abandon(db, b, cause="X", now=NOW, customer_state=SUCCESS)
    assert row(db, "A") == (PENDING, 0, 0, "SOUND_FILE_MISSING")
    assert row(db, "B") == (FAILED, 0, 0, "TEMPLATE: no amount")
    assert execute(db, "SELECT state, stop_reason FROM queue").fetchone() == (
        "stopped",
        "sound files missing: x.wav",
    )
    assert reports.running_queues(db) == []


def test_a_claimed_customer_whose_dnc_came_meanwhile_is_abandoned_to_dnc_not_pending(db):
    # Found by the fault campaign: a template change makes the dialer give a claim back
    # (not_dialed); the DNC acknowledged while it was claimed must not be undone.
    add(db, ("A", ["0901000001"]))
    [a] = claim(db)
    customers.block(db, "Q", ["A"], now=lambda: NOW)
    with db.atomic():
        customers.abandon(db, a, cause="TEMPLATE_CHANGED", now=NOW)
    assert row(db, "A")[0] == "dnc"


# --- reads --------------------------------------------------------------------------------


def test_the_api_the_live_view_and_the_ledger_count_customers_alike(db):
    add(db, ("A", ["0901000001"]), ("B", ["0901000002"]), ("C", ["0901000003"]))
    add(db, code="EMPTY")
    claim(db)
    customers.block(db, "Q", ["B"])
    expected = dict.fromkeys(CUSTOMER_STATES, 0) | {PENDING: 1, CALLING: 1, DNC: 1}
    assert reports.queue_summary(db, "Q")["counts"] == expected
    assert {s.code: s.counts for s in reports.queue_statuses(db, now=NOW)} == {
        "Q": expected,
        "EMPTY": dict.fromkeys(CUSTOMER_STATES, 0),
    }
    assert Ledger(db).counts() == expected


def test_list_customers_and_attempt_pages_read_json_columns_and_attempts(db):
    add(db, ("A", ["0901000001"]), ("B", ["0901000002"]))
    [c] = claim(db)
    page = pages.list_customers(db, "Q", state=None, page=1, per_page=1)
    assert (page["total"], [x["id"] for x in page["customers"]]) == (2, ["A"])
    assert page["customers"][0]["mobiles"] == ["0901000001"] and page["customers"][0]["fields"] == {"n": "A"}
    assert [a["uuid"] for a in page["customers"][0]["attempts"]] == [c.uuid]
    queue_id, _ = queue_state.live_queue(db, "Q")
    [(attempt_id, ext_id, number, uuid, *_)] = reports.attempt_page(db, queue_id, 0, 10)
    assert (ext_id, number, uuid) == ("A", "0901000001", c.uuid)
    assert reports.attempt_page(db, queue_id, attempt_id, 10) == []


def test_tallies_count_live_queues_only_and_leave_out_empty_cells(db):
    add(db, ("A", ["0901000001"]), ("B", ["0901000002"]))
    add(db, ("C", ["0901000003"]), code="GONE")
    [c] = claim(db)
    with db.atomic():
        customers.finish(db, c, busy(), recall_delay=60)
    queue_state.set_running(db, "GONE", False)
    customers.delete_queue(db, "GONE")
    tables = reports.tallies(db)
    assert tables["customers_by_state"] == {PENDING: {"Q": 2}}
    assert tables["calls_by_outcome"] == {"retry": {"Q": 1}}
    assert tables["calls_by_cause"] == {"USER_BUSY": {"Q": 1}}
    assert tables["customers_by_result"] == {"(none)": {"Q": 2}}


# --- the contract's rules, kept in the code -----------------------------------------------

SOURCES = sorted((REPO / "daemon").rglob("*.py")) + sorted((REPO / "api").rglob("*.py"))
SQL_LINE = re.compile(r"\b(SELECT|UPDATE|INSERT|DELETE|WHERE|SET|JOIN)\b")


def test_only_store_customers_writes_a_customer_state():
    writers = {
        path.relative_to(REPO).as_posix()
        for path in SOURCES
        if re.search(
            r"UPDATE customer SET(?:(?!WHERE)[^\"])*\bstate = |INSERT INTO customer\b|Customer\.(update|insert)",
            path.read_text(),
        )
    }
    assert writers == {"daemon/store/customers.py", "daemon/store/commands.py"}


def test_no_state_word_is_written_inside_sql_text():
    words = "|".join(CUSTOMER_STATES + ("running", "stopped", "dialing", "answered", "done"))
    literal = re.compile(rf"(=|IN \(|, )\s*'({words})'")
    found = [
        (path.name, line.strip())
        for path in SOURCES
        for line in path.read_text().splitlines()
        if SQL_LINE.search(line) and literal.search(line)
    ]
    assert found == []


def test_placeholders_follow_the_backends_parameter_style():
    sql = "SELECT 1 FROM queue WHERE id = ? AND code LIKE '5%' AND state IN (?, ?)"
    assert sqlite.DIALECT.adapt(sql) == sql
    assert postgres.DIALECT.adapt(sql) == "SELECT 1 FROM queue WHERE id = %s AND code LIKE '5%%' AND state IN (%s, %s)"
    assert schema.marks([1, 2, 3]) == "?, ?, ?"
    assert schema.marks([]) == "NULL"  # `IN ()` is an error on PostgreSQL; `IN (NULL)` matches nothing


SQLITE_ONLY = re.compile(
    r"\bPRAGMA\b|INSERT OR (REPLACE|IGNORE|ABORT|FAIL|ROLLBACK)\b|\bjson_extract\b|\browid\b|\blastrowid\b"
    r"|\bAUTOINCREMENT\b|sqlite_master|\bGLOB\b|\bIFNULL\b|datetime\('now"
)


def test_no_sqlite_only_sql_outside_the_sqlite_dialect():
    found = [
        (path.relative_to(REPO).as_posix(), line.strip())
        for path in SOURCES
        if path.relative_to(REPO).as_posix() != "daemon/store/sqlite.py"
        for line in path.read_text().splitlines()
        if SQLITE_ONLY.search(line)
    ]
    assert found == []
