"""autocall-notifier as a real process: the dialer's results reach a real HTTP receiver (its own
process) signed, at least once, whatever the receiver does (errors, cut connections, a slow
answer, down) and when the notifier itself is killed mid-delivery."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from daemon import webhooks
from daemon.config import QueueDefaults
from daemon.store import customers, records, schema, url
from daemon.store.schema import execute
from tests.daemon_fixtures import REPO, all_final, import_customers, query, wait_until
from tests.pg_fixtures import PgCluster, close

pytestmark = pytest.mark.timeout(180)

SECRET = "s3cret-for-tests"
BUSY = {"default": {"outcome": "busy"}}


class Receiver:
    """tests/webhook_receiver.py as a process; `mode(...)` changes how it answers."""

    def __init__(self, tmp_path):
        self.record, self.mode_file, self.port = tmp_path / "received.jsonl", tmp_path / "mode", 0
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "webhook_receiver.py"), "--record", str(self.record)]
            + ["--mode", str(self.mode_file), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self.proc.stdout.readline().split()[1])
        return self

    def mode(self, mode: str):
        self.mode_file.write_text(mode)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def requests(self) -> list[dict]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


class NotifierProcess:
    def __init__(self, tmp_path, config, **env):
        self.config, self.log_path, self.proc, self.env = config, tmp_path / "notifier.log", None, env

    def start(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.notifier", "--config", str(self.config)],
            cwd=REPO,
            env={**os.environ, **self.env, "AUTOCALL_WEBHOOK_SECRET": SECRET},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@pytest.fixture
def receiver(tmp_path):
    r = Receiver(tmp_path)
    r.mode("ok")
    yield r.start()
    r.kill()


def add_queue(db, people):
    fields = {"contract_number": "HD123456", "upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"}
    request = records.ImportRequest("Q", "IVR-1", {}, [records.NewCustomer(x, n, fields) for x, n in people])
    customers.import_customers(db, request, QueueDefaults())


def _with_webhook(config, port, **notifier):
    settings = {"backoff_first": 0.2, "backoff_max": 0.5, "timeout": 2, **notifier}
    config.write_text(
        config.read_text()
        + f'[[webhooks]]\nname = "crm"\nurl = "http://127.0.0.1:{port}/hook"\nsecret_env = "AUTOCALL_WEBHOOK_SECRET"\n'
        + "[notifier]\n"
        + "".join(f"{k} = {v}\n" for k, v in settings.items())
    )


def _answered(receiver) -> list[dict]:
    """The requests the receiver answered 2xx, each checked for its signature."""
    got = []
    for r in receiver.requests():
        signature = r["headers"][webhooks.SIGNATURE_HEADER]
        assert webhooks.verify(SECRET.encode(), signature, r["body"].encode(), now=time.time(), tolerance=600)
        if r["mode"] in ("ok", "slow"):
            got.append(r)
    return got


def _settled(db_path) -> bool:
    waiting = query(db_path, "SELECT COUNT(*) FROM delivery WHERE state = 'pending'")[0][0]
    undispatched = query(db_path, "SELECT COUNT(*) FROM outbox WHERE dispatched_at IS NULL")[0][0]
    return all_final(db_path) and waiting == 0 and undispatched == 0


def test_every_result_reaches_the_receiver_through_errors_a_killed_notifier_and_a_receiver_down(
    run, receiver, tmp_path
):
    sim, daemon = run(BUSY)
    _with_webhook(daemon.config, receiver.port)
    import_customers(daemon.db_path, [(f"C{i:02d}", [f"09010000{i:02d}"]) for i in range(12)], max_recall_count=1)
    receiver.mode("500")
    daemon.start()
    notifier = NotifierProcess(tmp_path, daemon.config).start()
    try:
        wait_until(lambda: len(receiver.requests()) >= 3, 30)  # refused with 500: kept and retried
        receiver.mode("close")
        wait_until(lambda: sum(r["mode"] == "close" for r in receiver.requests()) >= 2, 30)
        receiver.mode("half")
        wait_until(lambda: sum(r["mode"] == "half" for r in receiver.requests()) >= 2, 30)
        receiver.mode("garbage")
        wait_until(lambda: sum(r["mode"] == "garbage" for r in receiver.requests()) >= 2, 30)
        receiver.mode("slow")
        wait_until(lambda: any(r["mode"] == "slow" for r in receiver.requests()), 30)
        notifier.kill9()  # a POST in flight: its delivery comes back when its lease ends
        receiver.kill()  # and the receiver goes down while no notifier runs
        failing = notifier.log_path.read_text().count("failing:")
        notifier.start()
        wait_until(lambda: notifier.log_path.read_text().count("failing:") > failing, 30)  # refused: down
        receiver.mode("ok")
        receiver.start()  # the same port
        wait_until(lambda: _settled(daemon.db_path), 120, interval=0.2)
    finally:
        notifier.stop()
        daemon.terminate()
    got = _answered(receiver)
    by_id: dict[str, set] = {}
    for r in got:
        by_id.setdefault(r["headers"]["X-Autocall-Event"], set()).add(r["body"])
    assert all(len(bodies) == 1 for bodies in by_id.values())  # a duplicate is the same event, byte for byte
    bodies = [json.loads(next(iter(b))) for b in by_id.values()]
    finished = {b["customer"]["id"]: b["customer"]["state"] for b in bodies if b["type"] == "customer.finished"}
    assert finished == dict(query(daemon.db_path, "SELECT ext_id, state FROM customer"))
    assert set(finished.values()) == {"failed"}
    attempts = {b["attempt"]["number"] for b in bodies if b["type"] == "attempt.finished"}
    assert (
        sum(b["type"] == "attempt.finished" for b in bodies)
        == query(daemon.db_path, "SELECT COUNT(*) FROM attempt")[0][0]
    )
    assert attempts == {n for (n,) in query(daemon.db_path, "SELECT number FROM attempt")}
    assert [b["type"] for b in bodies].count("queue.finished") == 1
    log = notifier.log_path.read_text()
    assert "endpoint crm (http://127.0.0.1:" in log and "failing" in log


def test_a_delivery_that_keeps_failing_dies_after_its_retry_window_and_retry_sends_it_again(run, receiver, tmp_path):
    sim, daemon = run(BUSY)
    _with_webhook(daemon.config, receiver.port, retry_for=1.5)
    import_customers(daemon.db_path, [("A", ["0901000001"])], max_recall_count=0)
    receiver.mode("500")
    daemon.start()
    notifier = NotifierProcess(tmp_path, daemon.config).start()
    try:
        wait_until(lambda: query(daemon.db_path, "SELECT COUNT(*) FROM delivery WHERE state = 'dead'")[0][0] >= 3, 30)
        status = subprocess.run(
            [sys.executable, "-m", "daemon.cli", "status", "--config", str(daemon.config)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert "dead" in status.stdout and "autocall webhooks list --state dead" in status.stdout
        receiver.mode("ok")
        cli = [sys.executable, "-m", "daemon.cli", "webhooks"]
        retried = subprocess.run(
            cli + ["retry", "--dead", "--config", str(daemon.config)], cwd=REPO, capture_output=True, text=True
        )
        assert retried.returncode == 0 and "deliveries due again now" in retried.stdout
        wait_until(lambda: _settled(daemon.db_path), 30, interval=0.2)
        listed = subprocess.run(
            cli + ["list", "--config", str(daemon.config)], cwd=REPO, capture_output=True, text=True
        )
        assert "0 waiting, 0 dead" in listed.stdout
    finally:
        notifier.stop()
        daemon.terminate()
    assert {json.loads(r["body"])["type"] for r in _answered(receiver)} >= {"customer.finished", "attempt.finished"}


def test_a_webhook_whose_secret_is_not_in_the_environment_stops_the_notifier_at_start(tmp_path):
    config = tmp_path / "autocall.toml"
    config.write_text(
        f'[database]\npath = "{tmp_path / "a.sqlite3"}"\n'
        '[[webhooks]]\nurl = "https://crm.example/hook"\nsecret_env = "AUTOCALL_NO_SUCH_SECRET"\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "daemon.notifier", "--config", str(config)], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "secret_env AUTOCALL_NO_SUCH_SECRET is not set" in out.stderr


def test_the_notifier_delivers_again_as_soon_as_a_restarted_postgresql_is_back(receiver, tmp_path):
    # Its own server: the crash must not cut other tests' connections. Durable, or the crash
    # may take the customers and A's event with it (a commit the server had not flushed).
    cluster = PgCluster(durable=True).start()
    location = cluster.fresh()
    db = schema.open_database(location)
    config = tmp_path / "autocall.toml"
    config.write_text("")
    _with_webhook(config, receiver.port)
    notifier = NotifierProcess(
        tmp_path, config, AUTOCALL_DB=location.dsn, **{url.PASSWORD_ENV: location.password}
    ).start()

    def finish(ext_id):  # an operator's UPDATE writes the event too (an outbox trigger)
        execute(db, "UPDATE customer SET state = 'failed' WHERE ext_id = ?", (ext_id,))

    def finished() -> list[str]:
        bodies = [json.loads(r["body"]) for r in _answered(receiver)]
        return [b["customer"]["id"] for b in bodies if b["type"] == "customer.finished"]

    try:
        add_queue(db, [("A", ["0901000001"]), ("B", ["0901000002"])])
        finish("A")
        wait_until(lambda: "A" in finished(), 30)
        close(db)
        cluster.restart()  # the notifier's connection cut
        db = schema.open_database(location)
        finish("B")
        began = time.monotonic()
        wait_until(lambda: "B" in finished(), 30)
        assert time.monotonic() - began < 5  # a new connection at once, not the dead one again
    finally:
        notifier.stop()
        close(db)
        cluster.stop()
    # At least once: the crash may come between A's POST and the commit of its "delivered".
    assert set(finished()) == {"A", "B"}
    assert notifier.log_path.read_text().count("database unavailable") <= 2  # not a line every turn
