"""autocall-daemon and autocall-api as real processes on one PostgreSQL: the same calls and
results as on SQLite, the password from the environment and never in a log, a stop honoured
from the next claim on, two API processes whose concurrent writers lose nothing, and two
dialers, each on its own switch, that keep a queue's concurrent_call and the person rules
between them."""

import re
import time

import gevent
import pytest
import requests

from daemon import cli
from daemon.config import QueueDefaults
from daemon.store import customers, queue_state, records, schema, url
from daemon.store.schema import execute
from tests.api_fixtures import AUTH, ApiProcess, customer, seed_import
from tests.daemon_fixtures import DaemonProcess, overlapping_calls, start_simulator, wait_until
from tests.pg_fixtures import PgCluster, close

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


def test_the_daemon_on_postgresql_dials_nothing_after_a_stop_commits(run, pg, monkeypatch, capsys):
    location, db = pg
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 1, "hangup_after": 2}}, cps=20, node="pbx7")
    add(db, [(f"C{i:03}", [f"0901{i:06}"]) for i in range(200)], concurrent_call=5)
    on_postgresql(daemon, location).start()
    wait_until(lambda: rows(db, "SELECT COUNT(*) FROM attempt")[0][0] >= 3, 30)
    queue_state.set_running(db, "Q", False)
    stopped_at = time.time()
    time.sleep(1.0)
    assert rows(db, "SELECT COUNT(*) FROM attempt WHERE started_at > ?", stopped_at) == [(0,)]
    # No state file beside a PostgreSQL database: `autocall status` reads each node's heartbeat row.
    monkeypatch.setenv(url.PASSWORD_ENV, location.password)
    assert cli.main(["status", "--db", location.dsn]) == 0
    assert re.search(r"^dialer pbx7: \d+ calls in progress$", capsys.readouterr().out, re.M)
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


def test_the_api_answers_again_as_soon_as_a_restarted_postgresql_is_back(tmp_path):
    # Its own server: the crash must not cut other tests' connections.
    cluster = PgCluster().start()
    location = cluster.fresh()
    close(schema.open_database(location))
    server = ApiProcess(tmp_path, AUTOCALL_DB=location.dsn, **{url.PASSWORD_ENV: location.password})
    base, session = server.url + "/v2/autocall", requests.Session()

    def answers() -> list[int]:
        """An import (the writer thread) and enough reads that every reader thread answers one."""
        statuses = [session.post(f"{base}/queue", json=seed_import(), headers=AUTH, timeout=30).status_code]
        readers = [gevent.spawn(session.get, f"{base}/queue/Autocall-Q1", headers=AUTH, timeout=30) for _ in range(12)]
        gevent.joinall(readers, raise_error=True)
        return statuses + [r.value.status_code for r in readers]

    try:
        assert set(answers()) == {200}  # every thread of the API holds a connection now
        cluster.restart()  # each of them cut
        began = time.monotonic()
        wait_until(lambda: set(answers()) == {200}, 20, 0.2)
        back_after = time.monotonic() - began
        assert all(set(answers()) == {200} for _ in range(3))  # and it stays so
    finally:
        logs = server.stop()
        cluster.stop()
    # Each thread's dead connection answered one 503 at most, then was replaced: not for half a minute.
    assert back_after < 5, back_after
    assert "Traceback" not in logs


def _most_at_once(spans) -> int:
    """The most of these (start, end) spans open at one moment."""
    moments = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = now = 0
    for _, step in moments:
        now += step
        most = max(most, now)
    return most


def test_two_dialers_on_one_postgresql_keep_concurrent_call_and_the_person_rules_between_them(tmp_path, pg):
    location, db = pg
    scenario = {"gateways": ["carrier"], "default": {"outcome": "answer", "answer_after": 2, "hangup_after": 10}}
    nodes = []
    for name in ("pbx1", "pbx2"):
        (tmp_path / name).mkdir()
        sim = start_simulator(scenario)
        # Four channels each, eight places in the two queues: both nodes must dial.
        daemon = on_postgresql(DaemonProcess(tmp_path / name, sim, node=name, cps=50, channel_limit=4), location)
        nodes.append((sim, daemon))
    try:
        for _, daemon in nodes:  # both ready before there is anyone to call
            daemon.start()
        for _, daemon in nodes:
            wait_until(lambda daemon=daemon: "reconciled" in daemon.read_log(), 30)
        # Q: 24 customers, at most 4 in calls; R: 8 of the same people (ids and numbers), 16 others.
        people = [(f"C{i:02}", [f"0901{i:06}"]) for i in range(24)]
        add(db, people, concurrent_call=4, max_recall_count=0)
        others = [(f"D{i:02}", [f"0902{i:06}"]) for i in range(16)]
        request = records.ImportRequest(
            "R", "IVR-1", {"concurrent_call": 4}, [records.NewCustomer(x, n, FIELDS) for x, n in people[:8] + others]
        )
        customers.import_customers(db, request, QueueDefaults())
        wait_until(lambda: all_final(db), 90)
        for _, daemon in nodes:
            assert daemon.terminate() == 0
    finally:
        for sim, daemon in nodes:
            daemon.stop_quietly()
            sim.stop()

    by_node = dict(rows(db, "SELECT node, COUNT(*) FROM attempt GROUP BY node"))
    assert set(by_node) == {"pbx1", "pbx2"}, by_node  # both dialed
    queue_of = dict(rows(db, "SELECT a.uuid, q.code FROM attempt a JOIN queue q ON q.id = a.queue_id"))
    # Wall times: the two simulators' own clocks started at different moments.
    calls = [
        (r["uuid"], r["dial"].rsplit("/", 1)[1], r["wall_time"], r["wall_end_time"])
        for sim, _ in nodes
        for r in sim.records
        if r["event"] == "originate"
    ]
    assert len(calls) == sum(by_node.values())
    assert _most_at_once([(s, e) for u, _, s, e in calls if queue_of[u] == "Q"]) == 4
    for number in {n for _, n, _, _ in calls}:
        assert _most_at_once([(s, e) for _, n, s, e in calls if n == number]) == 1, number


def test_a_dead_nodes_calls_are_taken_over_by_another_once_its_lease_runs_out(tmp_path, pg):
    location, db = pg
    scenario = {"gateways": ["carrier"], "default": {"outcome": "answer", "answer_after": 2, "hangup_after": 100}}
    add(db, [(f"C{i:02}", [f"0901{i:06}"]) for i in range(12)], concurrent_call=4, max_recall_count=2)
    daemons = {}
    sims = {}
    for name in ("pbx1", "pbx2"):
        (tmp_path / name).mkdir()
        sims[name] = start_simulator(scenario)
        daemons[name] = on_postgresql(DaemonProcess(tmp_path / name, sims[name], node=name, cps=50), location)

    def open_calls(node):
        return rows(db, "SELECT COUNT(*) FROM attempt WHERE node = ? AND ended_at IS NULL", node)[0][0]

    try:
        daemons["pbx1"].start()
        wait_until(lambda: open_calls("pbx1") == 4, 30)
        daemons["pbx1"].kill9()  # the host goes down: the daemon and its switch
        sims["pbx1"].stop()
        daemons["pbx2"].start()
        wait_until(lambda: "reconciled" in daemons["pbx2"].read_log(), 30)
        gevent.sleep(6)  # more than a beat: pbx1's lease has not run out (its grace is 1230 s)
        assert open_calls("pbx1") == 4  # and the queue's four places are still pbx1's
        assert rows(db, "SELECT COUNT(*) FROM attempt WHERE node = 'pbx2'") == [(0,)]
        execute(db, "UPDATE node SET beat_at = beat_at - 10000 WHERE name = 'pbx1'")  # 20 minutes later
        wait_until(lambda: all_final(db), 60)
        assert daemons["pbx2"].terminate() == 0
    finally:
        for name in daemons:
            daemons[name].stop_quietly()
            sims[name].stop()

    lost = rows(db, "SELECT customer_id FROM attempt WHERE node = 'pbx1' AND hangup_cause = 'NODE_LOST'")
    assert len(lost) == 4
    for (customer_id,) in lost:  # each was called again, by pbx2, to its end
        assert rows(db, "SELECT state FROM customer WHERE id = ?", customer_id) == [("success",)]
        assert rows(db, "SELECT node FROM attempt WHERE customer_id = ? AND outcome = 'success'", customer_id) == [
            ("pbx2",)
        ]
    assert "node pbx1 silent for over 1230s: its 4 open calls closed as NODE_LOST" in daemons["pbx2"].read_log()


def test_a_postgresql_restart_mid_campaign_loses_no_customer_and_calls_nobody_twice(tmp_path):
    # Its own server: the crash must not cut other tests' connections; durable, as production's
    # must be (docs/scale-out.md): a claim acknowledged is a call the switch may already carry.
    cluster = PgCluster(durable=True).start()
    location = cluster.fresh()
    db = schema.open_database(location)
    scenario = {"gateways": ["carrier"], "default": {"outcome": "answer", "answer_after": 1, "hangup_after": 8}}
    nodes = []
    try:
        add(db, [(f"C{i:02}", [f"0901{i:06}"]) for i in range(40)], concurrent_call=4, max_recall_count=1)
        close(db)
        for name in ("pbx1", "pbx2"):
            (tmp_path / name).mkdir()
            sim = start_simulator(scenario)
            nodes.append((sim, on_postgresql(DaemonProcess(tmp_path / name, sim, node=name, cps=50), location)))
            nodes[-1][1].start()

        def count(sql):
            probe = schema.open_database(location)
            try:
                return rows(probe, sql)[0][0]
            finally:
                close(probe)

        wait_until(lambda: count("SELECT COUNT(*) FROM attempt WHERE state = 'done'") >= 8, 60)
        cluster.restart(down=2.0)  # every connection cut, nothing answers for two seconds
        wait_until(lambda: count("SELECT COUNT(*) FROM customer WHERE state IN ('pending', 'calling')") == 0, 120)
        for _, daemon in nodes:
            assert daemon.terminate() == 0  # both lived through it
        db = schema.open_database(location)
        states = dict(rows(db, "SELECT state, COUNT(*) FROM customer GROUP BY state"))
        assert states == {"success": 40}, states
        queue_of = dict(rows(db, "SELECT uuid, number FROM attempt"))
    finally:
        for sim, daemon in nodes:
            daemon.stop_quietly()
            sim.stop()
        close(db)
        cluster.stop()
    calls = [
        (r["uuid"], r["dial"].rsplit("/", 1)[1], r["wall_time"], r["wall_end_time"])
        for sim, _ in nodes
        for r in sim.records
        if r["event"] == "originate"
    ]
    assert {u for u, _, _, _ in calls} == set(queue_of)  # every call the switches saw is recorded
    assert _most_at_once([(s, e) for _, _, s, e in calls]) <= 4  # concurrent_call across both nodes
    for number in {n for _, n, _, _ in calls}:
        assert _most_at_once([(s, e) for _, n, s, e in calls if n == number]) == 1, number
    logs = "".join(daemon.read_log() for _, daemon in nodes)
    assert "dialing paused" in logs and "dialing resumes" in logs
