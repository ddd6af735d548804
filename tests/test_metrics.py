"""Prometheus metrics scraped over HTTP from the real processes, held against what the simulator
and the database recorded (docs/metrics.md)."""

import collections
import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.api_fixtures import AUTH, REPO, SEED_IMPORT, ApiProcess, free_port
from tests.daemon_fixtures import all_final, import_customers, query, wait_until

pytestmark = pytest.mark.timeout(120)


def scrape(port: int) -> dict:
    """{sample name: {labels as a sorted tuple of pairs: value}} of one scrape."""
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    samples: dict = collections.defaultdict(dict)
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[s.name][tuple(sorted(s.labels.items()))] = s.value
    return samples


def with_metrics(daemon, port: int):
    daemon.config.write_text(daemon.config.read_text() + f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    return daemon


def test_originates_and_outcomes_match_the_simulator_and_the_attempts(run):
    sim, daemon = run(
        {
            "default": {"outcome": "answer", "answer_after": 1, "hangup_after": 2},
            "numbers": [
                {"number": "0902000001", "outcome": "busy"},
                {"number": "0909000001", "outcome": "unallocated"},
                {"number": "0903000001", "outcome": "no_answer"},
            ],
        },
        originate_timeout=5,
    )
    port = free_port()
    with_metrics(daemon, port)
    import_customers(
        daemon.db_path,
        [("A", ["0901000001"]), ("B", ["0902000001"]), ("C", ["0909000001"]), ("D", ["0903000001"])],
        max_recall_count=1,
    )
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    originates = [r for r in sim.records if r["event"] == "originate"]
    node = query(daemon.db_path, "SELECT DISTINCT node FROM attempt")[0][0]

    m = scrape(port)
    assert m["autocall_originates_total"] == {(("node", node),): len(originates)}
    ended = query(
        daemon.db_path,
        "SELECT hangup_cause, outcome, COUNT(*) FROM attempt WHERE outcome != 'not_dialed' GROUP BY 1, 2",
    )
    assert m["autocall_call_outcomes_total"] == {
        (("cause", cause), ("node", node), ("outcome", outcome)): count for cause, outcome, count in ended
    }
    assert sum(count for _, _, count in ended) == len(originates)
    assert m["autocall_esl_connected"] == {(("node", node),): 1.0}
    assert m["autocall_db_writes_waiting"] == {(("node", node),): 0.0}
    # No webhook configured: the events wait undispatched, none delivered, none dead.
    assert m["autocall_outbox_undispatched"][()] > 0 and m["autocall_outbox_dead"] == {(): 0.0}
    assert m["autocall_outbox_deliveries_waiting"] == {(): 0.0} and m["autocall_outbox_oldest_seconds"] == {(): 0.0}
    assert m["autocall_db_write_seconds_count"][(("node", node),)] >= 1
    # The hang-ups seen by their calls (the simulator's clock runs ahead: its lag reads 0).
    assert m["autocall_esl_event_lag_seconds_count"][(("node", node),)] == len(originates)
    assert "autocall_calls_in_progress" not in m  # no queue has calls now: none listed
    assert daemon.terminate() == 0


def test_calls_in_progress_per_queue_then_the_event_socket_down(run):
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 1, "hangup_after": "never"}}, time_scale=1.0)
    port = free_port()
    with_metrics(daemon, port)
    import_customers(daemon.db_path, [(f"P{i}", [f"09010000{i:02}"]) for i in range(5)], code="Q1", concurrent_call=2)
    import_customers(daemon.db_path, [("R0", ["0902000000"])], code="Q2")
    daemon.start()
    wait_until(lambda: len(sim.channels) == 3, 20)

    m = scrape(port)
    node = dict(next(iter(m["autocall_esl_connected"])))["node"]
    assert m["autocall_calls_in_progress"] == {
        (("node", node), ("queue", "Q1")): 2.0,
        (("node", node), ("queue", "Q2")): 1.0,
    }
    assert m["autocall_queues_running"] == {(("node", node),): 2.0}
    assert m["autocall_calling_window_open"] == {(("node", node),): 1.0}

    sim.stop()
    wait_until(lambda: scrape(port)["autocall_esl_connected"] == {(("node", node),): 0.0}, 20)
    wait_until(lambda: "autocall_calls_in_progress" not in scrape(port), 20)


def _start_daemon(tmp_path, metrics_table: str):
    config = tmp_path / "autocall.toml"
    config.write_text(f'[database]\npath = "{tmp_path / "autocall.sqlite3"}"\n[metrics]\n{metrics_table}\n')
    return subprocess.run(
        [sys.executable, "-m", "daemon.main", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "table, code, message",
    [
        ('listen = "0.0.0.0:9464"', 2, "metrics.listen: 0.0.0.0 is not a loopback address"),
        ('listen = "9464"', 2, "metrics.listen: expected host:port, got '9464'"),
        ('listen = "127.0.0.1:9464"\nallow_remote = "yes"', 2, "metrics.allow_remote: expected true or false"),
        ('listen = "127.0.0.1:9464"\nport = 9464', 2, "metrics.port: unknown key"),
        (
            'listen = "192.0.2.1:9464"\nallow_remote = true',
            2,
            "metrics.listen: 192.0.2.1 is not an address of this host",
        ),
    ],
)
def test_a_bad_metrics_value_stops_the_daemon_at_start_naming_the_key(tmp_path, table, code, message):
    done = _start_daemon(tmp_path, table)
    assert done.returncode == code
    first = done.stderr.splitlines()[0]
    assert first.startswith("autocall-daemon: ") and message in first, done.stderr  # after the file's path, if config


def test_a_metrics_port_in_use_is_a_temporary_failure(tmp_path):
    with socket_on() as port:
        done = _start_daemon(tmp_path, f'listen = "127.0.0.1:{port}"')
    assert done.returncode == 75
    assert f"metrics.listen: 127.0.0.1:{port} is already in use" in done.stderr


class socket_on:
    """A port held by a listening socket for the block."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()


def test_the_api_counts_requests_by_url_rule_method_and_status(tmp_path):
    metrics_port = free_port()
    config = tmp_path / "autocall.toml"
    config.write_text(f'[metrics]\napi_listen = "127.0.0.1:{metrics_port}"\n')
    api = ApiProcess(tmp_path, AUTOCALL_CONFIG=str(config))
    try:
        url = f"{api.url}/v2/autocall"
        assert requests.post(f"{url}/queue", json=SEED_IMPORT, headers=AUTH).status_code == 200
        for code in ("Autocall-Q1", "Autocall-Q1", "nope"):
            requests.get(f"{url}/queue/{code}", headers=AUTH)
        assert requests.get(f"{url}/queue/Autocall-Q1").status_code == 401
        # Answered by the HTTP layer before the body is read (api/http.py): not the application's.
        assert requests.post(f"{url}/queue/stop", json={"queue_code": "Autocall-Q1"}).status_code == 401
        assert requests.get(f"{api.url}/nowhere", headers=AUTH).status_code == 404
        assert requests.get(f"{api.url}/metrics", headers=AUTH).status_code == 404  # not on the API's port

        m = scrape(metrics_port)
        expected = {
            ("/v2/autocall/queue", "POST", "200"): 1.0,
            ("/v2/autocall/queue/<path:code>", "GET", "200"): 2.0,
            ("/v2/autocall/queue/<path:code>", "GET", "404"): 1.0,
            ("/v2/autocall/queue/<path:code>", "GET", "401"): 1.0,
            ("unmatched", "GET", "404"): 2.0,
        }
        as_labels = {
            (("endpoint", e), ("method", method), ("status", status)): n for (e, method, status), n in expected.items()
        }
        assert m["autocall_api_requests_total"] == as_labels
        assert m["autocall_api_request_seconds_count"] == as_labels
    finally:
        api.stop()


def test_a_non_loopback_api_metrics_address_stops_the_api(tmp_path):
    config = tmp_path / "autocall.toml"
    config.write_text('[metrics]\napi_listen = "0.0.0.0:9465"\n')
    with pytest.raises(RuntimeError, match="metrics.api_listen: 0.0.0.0 is not a loopback address"):
        ApiProcess(tmp_path, AUTOCALL_CONFIG=str(config))
