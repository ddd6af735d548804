"""`autocall-api` as real processes over real HTTP."""

import json
import sqlite3

import gevent
import pytest
import requests

from tests.api_fixtures import AUTH, ApiProcess, customer, seed_import

WRITERS = 20
BATCHES = 5
PER_BATCH = 40


@pytest.fixture
def servers(tmp_path):
    # Two API processes on one SQLite file: writers contend across processes, as the
    # API and the dialer do in production.
    first = ApiProcess(tmp_path)
    second = ApiProcess(tmp_path, AUTOCALL_DB=str(first.db_path))
    yield first, second
    logs = first.stop() + second.stop()
    assert "database is locked" not in logs
    assert "Traceback" not in logs


def test_the_seed_curl_example_answers_as_the_seed_shows(servers):
    server, _ = servers
    r = requests.post(
        f"{server.url}/v2/autocall/queue",
        headers={**AUTH, "Content-Type": "application/json"},
        data=json.dumps(seed_import()),
        timeout=10,
    )
    assert (r.status_code, r.json()) == (
        200,
        {"code": 200, "content": "successfully", "data": {"fail": [], "success": ["TEL4VN_Test"]}},
    )
    assert r.headers["Content-Type"] == "application/json"
    r = requests.post(f"{server.url}/v2/autocall/queue/stop", headers=AUTH, json={"queue_code": "nope"}, timeout=10)
    assert (r.status_code, r.json()) == (404, {"code": 404, "content": "queue not found"})


def test_twenty_concurrent_writers_lose_no_customer(servers):
    session = requests.Session()
    failures = []

    def writer(n):
        url = servers[n % 2].url + "/v2/autocall"
        for batch in range(BATCHES):
            body = seed_import()
            body["customers"] = [customer(f"W{n:02}-{batch}-{i:02}") for i in range(PER_BATCH)]
            r = session.post(f"{url}/queue", json=body, headers=AUTH, timeout=60)
            if r.status_code != 200 or r.json()["data"]["fail"]:
                failures.append((n, r.status_code, r.text[:200]))
            # Other commands interleave with the imports on the same queue.
            extra = [
                ("/queue/dnc", {"queue_code": "Autocall-Q1", "customers": [{"id": f"DNC-{n}-{batch}"}]}),
                ("/queue/stop", {"queue_code": "Autocall-Q1"}),
                ("/queue/start", {"queue_code": "Autocall-Q1"}),
            ][batch % 3]
            r = session.post(url + extra[0], json=extra[1], headers=AUTH, timeout=60)
            if r.status_code != 200:
                failures.append((n, r.status_code, r.text[:200]))

    gevent.joinall([gevent.spawn(writer, n) for n in range(WRITERS)], raise_error=True, timeout=120)
    assert failures == []
    db = sqlite3.connect(servers[0].db_path)
    ids = {row[0] for row in db.execute("SELECT ext_id FROM customer")}
    expected = {f"W{n:02}-{b}-{i:02}" for n in range(WRITERS) for b in range(BATCHES) for i in range(PER_BATCH)}
    assert ids == expected
    assert db.execute("SELECT COUNT(*) FROM queue").fetchone() == (1,)
    assert db.execute("SELECT COUNT(*) FROM dnc").fetchone()[0] == sum(
        1 for n in range(WRITERS) for b in range(BATCHES) if b % 3 == 0
    )


def test_sigterm_stops_the_server_cleanly(tmp_path):
    server = ApiProcess(tmp_path)
    assert requests.get(server.url + "/healthz", timeout=5).json() == {"code": 200, "content": "ok"}
    log = server.stop()
    assert server.proc.returncode == 0
    assert "stopping" in log
    assert "test-token" not in log  # tokens are never logged
