"""The API's database work off the gevent hub (api/db.py), against a real `autocall-api` and a
real SQLite file: a foreign write lock, a full disk, a long export, a big import."""

import contextlib
import csv
import json
import os
import sqlite3
import subprocess
import time

import gevent
import peewee as pw
import pytest
import requests

from api.db import DatabaseUnavailable, Workers
from daemon.store.schema import database, open_database
from tests.api_fixtures import AUTH, ApiProcess, customer, seed_import

LOCK_TIMEOUT = 1.0
CALLS = 50_000  # rows of the long export (the 500,000 delayed a stop by 18 s)


@pytest.fixture
def api(tmp_path):
    servers = []

    def start(**api_settings):
        db = api_settings.pop("db", None)
        env = {"AUTOCALL_DB": str(db)} if db else {}
        servers.append(ApiProcess(tmp_path, api_settings={"lock_timeout": LOCK_TIMEOUT, **api_settings}, **env))
        # Listening comes before the database is opened: wait for it, so no lock meets the migration.
        assert requests.get(servers[-1].url + "/healthz", timeout=20).status_code == 200
        return servers[-1]

    yield start
    for server in servers:
        log = server.stop()
        assert "Traceback" not in log, log


def timed(method, url, **kwargs) -> tuple[float, requests.Response]:
    start = time.monotonic()
    r = requests.request(method, url, headers=AUTH, timeout=60, **kwargs)
    return time.monotonic() - start, r


def command(server, name, code="Autocall-Q1"):
    return timed("POST", f"{server.url}/v2/autocall/queue/{name}", json={"queue_code": code})


@contextlib.contextmanager
def foreign_write_lock(path):
    """An operator's `sqlite3` shell left in BEGIN IMMEDIATE."""
    shell = sqlite3.connect(path, isolation_level=None)
    shell.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        shell.rollback()
        shell.close()


def assert_unavailable(r: requests.Response, words: str):
    assert r.status_code == 503, r.text
    body = r.json()
    assert (body["code"], body["content"]) == (503, "database unavailable")
    assert words in body["errors"][0]["reason"], body
    assert body["errors"][0]["reason"].endswith(
        "the request was not finished: send it again (what it wrote before is kept)"
    )
    assert int(r.headers["Retry-After"]) >= 1


# --- a foreign write lock ---


def test_with_a_foreign_write_lock_reads_answer_at_once_and_writes_get_503_within_the_budget(api):
    server = api()
    assert requests.post(f"{server.url}/v2/autocall/queue", json=seed_import(), headers=AUTH, timeout=10).ok
    with foreign_write_lock(server.db_path):
        writes = [gevent.spawn(command, server, "stop") for _ in range(3)]  # one waits for the lock, two behind it
        gevent.sleep(0.1)
        for url in ("/healthz", "/v2/autocall/queue/Autocall-Q1", "/v2/autocall/queue/Autocall-Q1/customers"):
            elapsed, r = timed("GET", server.url + url)
            assert r.status_code == 200 and elapsed < 0.5, (url, elapsed)
        gevent.joinall(writes, raise_error=True)
        for elapsed, r in (w.value for w in writes):
            assert_unavailable(r, "write lock")
            assert elapsed < LOCK_TIMEOUT + 0.5  # each within its own budget, queued or not
    elapsed, r = command(server, "stop")
    assert r.status_code == 200 and elapsed < 0.5
    assert requests.get(f"{server.url}/v2/autocall/queue/Autocall-Q1", headers=AUTH, timeout=5).json()["data"][
        "state"
    ] == ("stopped")


def test_an_import_refused_for_the_lock_writes_nothing_and_a_retry_imports(api):
    server = api()
    body = seed_import()
    body["customers"] = [customer(f"C{i}") for i in range(50)]
    with foreign_write_lock(server.db_path):
        _, r = timed("POST", f"{server.url}/v2/autocall/queue", json=body)
        assert_unavailable(r, "write lock")
    assert sqlite3.connect(server.db_path).execute("SELECT COUNT(*) FROM queue").fetchone() == (0,)
    _, r = timed("POST", f"{server.url}/v2/autocall/queue", json=body)
    assert r.status_code == 200 and len(r.json()["data"]["success"]) == 50


# --- a big import and a long export hold up nobody ---


def test_a_stop_sent_during_a_big_import_is_written_between_two_chunks(api):
    server = api(import_chunk=500)
    body = seed_import()
    body["customers"] = [customer(f"C{i:05}") for i in range(40_000)]
    done = []

    def big_import():
        done.append(("import", timed("POST", f"{server.url}/v2/autocall/queue", json=body)[1]))

    importing = gevent.spawn(big_import)
    db = sqlite3.connect(server.db_path)
    while not db.execute("SELECT COUNT(*) FROM customer").fetchone()[0]:  # the first chunk is in
        assert not importing.dead
        gevent.sleep(0.01)
    done.append(("stop", command(server, "stop")[1]))
    importing.join()
    assert [(name, r.status_code) for name, r in done] == [("stop", 200), ("import", 200)]
    assert len(done[1][1].json()["data"]["success"]) == 40_000


def test_a_stop_and_a_dnc_sent_while_a_big_import_is_checked_are_answered_at_once(api):
    # The import's body takes a second or more to check on the compute thread; a small body is
    # checked on the hub, so the stop and the DNC do not queue behind it.
    server = api()
    assert requests.post(f"{server.url}/v2/autocall/queue", json=seed_import(), headers=AUTH, timeout=30).ok
    body = seed_import()
    body["queue_code"] = "BIG"
    body["customers"] = [customer(f"C{i:06}") for i in range(120_000)]
    data = json.dumps(body).encode()
    importing = gevent.spawn(timed, "POST", f"{server.url}/v2/autocall/queue", data=data)
    gevent.sleep(0.3)  # the 30 MB body is sent and read: its check has begun
    stop_took, stopped = command(server, "stop")
    dnc_took, dnc = timed(
        "POST", f"{server.url}/v2/autocall/queue/dnc", json={"queue_code": "Autocall-Q1", "customers": [{"id": "x"}]}
    )
    assert not importing.dead, "the import was over before the stop was sent: nothing was measured"
    assert (stopped.status_code, dnc.status_code) == (200, 200)
    assert stop_took < 0.5 and dnc_took < 0.5, (stop_took, dnc_took)
    _, imported = importing.get()
    assert len(imported.json()["data"]["success"]) == 120_000


def add_calls(path, n_calls: int, customers: int = 1000):
    """`n_calls` finished calls spread over the queue's first customers, written as the dialer would."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    (queue_id,) = db.execute("SELECT id FROM queue WHERE code = 'Autocall-Q1'").fetchone()
    ids = [row[0] for row in db.execute("SELECT id FROM customer WHERE queue_id = ?", (queue_id,))][:customers]
    db.executemany(
        "INSERT INTO attempt (customer_id, queue_id, round, number, uuid, job_uuid, state, started_at,"
        " answered_at, ended_at, hangup_cause, talk_seconds, keys, outcome)"
        " VALUES (?, ?, 0, '0982596021', ?, ?, 'done', ?, ?, ?, 'NORMAL_CLEARING', 12.5, '9', 'success')",
        (
            (
                ids[i % len(ids)],
                queue_id,
                f"call-{i}",
                f"job-{i}",
                1.6e9 + i,
                1.6e9 + i + 3,
                1.6e9 + i + 15,
            )
            for i in range(n_calls)
        ),
    )
    db.execute("COMMIT")
    db.close()


def test_a_long_attempts_export_does_not_delay_a_stop(api, tmp_path):
    server = api()
    body = seed_import()
    body["customers"] = [customer(f"C{i}") for i in range(1000)]
    assert requests.post(f"{server.url}/v2/autocall/queue", json=body, headers=AUTH, timeout=30).ok
    add_calls(server.db_path, CALLS)
    # The export is read as fast as it comes, by a process of its own (a greenlet here would
    # read it all before the stop is sent).
    out = tmp_path / "attempts.csv"
    url = f"{server.url}/v2/autocall/queue/Autocall-Q1/attempts.csv"
    export = subprocess.Popen(["curl", "-sf", "-o", str(out), "-H", f"Authorization: {AUTH['Authorization']}", url])
    while not out.exists() or out.stat().st_size < 100_000:
        assert export.poll() is None
        time.sleep(0.005)
    elapsed, r = command(server, "stop")
    assert export.poll() is None, "the stop was answered only once the export had ended"
    assert r.status_code == 200 and elapsed < 0.5, elapsed
    assert export.wait(timeout=120) == 0
    rows = list(csv.reader(out.open()))
    assert len(rows) == 1 + CALLS and rows[0][0] == "customer_id"


# --- a full disk ---


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (needs root, as CI is); the test fills it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(directory):
    path = directory / "filler"
    with open(path, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    return path


def test_a_full_disk_gets_503_with_its_reason_and_the_api_recovers_when_space_returns(api, small_disk):
    server = api(db=small_disk / "autocall.sqlite3")
    assert requests.post(f"{server.url}/v2/autocall/queue", json=seed_import(), headers=AUTH, timeout=10).ok
    body = seed_import()
    body["customers"] = [customer(f"C{i}") for i in range(3000)]
    filler = fill(small_disk)
    _, r = timed("POST", f"{server.url}/v2/autocall/queue", json=body)
    assert_unavailable(r, "disk holding the database is full")
    assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
    os.unlink(filler)
    _, r = timed("POST", f"{server.url}/v2/autocall/queue", json=body)
    assert r.status_code == 200 and len(r.json()["data"]["success"]) == 3000


# --- the workers themselves ---


def test_fresh_threads_connect_at_once_without_hanging_and_never_share_a_connection(tmp_path):
    # sqlite3's own check, on: a connection used on any thread but its own raises. Every
    # thread's first job connects at once (with one shared peewee database, a worker blocked
    # on peewee's lock, a gevent lock, and never woke).
    open_database(tmp_path / "a.sqlite3").close()
    workers = Workers(lambda: database(tmp_path / "a.sqlite3", one_thread=True), readers=4)
    count = "SELECT COUNT(*) FROM queue"
    try:
        for _ in range(20):
            jobs = [gevent.spawn(workers.read, lambda db: db.execute_sql(count).fetchone()) for _ in range(8)]
            jobs += [gevent.spawn(workers.write, lambda db: db.execute_sql("UPDATE queue SET state = state"))]
            assert len(gevent.joinall(jobs, timeout=10, raise_error=True)) == len(jobs)
    finally:
        workers.close()


def test_a_read_only_database_is_unavailable_with_its_reason(tmp_path):
    path = tmp_path / "a.sqlite3"
    open_database(path).close()
    workers = Workers(lambda: pw.SqliteDatabase(path.resolve().as_uri() + "?mode=ro", uri=True))
    try:
        assert workers.read(lambda db: db.execute_sql("SELECT COUNT(*) FROM queue").fetchone()) == (0,)
        with pytest.raises(DatabaseUnavailable, match="read-only") as caught:
            workers.write(lambda db: db.execute_sql("DELETE FROM queue"))
        assert caught.value.retry_after >= 1
    finally:
        workers.close()
