"""Templates that change under running queues never fail customers in bulk (issue 11, item 2).

The daemon as a real process against the simulator, the real API app on the same SQLite file
and the same template folder: a re-import switching the queue's template, an operator's valid
edit that speaks a field the customers lack, and a template broken on disk when the daemon starts.
"""

import dataclasses
import json
import shutil

import pytest

from api.app import create_app
from tests.api_fixtures import REPO, customer, make_config, post
from tests.daemon_fixtures import all_final, import_customers, query, wait_until

pytestmark = pytest.mark.timeout(120)

SOUNDS = REPO / "ivr_templates" / "sounds"
CALLEE = {"default": {"outcome": "answer", "answer_after": 1, "hangup_after": 30}}  # 30 s: a success
OVERDUE = {"dpd": 45, "number_of_ovd_inst": 3, "total_ovd_amount": 1015000}
DPD_STEP = '[[step]]\nid = "overdue"\nplay = [{ number = "dpd" }]\n\n[[step]]\nid = "info"'


def _customers(n):
    return [(f"C{i:02}", [f"09010000{i:02}"]) for i in range(n)]


def _originates(sim) -> int:
    return len([r for r in sim.records if r["event"] == "originate"])


def _queue(db_path):
    [(state, reason)] = query(db_path, "SELECT state, stop_reason FROM queue WHERE state != 'deleted'")
    return state, reason


def _settled(db_path) -> bool:
    return query(db_path, "SELECT COUNT(*) FROM customer WHERE state = 'calling'") == [(0,)]


def _pending_without(db_path, field) -> int:
    rows = query(db_path, "SELECT fields FROM customer WHERE state = 'pending'")
    return len([1 for (fields,) in rows if field not in json.loads(fields)])


@pytest.fixture
def templates(tmp_path):
    path = tmp_path / "templates"
    path.mkdir()
    for name in ("IVR-1", "IVR-OVERDUE"):
        shutil.copy(REPO / "ivr_templates" / f"{name}.toml", path)
    return path


def _use(daemon, templates):
    """The daemon reads its templates from `templates` (the API below does too)."""
    with open(daemon.config, "a") as fh:
        fh.write(f'[templates]\ndir = "{templates}"\nsounds = "{SOUNDS}"\n')


def _api(tmp_path, templates):
    """The real API app on the daemon's database (tmp_path/autocall.sqlite3) and templates."""
    config = make_config(tmp_path)
    config = dataclasses.replace(config, templates=dataclasses.replace(config.templates, dir=templates, sounds=SOUNDS))
    return create_app(config).test_client()


def test_a_reimport_switching_the_template_stops_the_queue_instead_of_failing_the_others(run, tmp_path, templates):
    sim, daemon = run(CALLEE)
    _use(daemon, templates)
    import_customers(daemon.db_path, _customers(30), concurrent_call=2, min_recall_duration=0)
    daemon.start()
    wait_until(lambda: _originates(sim) >= 2, 20)
    api = _api(tmp_path, templates)
    one = customer("C29", "0901000029", **OVERDUE)  # what IVR-OVERDUE says, for one customer only
    reply = post(api, "/queue", {"queue_code": "Q", "template": "IVR-OVERDUE", "customers": [one]}).get_json()
    assert reply["data"] == {"fail": [], "success": ["C29"]}

    wait_until(lambda: _queue(daemon.db_path)[0] == "stopped", 20)
    wait_until(lambda: _settled(daemon.db_path), 20)
    states = dict(query(daemon.db_path, "SELECT state, COUNT(*) FROM customer GROUP BY state"))
    assert "failed" not in states, states  # nobody failed: they wait
    _, reason = _queue(daemon.db_path)
    lacking = _pending_without(daemon.db_path, "dpd")
    assert lacking >= 20
    assert reason.startswith(f"template IVR-OVERDUE cannot speak to {lacking} of ")
    assert f"'dpd' missing for {lacking}" in reason
    assert query(daemon.db_path, "SELECT COUNT(*) FROM customer WHERE last_cause LIKE 'TEMPLATE%'")[0][0] <= 2
    read = api.get("/v2/autocall/queue/Q", headers={"Authorization": "Bearer test-token-0123456789abcdef"})
    assert read.get_json()["data"]["stop_reason"] == reason

    # The fix: the queue's template back to IVR-1, and a start: everyone is called.
    reply = post(api, "/queue", {"queue_code": "Q", "template": "IVR-1", "customers": [one]}).get_json()
    assert reply["data"]["success"] == ["C29"]
    assert post(api, "/queue/start", {"queue_code": "Q"}).status_code == 200
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert query(daemon.db_path, "SELECT state, COUNT(*) FROM customer GROUP BY state") == [("success", 30)]


def test_an_edit_that_speaks_a_field_the_customers_lack_stops_the_queue_and_a_fix_resumes_it(run, tmp_path, templates):
    sim, daemon = run(CALLEE)
    _use(daemon, templates)
    import_customers(daemon.db_path, _customers(30), concurrent_call=2, min_recall_duration=0)
    daemon.start()
    wait_until(lambda: _originates(sim) >= 2, 20)
    path = templates / "IVR-1.toml"
    good = path.read_text(encoding="utf-8")
    edited = good.replace('[[step]]\nid = "info"', DPD_STEP, 1)
    assert edited != good
    path.write_text(edited, encoding="utf-8")  # a valid template: `autocall templates check` passes it

    wait_until(lambda: _queue(daemon.db_path)[0] == "stopped", 20)
    wait_until(lambda: _settled(daemon.db_path), 20)
    states = dict(query(daemon.db_path, "SELECT state, COUNT(*) FROM customer GROUP BY state"))
    assert "failed" not in states, states
    _, reason = _queue(daemon.db_path)
    lacking = _pending_without(daemon.db_path, "dpd")
    assert lacking == states["pending"] >= 10  # the edit is taken once the file was still for 2 s
    assert reason.startswith(f"template IVR-1 cannot speak to {lacking} of {lacking} pending customers")
    assert f"'dpd' missing for {lacking}" in reason

    path.write_text(good, encoding="utf-8")
    assert post(_api(tmp_path, templates), "/queue/start", {"queue_code": "Q"}).status_code == 200
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert query(daemon.db_path, "SELECT state, COUNT(*) FROM customer GROUP BY state") == [("success", 30)]


def test_a_template_broken_on_disk_at_start_holds_its_queue_back_says_why_and_refuses_imports(run, tmp_path, templates):
    sim, daemon = run(CALLEE)
    _use(daemon, templates)
    import_customers(daemon.db_path, _customers(4), min_recall_duration=0)
    path = templates / "IVR-1.toml"
    good = path.read_text(encoding="utf-8")
    path.write_text(good.replace('no_key = "goto goodbye"', 'no_key = "goto nowhere"'), encoding="utf-8")
    daemon.start()

    api = _api(tmp_path, templates)
    auth = {"Authorization": "Bearer test-token-0123456789abcdef"}
    wait_until(lambda: _queue(daemon.db_path)[1] is not None, 20)
    data = api.get("/v2/autocall/queue/Q", headers=auth).get_json()["data"]
    assert data["state"] == "running" and data["counts"]["pending"] == 4
    assert data["stop_reason"].startswith("waiting: template IVR-1 cannot be used")
    assert "'nowhere'" in data["stop_reason"]
    refused = post(api, "/queue", {"queue_code": "Q", "template": "IVR-1", "customers": [customer("NEW")]})
    assert refused.status_code == 400 and "'nowhere'" in refused.get_json()["errors"][0]["reason"]
    assert _originates(sim) == 0

    path.write_text(good, encoding="utf-8")  # fixed: the queue goes on by itself
    wait_until(lambda: all_final(daemon.db_path), 30)
    assert _queue(daemon.db_path) == ("running", None)
    assert query(daemon.db_path, "SELECT state, COUNT(*) FROM customer GROUP BY state") == [("success", 4)]
    assert "queue 'Q' waiting: template IVR-1 cannot be used" in daemon.read_log()
