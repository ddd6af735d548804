"""The person is the unit of safety (issue 11): the claim's checks across queues, on real files.

Each test is one way a careless or hostile client could get one person called twice at once,
over the daily cap, or after a DNC, with ordinary API commands only.
"""

import json

import pytest

from daemon.config import QueueDefaults
from daemon.store import customers, dnc, people, queue_state, reports, schema
from daemon.store.records import CallReport, ImportRequest, NewCustomer
from daemon.store.schema import execute
from daemon.store.states import DELETED, DNC, PENDING
from tests.pg_fixtures import close

NOW = 1_800_000_000.0
DAY_START, NEXT_DAY = NOW - 3600, NOW + 86400


@pytest.fixture
def db(store_db):
    """A fresh store on each backend (tests/pg_fixtures.py)."""
    return store_db


def add(db, *people, code="Q", **settings):
    request = ImportRequest(
        code, "IVR-1", settings, [NewCustomer(ext_id, list(numbers), {}) for ext_id, numbers in people]
    )
    return customers.import_customers(db, request, QueueDefaults(), now=lambda: NOW - 10)


def claim(db, code="Q", limit=10, now=NOW, daily_cap=5):
    [queue] = [q for q in reports.running_queues(db) if q.code == code]
    with db.atomic():
        return customers.claim_many(
            db, queue, limit, now=now, day_start=DAY_START, next_day=NEXT_DAY, daily_cap=daily_cap
        )


def finish(db, c, at, cause="USER_BUSY"):
    with db.atomic():
        return customers.finish(db, c, CallReport(None, at, 0.0, cause), recall_delay=0.0)


def stop_delete(db, code="Q"):
    queue_state.set_running(db, code, False)
    customers.delete_queue(db, code)


def customer(db, code, ext_id, columns="c.state, c.next_call_at"):
    return execute(
        db,
        f"SELECT {columns} FROM customer c JOIN queue q ON q.id = c.queue_id"
        " WHERE q.code = ? AND q.state != ? AND c.ext_id = ?",
        (code, DELETED, ext_id),
    ).fetchone()


# --- never two open calls to one person ---------------------------------------------------


def test_a_reimport_after_stop_and_delete_waits_while_the_first_calls_are_up(db):
    people = [(f"K{i}", [f"090100000{i}"]) for i in range(5)]
    add(db, *people)
    first = claim(db)
    assert len(first) == 5
    stop_delete(db)  # calls in progress are not cut
    assert add(db, *people).success == [p[0] for p in people]

    assert claim(db, now=NOW + 1) == []  # the same five are still on the phone
    assert {customer(db, "Q", ext)[0] for ext, _ in people} == {PENDING}
    assert customer(db, "Q", "K0")[1] == NOW + 1 + customers.BUSY_RETRY  # looked at again shortly
    for c in first:
        finish(db, c, NOW + 2)
    assert sorted(c.ext_id for c in claim(db, now=NOW + 3)) == [p[0] for p in people]


def test_the_same_id_and_number_in_two_queues_is_called_by_one_at_a_time(db):
    add(db, ("K1", ["0901000001"]), code="A")
    add(db, ("K1", ["0901000001"]), code="B")
    [c] = claim(db, "A")
    assert claim(db, "B") == []
    finish(db, c, NOW + 1)
    assert [x.ext_id for x in claim(db, "B", now=NOW + 2)] == ["K1"]


def test_the_same_id_on_other_numbers_in_another_queue_waits(db):
    add(db, ("K1", ["0901000001"]), code="A")
    add(db, ("K1", ["0902000002"]), code="B")
    claim(db, "A")
    assert claim(db, "B") == []
    assert customer(db, "B", "K1")[0] == PENDING


def test_two_ids_sharing_a_number_are_never_called_at_once(db):
    add(db, ("HUSBAND", ["0901000001"]), ("WIFE", ["0902000002", "0901000001"]))
    assert [c.ext_id for c in claim(db)] == ["HUSBAND"]  # the wife's other number too: one phone, one household
    assert customer(db, "Q", "WIFE")[0] == PENDING


def test_two_customers_with_one_number_in_one_batch_get_one_call(db):
    add(db, ("K1", ["0901000001"]), ("K2", ["0901000001"]))
    assert [c.ext_id for c in claim(db, limit=5)] == ["K1"]


# --- the daily cap, per number and per id, across queues ----------------------------------


def _burn(db, code, ext_id, number, calls):
    """`calls` busy calls of `ext_id` in `code` (imported again each time, as a client would)."""
    for i in range(calls):
        add(db, (ext_id, [number]), code=code, max_recall_count=0)
        [c] = claim(db, code, now=NOW + 10 * i, daily_cap=0)
        finish(db, c, NOW + 10 * i + 1)
        stop_delete(db, code)


def test_stop_delete_reimport_cycles_do_not_reset_the_daily_cap(db):
    _burn(db, "Q", "K1", "0901000001", 2)
    add(db, ("K1", ["0901000001"]), max_recall_count=5)
    assert claim(db, now=NOW + 100, daily_cap=2) == []
    assert customer(db, "Q", "K1") == (PENDING, NEXT_DAY)


def test_the_daily_cap_counts_a_number_for_every_id_that_holds_it(db):
    _burn(db, "A", "K1", "0901000001", 2)
    add(db, ("OTHER_ID", ["0901000001"]), code="B")
    assert claim(db, "B", now=NOW + 100, daily_cap=2) == []
    assert customer(db, "B", "OTHER_ID") == (PENDING, NEXT_DAY)


def test_the_daily_cap_counts_an_id_across_queues_and_numbers(db):
    _burn(db, "A", "K1", "0901000001", 2)
    add(db, ("K1", ["0902000002"]), code="B")
    assert claim(db, "B", now=NOW + 100, daily_cap=2) == []


def test_a_number_at_its_cap_is_skipped_for_the_customers_next_one(db):
    _burn(db, "A", "SHARED", "0901000001", 2)
    add(db, ("K1", ["0901000001", "0902000002"]), code="B")
    [c] = claim(db, "B", now=NOW + 100, daily_cap=2)
    assert c.number == "0902000002"


def test_calls_before_today_and_calls_never_dialed_do_not_count(db):
    _burn(db, "A", "K1", "0901000001", 2)
    execute(db, "UPDATE attempt SET started_at = ?", (DAY_START - 1,))  # yesterday
    add(db, ("K1", ["0901000001"]), code="B")
    execute(
        db,
        "INSERT INTO attempt (customer_id, queue_id, round, number, uuid, job_uuid, state, started_at,"
        " ended_at, keys, outcome) SELECT id, queue_id, 0, '0901000001', 'x', 'y', 'done', ?, ?, '',"
        " 'not_dialed' FROM customer WHERE ext_id = 'K1' LIMIT 1",
        (NOW, NOW),
    )
    assert len(claim(db, "B", now=NOW + 100, daily_cap=2)) == 1


# --- DNC: remembered per (queue code, id), and by number ----------------------------------


def test_a_dnc_outlives_delete_and_reimport_of_its_queue(db):
    add(db, ("K1", ["0901000001"]))
    customers.block(db, "Q", ["K1"])
    stop_delete(db)
    result = add(db, ("K1", ["0901000001"]), ("K2", ["0901000002"]))
    assert [r["id"] for r in result.rejected] == ["K1"] and result.success == ["K2"]


def test_a_dnc_for_a_queue_not_yet_imported_is_kept_for_it(db):
    assert customers.block(db, "LATER", ["K1"]) is False
    result = add(db, ("K1", ["0901000001"]), code="LATER")
    assert [r["reason"] for r in result.rejected] == ["on this queue's DNC list"]


def test_the_claim_looks_the_id_up_on_its_queue_codes_dnc_list_once_more(db):
    add(db, ("K1", ["0901000001"]), ("K2", ["0901000002"]))
    with db.atomic():
        dnc.add_ids(db, "Q", ["K1"], NOW)  # as a migration leaves it: listed, still pending
    assert [c.ext_id for c in claim(db)] == ["K2"]
    assert customer(db, "Q", "K1")[0] == DNC


def test_an_import_drops_numbers_on_the_dnc_number_list_and_refuses_a_customer_with_only_those(db):
    dnc.block_numbers(db, ["0901000001"], now=lambda: NOW)
    result = add(db, ("ONLY", ["0901000001"]), ("BOTH", ["0901000001", "0902000002"]))
    assert result.success == ["BOTH"]
    assert result.rejected == [{"id": "ONLY", "reason": "every mobile is on the DNC number list"}]
    assert [w["id"] for w in result.warnings] == ["BOTH"]
    assert json.loads(customer(db, "Q", "BOTH", "mobiles")[0]) == ["0902000002"]


def test_a_number_listed_after_the_import_is_never_dialled(db):
    add(db, ("ONLY", ["0901000001"]), ("BOTH", ["0901000001", "0902000002"]))
    dnc.block_numbers(db, ["0901000001"], now=lambda: NOW)
    [c] = claim(db)
    assert (c.ext_id, c.number) == ("BOTH", "0902000002")
    assert customer(db, "Q", "ONLY", "c.state, c.last_cause") == (DNC, "NUMBER_ON_DNC_LIST")
    # The recall rules skip it as well: the next round starts on the other number again.
    finish(db, c, NOW + 1)
    [again] = claim(db, now=NOW + 2)
    assert again.number == "0902000002"


def test_schema_1_migrates_its_dnc_rows_to_queue_codes(store_url):
    old = schema._backend(store_url).connect(store_url, busy_timeout=5.0)  # connected, nothing migrated
    schema.MIGRATIONS[0](old)  # a database as schema version 1 left it
    schema.dialect_of(old).set_schema_version(old, 1)
    old.execute_sql(
        "INSERT INTO queue (id, code, template, concurrent_call, max_recall_count, min_recall_duration,"
        " state, created_at, updated_at) VALUES (7, 'Q', 'IVR-1', 5, 3, 3, 'deleted', 0, 0)"
    )
    old.execute_sql("INSERT INTO dnc (queue_id, ext_id, created_at) VALUES (7, 'K1', 0), (7, 'K2', 0)")
    close(old)
    db = schema.open_database(store_url)
    try:
        assert schema.dialect_of(db).schema_version(db) == schema.SCHEMA_VERSION
        assert sorted(execute(db, "SELECT queue_code, ext_id FROM dnc").fetchall()) == [("Q", "K1"), ("Q", "K2")]
        assert [r["id"] for r in add(db, ("K1", ["0901000001"])).rejected] == ["K1"]
    finally:
        close(db)


def test_the_models_declare_the_tables_the_migrations_made(db):
    for model in schema.MODELS:
        columns = [c.name for c in db.get_columns(model._meta.table_name)]
        assert columns == [f.column_name for f in model._meta.sorted_fields]


def test_times_keep_their_microseconds_on_every_backend(db):
    add(db, ("K1", ["0901000001"]))
    [c] = claim(db, now=NOW + 0.123456)
    assert execute(db, "SELECT started_at FROM attempt").fetchone() == (NOW + 0.123456,)


def _plan(db, sql, params) -> str:
    """How the backend runs `sql`; PostgreSQL told to avoid a full scan wherever an index serves."""
    if schema.dialect_of(db).name == "sqlite":
        return " ".join(r[-1] for r in execute(db, "EXPLAIN QUERY PLAN " + sql, params))
    with db.atomic():
        execute(db, "SET LOCAL enable_seqscan = off")
        return " ".join(r[0] for r in execute(db, "EXPLAIN " + sql, params))


def test_the_claims_checks_are_answered_by_indexes(db):
    add(db, ("K1", ["0901000001"]), ("K2", ["0901000002", "0901000003"]))
    claim(db)
    candidates = [("K1", ["0901000001"]), ("K2", ["0901000002", "0901000003"])]
    plans = [_plan(db, *people.look_sql("Q", candidates, DAY_START))]
    assert all("SCAN" not in plan and "Seq Scan" not in plan for plan in plans), plans
