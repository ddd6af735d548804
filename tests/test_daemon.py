"""autocall-daemon as a real process: calls, recalls, stop, crashes, ESL loss, drain."""

import datetime as dt
import time
from zoneinfo import ZoneInfo

import gevent
import pytest

from daemon.store import queue_state
from daemon.store.schema import open_database
from tests.daemon_fixtures import (
    all_final,
    import_customers,
    menu_offset,
    overlapping_calls,
    query,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def customer_of(db_path):
    return dict(query(db_path, "SELECT a.uuid, c.ext_id FROM attempt a JOIN customer c ON c.id = a.customer_id"))


def test_every_customer_ends_final_with_a_complete_attempt_per_call(run):
    press_at = menu_offset() + 3.0  # well inside the menu prompt, whatever the timing jitter
    sim, daemon = run(
        {
            "default": {"outcome": "answer", "answer_after": 1, "hangup_after": "never"},
            "numbers": [
                {"number": "0901000001", "keys": [[press_at, "9"]]},  # confirms: promise to pay
                {"number": "0902000001", "outcome": "busy"},
                {"number": "0902000002", "hangup_after": 60},  # B's second number
                {"number": "0909000001", "outcome": "unallocated"},
                {"number": "0903000001", "outcome": "no_answer"},
                {"number": "0904000001", "hangup_after": 1},  # hangs up at once: short
            ],
        },
        originate_timeout=5,
    )
    import_customers(
        daemon.db_path,
        [
            ("A", ["0901000001"]),
            ("B", ["0902000001", "0902000002"]),
            ("C", ["0909000001"]),
            ("D", ["0903000001"]),
            ("E", ["0904000001"]),
        ],
        max_recall_count=1,
    )
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert daemon.terminate() == 0

    states = dict(query(daemon.db_path, "SELECT ext_id, state || ':' || COALESCE(result, '') FROM customer"))
    assert states == {"A": "success:promise_to_pay", "B": "success:", "C": "failed:", "D": "failed:", "E": "failed:"}
    attempts = query(
        daemon.db_path,
        "SELECT c.ext_id, a.number, a.hangup_cause, a.sip_status, a.outcome, a.keys, a.state,"
        " a.answered_at IS NOT NULL, a.ended_at >= a.started_at"
        " FROM attempt a JOIN customer c ON c.id = a.customer_id ORDER BY a.id",
    )
    by_customer = {}
    for row in attempts:
        by_customer.setdefault(row[0], []).append(row[1:])
    [(number, _, _, outcome_a, keys, *_)] = by_customer["A"]
    assert (number, outcome_a, keys) == ("0901000001", "success", "9")
    assert [(n, cause, outcome) for n, cause, _, outcome, *_ in by_customer["B"]] == [
        ("0902000001", "USER_BUSY", "retry"),
        ("0902000002", "NORMAL_CLEARING", "success"),
    ]
    assert [(cause, sip, outcome) for _, cause, sip, outcome, *_ in by_customer["C"]] == [
        ("UNALLOCATED_NUMBER", "404", "dead_number")
    ]
    assert [(cause, outcome) for _, cause, _, outcome, *_ in by_customer["D"]] == [("NO_ANSWER", "retry")] * 2
    assert [outcome for _, _, _, outcome, *_ in by_customer["E"]] == ["short", "short"]
    assert all(row[6] == "done" and row[8] == 1 for row in attempts)
    assert [row[7] for row in attempts if row[4] in ("success", "short")] == [1] * 4

    # FreeSWITCH's side agrees: one originate per attempt, to the number recorded.
    originates = {r["uuid"]: r for r in sim.records if r["event"] == "originate"}
    assert {u: r["dial"].rsplit("/", 1)[1] for u, r in originates.items()} == dict(
        query(daemon.db_path, "SELECT uuid, number FROM attempt")
    )
    assert all(r["variables"]["ignore_early_media"] == "true" for r in originates.values())
    assert overlapping_calls(sim.records, customer_of(daemon.db_path)) == []
    log = daemon.read_log()
    assert log.count("autocall.calls: call queue='Q'") == len(attempts)
    assert "customer='A' number='0901000001'" in log and "result=promise_to_pay" in log


def test_no_originate_after_a_stop_is_acknowledged(run):
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 1, "hangup_after": 3}})
    import_customers(daemon.db_path, [(f"C{i:03}", [f"0901{i:06}"]) for i in range(200)], concurrent_call=5)
    daemon.start()
    wait_until(lambda: len([r for r in sim.records if r["event"] == "originate"]) >= 10, 30)
    db = open_database(daemon.db_path)
    queue_state.set_running(db, "Q", False)  # what POST /queue/stop does; the 200 goes out after this commit
    stopped_at, stopped_wall = sim.clock.now(), time.time()
    gevent.sleep(1.5)
    # No claim after the stop committed...
    assert query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE started_at > ?", stopped_wall) == [(0,)]
    # ...and only claims already committed then may still reach the switch: one batch, which
    # claim_many takes in one transaction and which holds at most concurrent_call customers.
    originated = [r["time"] for r in sim.records if r["event"] == "originate"]
    originated += [channel.created for channel in sim.channels.values()]
    assert len([t for t in originated if t > stopped_at]) <= 5, "originates after the stop was committed"
    pending = query(daemon.db_path, "SELECT COUNT(*) FROM customer WHERE state = 'pending'")[0][0]
    assert pending > 150
    queue_state.set_running(db, "Q", True)
    wait_until(
        lambda: query(daemon.db_path, "SELECT COUNT(*) FROM customer WHERE state = 'pending'")[0][0] < pending, 20
    )
    db.close()


def test_an_unknown_gateway_stops_the_queue_and_says_why(run):
    sim, daemon = run({"default": {"outcome": "answer"}}, dial_string="sofia/gateway/nosuch/{number}")
    import_customers(daemon.db_path, [(f"C{i}", [f"090100000{i}"]) for i in range(5)])
    daemon.start()
    wait_until(lambda: query(daemon.db_path, "SELECT state FROM queue")[0][0] == "stopped", 20)
    [(reason,)] = query(daemon.db_path, "SELECT stop_reason FROM queue")
    assert "INVALID_GATEWAY" in reason
    gevent.sleep(0.5)
    # Only the first burst (up to concurrent_call) went out before the first answer came back.
    assert len([r for r in sim.records if r["event"] == "originate"]) <= 5
    assert query(daemon.db_path, "SELECT state, round, COUNT(*) FROM customer GROUP BY state") == [("pending", 0, 5)]
    assert "queue 'Q' stopped" in daemon.read_log()


def test_outside_the_calling_window_nobody_is_called(run):
    hour = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).hour
    closed = {"window_start": f"{(hour + 2) % 24:02}:00", "window_end": f"{(hour + 3) % 24:02}:00"}
    sim, daemon = run({"default": {"outcome": "answer"}}, **closed)
    import_customers(daemon.db_path, [("A", ["0901000001"])])
    daemon.start()
    gevent.sleep(1.5)
    assert sim.records == [] and not sim.channels
    assert query(daemon.db_path, "SELECT state FROM customer") == [("pending",)]


def test_kill_9_mid_campaign_loses_nobody_and_double_dials_nobody(run):
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 2, "hangup_after": "never"}})
    import_customers(daemon.db_path, [(f"C{i:02}", [f"0901{i:06}"]) for i in range(30)], concurrent_call=10)
    daemon.start()
    # Wait on the switch's channels: a claimed attempt row can exist before its originate arrives.
    wait_until(lambda: len(sim.channels) >= 5, 30)
    daemon.kill9()
    orphans = set(sim.channels)
    assert orphans, "calls should outlive the daemon in FreeSWITCH"
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 90)
    assert daemon.terminate() == 0
    assert query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state != 'done'") == [(0,)]
    assert query(daemon.db_path, "SELECT state, COUNT(*) FROM customer GROUP BY state") == [("success", 30)]
    assert overlapping_calls(sim.records, customer_of(daemon.db_path)) == []
    log = daemon.read_log()
    assert "re-attached call" in log
    assert "no CHANNEL_PARK" not in log  # a parked channel is known parked from its row
    assert not sim.channels


def test_losing_the_event_socket_mid_call_reconnects_and_finishes_everyone(run):
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 2, "hangup_after": "never"}})
    import_customers(daemon.db_path, [(f"C{i:02}", [f"0901{i:06}"]) for i in range(20)], concurrent_call=10)
    daemon.start()
    wait_until(lambda: len(sim.channels) >= 5, 30)
    sim.drop_connections()
    wait_until(lambda: all_final(daemon.db_path), 90)
    assert daemon.terminate() == 0
    assert query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state != 'done'") == [(0,)]
    assert query(daemon.db_path, "SELECT state, COUNT(*) FROM customer GROUP BY state") == [("success", 20)]
    assert overlapping_calls(sim.records, customer_of(daemon.db_path)) == []
    log = daemon.read_log()
    assert log.count("connected to FreeSWITCH") >= 2


def test_sigterm_drains_then_hangs_up_what_is_left_and_records_it(run):
    # Callees never hang up and the IVR outlasts the drain: the daemon must cut the calls.
    sim, daemon = run(
        {"default": {"outcome": "answer", "answer_after": 1, "hangup_after": "never"}}, time_scale=1.0, drain_timeout=1
    )
    import_customers(daemon.db_path, [(f"C{i}", [f"090100000{i}"]) for i in range(3)])
    daemon.start()
    wait_until(lambda: query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state = 'answered'")[0][0] == 3, 30)
    assert daemon.terminate(timeout=20) == 0
    assert query(daemon.db_path, "SELECT outcome, state FROM attempt") == [("interrupted", "done")] * 3
    assert query(daemon.db_path, "SELECT state, COUNT(*) FROM customer GROUP BY state") == [("pending", 3)]
    wait_until(lambda: not sim.channels, 5)
    assert "hanging up 3 calls" in daemon.read_log()


def test_sighup_applies_a_good_config_and_keeps_running_on_a_bad_one(run):
    import signal

    sim, daemon = run({"default": {"outcome": "answer"}})
    daemon.start()
    text = daemon.config.read_text()
    daemon.config.write_text(text.replace("cps = 200", "cps = 7"))
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: configuration reloaded" in daemon.read_log(), 10)
    daemon.config.write_text(text.replace("cps = 200", 'cps = "fast"'))
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration not reloaded" in daemon.read_log(), 10)
    assert "dialer.cps" in daemon.read_log()
    assert daemon.proc.poll() is None
    assert daemon.terminate() == 0
