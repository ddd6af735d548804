"""autocall-daemon as a real process on PostgreSQL: the same calls and results as on SQLite,
its password from the environment, and a stop honoured from the next claim on."""

import time

import pytest

from daemon.config import QueueDefaults
from daemon.store import customers, queue_state, records, schema, url
from daemon.store.schema import execute
from tests.daemon_fixtures import overlapping_calls, wait_until
from tests.pg_fixtures import close

pytestmark = pytest.mark.timeout(120)
FIELDS = {"contract_number": "HD123456", "upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"}


@pytest.fixture
def pg(pg_cluster):
    location = pg_cluster.fresh()
    db = schema.open_database(location)
    yield location, db
    close(db)
    pg_cluster.end_connections(location)


def on_postgresql(daemon, location):
    daemon.env.update({"AUTOCALL_DB": location.dsn, url.PASSWORD_ENV: location.password})
    return daemon


def add(db, people, **settings):
    request = records.ImportRequest(
        "Q", "IVR-1", settings, [records.NewCustomer(x, list(numbers), FIELDS) for x, numbers in people]
    )
    customers.import_customers(db, request, QueueDefaults())


def rows(db, sql, *params):
    return execute(db, sql, params).fetchall()


def all_final(db) -> bool:
    return rows(db, "SELECT COUNT(*) FROM customer WHERE state IN ('pending', 'calling')") == [(0,)]


def test_the_daemon_on_postgresql_ends_every_customer_with_one_attempt_per_call(run, pg):
    location, db = pg
    sim, daemon = run(
        {
            "default": {"outcome": "answer", "answer_after": 1, "hangup_after": "never"},
            "numbers": [
                {"number": "0902000001", "outcome": "busy"},
                {"number": "0909000001", "outcome": "unallocated"},
            ],
        },
        originate_timeout=5,
    )
    add(db, [("A", ["0901000001"]), ("B", ["0902000001", "0903000001"]), ("C", ["0909000001"])])
    on_postgresql(daemon, location).start()
    wait_until(lambda: all_final(db), 60)
    assert daemon.terminate() == 0

    states = rows(db, "SELECT ext_id, state, COALESCE(last_cause, '') FROM customer ORDER BY ext_id")
    assert states == [
        ("A", "success", "NORMAL_CLEARING"),
        ("B", "success", "NORMAL_CLEARING"),
        ("C", "failed", "UNALLOCATED_NUMBER"),
    ]
    originates = {r["uuid"]: r["dial"].rsplit("/", 1)[1] for r in sim.records if r["event"] == "originate"}
    assert originates == dict(rows(db, "SELECT uuid, number FROM attempt"))
    customer_of = dict(rows(db, "SELECT a.uuid, c.ext_id FROM attempt a JOIN customer c ON c.id = a.customer_id"))
    assert overlapping_calls(sim.records, customer_of) == []
    assert location.password not in daemon.read_log()


def test_the_daemon_on_postgresql_dials_nothing_after_a_stop_commits(run, pg):
    location, db = pg
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 1, "hangup_after": 2}}, cps=20)
    add(db, [(f"C{i:03}", [f"0901{i:06}"]) for i in range(200)], concurrent_call=5)
    on_postgresql(daemon, location).start()
    wait_until(lambda: rows(db, "SELECT COUNT(*) FROM attempt")[0][0] >= 3, 30)
    queue_state.set_running(db, "Q", False)
    stopped_at = time.time()
    time.sleep(1.0)
    assert rows(db, "SELECT COUNT(*) FROM attempt WHERE started_at > ?", stopped_at) == [(0,)]
    assert daemon.terminate() == 0
