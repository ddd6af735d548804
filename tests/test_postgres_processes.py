"""autocall-daemon and autocall-api as real processes on one PostgreSQL: the same calls and
results as on SQLite, the password from the environment and never in a log, a stop honoured
from the next claim on, and two API processes whose concurrent writers lose nothing."""

import time

import gevent
import pytest
import requests

from daemon.config import QueueDefaults
from daemon.store import customers, queue_state, records, schema, url
from daemon.store.schema import execute
from tests.api_fixtures import AUTH, ApiProcess, customer, seed_import
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


def test_two_api_processes_on_postgresql_lose_no_customer_under_concurrent_writers(tmp_path, pg):
    location, db = pg
    env = {"AUTOCALL_DB": location.dsn, url.PASSWORD_ENV: location.password}
    servers = [ApiProcess(tmp_path, **env), ApiProcess(tmp_path, **env)]
    session, failures = requests.Session(), []

    def writer(n):
        base = servers[n % 2].url + "/v2/autocall"
        for batch in range(3):
            body = seed_import()
            body["customers"] = [customer(f"W{n:02}-{batch}-{i:02}") for i in range(20)]
            r = session.post(f"{base}/queue", json=body, headers=AUTH, timeout=60)
            if r.status_code != 200 or r.json()["data"]["fail"]:
                failures.append((n, r.status_code, r.text[:200]))
            command = ("/queue/dnc", {"queue_code": "Autocall-Q1", "customers": [{"id": f"DNC-{n}-{batch}"}]})
            if session.post(base + command[0], json=command[1], headers=AUTH, timeout=60).status_code != 200:
                failures.append((n, "dnc"))

    try:
        gevent.joinall([gevent.spawn(writer, n) for n in range(10)], raise_error=True, timeout=120)
    finally:
        logs = "".join(server.stop() for server in servers)
    assert failures == []
    assert rows(db, "SELECT COUNT(DISTINCT ext_id), COUNT(*) FROM customer") == [(600, 600)]
    assert rows(db, "SELECT COUNT(*) FROM queue") == [(1,)] and rows(db, "SELECT COUNT(*) FROM dnc") == [(30,)]
    assert "Traceback" not in logs and location.password not in logs
    assert f"(database {location.dsn})" in logs
