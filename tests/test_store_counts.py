"""Customers per queue and state kept by the database (daemon/store/counts.py), on both
backends: right after every transition of the store's writers, and after the migration
that brings an existing database to them."""

import json

from daemon.config import QueueDefaults
from daemon.store import commands, customers, queue_state, reports, schema
from daemon.store.records import CallReport, ImportRequest, NewCustomer
from daemon.store.schema import execute
from daemon.store.states import CUSTOMER_STATES, DNC, FAILED
from tests.pg_fixtures import close
from tests.test_store import DAY, NOW, add, busy, claim
from tests.test_store_backends import add_raw


def counted(db) -> dict[int, dict[str, int]]:
    """Every queue's counts as the rows say (deleted queues too), every state present."""
    truth: dict[int, dict[str, int]] = {}
    for (queue_id,) in execute(db, "SELECT id FROM queue").fetchall():
        truth[queue_id] = dict.fromkeys(CUSTOMER_STATES, 0)
    for queue_id, state, n in execute(db, "SELECT queue_id, state, COUNT(*) FROM customer GROUP BY 1, 2"):
        truth[queue_id][state] = n
    return truth


def kept(db) -> dict[int, dict[str, int]]:
    """What queue_count holds, in the same shape."""
    table = {queue_id: dict.fromkeys(CUSTOMER_STATES, 0) for (queue_id,) in execute(db, "SELECT id FROM queue")}
    for queue_id, state, n in execute(db, "SELECT queue_id, state, n FROM queue_count"):
        table[queue_id][state] = n
    return table


def assert_counts_right(db):
    truth = counted(db)
    assert kept(db) == truth
    live = reports.customer_counts(db)
    assert live == {queue_id: truth[queue_id] for queue_id in live}


def success(at=NOW + 5):
    return CallReport(answered_at=at - 4, ended_at=at, talk_seconds=4.0, cause="NORMAL_CLEARING", keys="9")


def test_counts_stay_right_through_every_transition(store_db):
    db = store_db
    add(db, *[(f"C{i}", [f"09010000{i:02d}"]) for i in range(8)], ("NOPE", ["0901999999"]), max_recall_count=0)
    add(db, ("O1", ["0902000001"]), code="OTHER")
    assert_counts_right(db)
    assert reports.queue_summary(db, "Q")["counts"]["pending"] == 9
    # A claim (pending → calling), a finish to a recall (calling → pending) and to the end.
    first, second, third = claim(db, limit=3)
    assert_counts_right(db)
    with db.atomic():
        customers.finish(db, first, busy(), recall_delay=60)
        customers.finish(db, second, success(), recall_delay=60)
        customers.abandon(db, third, cause="TEMPLATE: no amount", now=NOW, customer_state=FAILED)
    assert_counts_right(db)
    # No live number left: a claim ends the customer failed without a call.
    execute(db, "UPDATE customer SET dead_numbers = mobiles WHERE ext_id = 'NOPE'")
    with db.atomic():
        queue = next(q for q in reports.running_queues(db) if q.code == "Q")
        customers.claim_many(db, queue, 20, now=NOW + 100, **DAY)
    assert_counts_right(db)
    # Block, re-import (a finished customer armed again), abandon, stop and delete.
    customers.block(db, "Q", ["C6", "C7"])
    add(db, ("C1", ["0901000001"]), ("NEW", ["0901000077"]))
    assert_counts_right(db)
    queue_state.set_running(db, "Q", False)
    customers.delete_queue(db, "Q")
    assert_counts_right(db)
    assert kept(db)[1]["deleted"] > 0 and reports.customer_counts(db).keys() == {2}
    # Whatever writes the rows, an operator's UPDATE or DELETE too.
    execute(db, "UPDATE customer SET state = ? WHERE ext_id = 'O1'", (DNC,))
    execute(db, "DELETE FROM attempt")
    execute(db, "DELETE FROM customer WHERE ext_id = 'C0'")
    assert_counts_right(db)


def test_a_schema_4_database_gets_its_counts_from_its_rows(store_url):
    old = schema._backend(store_url).connect(store_url, busy_timeout=5.0)  # nothing migrated yet
    for migration in schema.MIGRATIONS[:4]:
        migration(old)
    schema.dialect_of(old).set_schema_version(old, 4)
    add_raw(old, 1, "Q", {"A": "pending", "B": DNC, "C": "pending"})  # as schema 4's import left them
    add_raw(old, 2, "OTHER", {"D": "pending"})
    truth = counted(old)
    close(old)
    db = schema.open_database(store_url)
    try:
        assert kept(db) == truth and truth[1]["pending"] == 2
        add(db, ("E", ["0901000005"]))  # and the triggers keep them from then on
        assert_counts_right(db)
        columns = {index: [c.lower() for c in columns] for index, columns in _indexes(db, "customer").items()}
        assert columns["customer_queue_order"] == ["queue_id", "id"]
        assert columns["customer_queue_state"] == ["queue_id", "state", "id"]
        assert "customer_queue_id" not in columns
    finally:
        close(db)


def _indexes(db, table: str) -> dict[str, list[str]]:
    return {index.name: index.columns for index in db.get_indexes(table)}


def test_an_import_whose_chunks_mix_new_and_known_customers_sorts_each_and_counts_right(store_db):
    """New customers inserted, pending ones refreshed, finished ones armed again, one in a
    call refused, in request order across chunks; the fields read back as sent."""
    db = store_db
    add(db, ("P1", ["0901000001"]), ("P2", ["0901000002"]), ("C1", ["0901000003"]), ("F1", ["0901000004"]))
    execute(db, "UPDATE customer SET state = 'calling' WHERE ext_id = 'C1'")
    execute(db, "UPDATE customer SET state = ? WHERE ext_id = 'F1'", (FAILED,))
    people = ["N1", "N2", "N3", "P1", "N4", "C1", "F1", "N5", "N6", "P2", "N7"]
    odd = {"big": 2**70, "float": 1e16, "tiny": -0.0, "text": 'Nguyễn "A" \\ \u2028 😀', "yes": True, "none": None}
    request = ImportRequest("Q", "IVR-1", {}, [NewCustomer(p, ["0903000000"], {"v": p, **odd}) for p in people])
    result = customers.import_customers(db, request, QueueDefaults(), chunk=3, now=lambda: NOW)
    assert result.success == [p for p in people if p != "C1"]
    assert result.rejected == [{"id": "C1", "reason": "in a call right now; send it again later"}]
    states = dict(execute(db, "SELECT ext_id, state FROM customer").fetchall())
    assert states == {**{p: "pending" for p in people}, "C1": "calling"}
    fields = dict(execute(db, "SELECT ext_id, fields FROM customer WHERE ext_id IN ('P1', 'F1', 'N7')").fetchall())
    assert {k: json.loads(v) for k, v in fields.items()} == {p: {"v": p, **odd} for p in ("P1", "F1", "N7")}
    assert_counts_right(db)


def test_an_import_of_more_customers_than_one_insert_holds_keeps_them_all_in_request_order(store_db):
    db = store_db
    n = 2 * commands.ROWS_PER_INSERT + 3  # two whole statements and a rest, in one chunk and across two
    people = [f"K{i:03d}" for i in range(n)]
    for code, chunk in (("Q", 1000), ("R", commands.ROWS_PER_INSERT + 1)):
        request = ImportRequest(code, "IVR-1", {}, [NewCustomer(p, ["0903000000"], {"v": p}) for p in people])
        result = customers.import_customers(db, request, QueueDefaults(), chunk=chunk, now=lambda: NOW)
        assert result.success == people
        stored = execute(
            db,
            "SELECT c.ext_id, c.fields, c.state FROM customer c JOIN queue q ON q.id = c.queue_id"
            " WHERE q.code = ? ORDER BY c.id",
            (code,),
        ).fetchall()
        assert [(ext_id, json.loads(fields), state) for ext_id, fields, state in stored] == [
            (p, {"v": p}, "pending") for p in people
        ]
    assert_counts_right(db)
