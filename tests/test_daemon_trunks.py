"""Trunks, caller ids, blackout days and recalls by cause with autocall-daemon as a real process
against the simulator: a gateway that answers 503, one the switch does not know, per-trunk caps
counted from the simulator's own channels."""

import datetime as dt
import io
import json
import signal
from zoneinfo import ZoneInfo

import gevent
import pytest

from daemon import cli
from daemon.store import queue_state
from daemon.store.schema import open_database
from tests.daemon_fixtures import all_final, import_customers, menu_offset, query, wait_until

pytestmark = pytest.mark.timeout(120)

ANSWER = {"outcome": "answer", "answer_after": 1, "hangup_after": 20}
VIETTEL = [f"098{i:07d}" for i in range(1, 9)]


def trunk(name, gateway, **settings):
    settings = {"name": name, "dial_string": f"sofia/gateway/{gateway}/{{number}}", **settings}
    return "[[trunks]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())


def status(db_path) -> str:
    """What `autocall status` prints (its dialer line says how the trunks are)."""
    out = io.StringIO()
    args = cli.build_parser().parse_args(["status", "--db", str(db_path)])
    args.run(args, out, io.StringIO())
    return out.getvalue()


def originates(sim):
    """(uuid, gateway, outcome) of every originate the simulator saw, in order."""
    return [(r["uuid"], r["dial"].split("/")[2], r["outcome"]) for r in sim.records if r["event"] == "originate"]


def test_a_trunk_answering_503_fails_over_on_the_same_attempt_and_is_marked_down(run):
    sim, daemon = run(
        {
            "gateways": {"viettel": {"proxy": "viettel-sbc"}, "backup": {}},
            "default": ANSWER,
            "numbers": [{"glob": "*@viettel-sbc", "outcome": "unreachable"}],  # 503: NORMAL_TEMPORARY_FAILURE
        },
        cps=5,
        trunk_down_after=2,
        trunk_down_for=600,
        extra_toml=trunk("viettel", "viettel", carriers=["Viettel"]) + trunk("backup", "backup"),
    )
    import_customers(daemon.db_path, [(f"C{i}", [n]) for i, n in enumerate(VIETTEL)], concurrent_call=1)
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    wait_until(lambda: "trunks: viettel 0/50 down for" in status(daemon.db_path), 10)
    line = next(x for x in status(daemon.db_path).splitlines() if x.startswith("dialer:"))
    assert "(2 failures in a row, NORMAL_TEMPORARY_FAILURE), backup " in line, line  # the file lags 2 s
    assert daemon.terminate() == 0
    assert query(daemon.db_path, "SELECT DISTINCT state FROM customer") == [("success",)]
    # One attempt per customer, carried by the backup trunk, with the uuid each leg shared.
    assert query(daemon.db_path, "SELECT COUNT(*), MIN(trunk), MAX(trunk), MIN(outcome) FROM attempt") == [
        (8, "backup", "backup", "success")
    ]
    legs = originates(sim)
    via_viettel = [uuid for uuid, gateway, _ in legs if gateway == "viettel"]
    assert len(via_viettel) == 2  # then it is down: the other six went to backup at once
    assert all((uuid, "backup", "answer") in legs for uuid in via_viettel)
    log = daemon.read_log()
    assert "trunk viettel marked down for 600s: 2 trunk-level failures in a row (last NORMAL_TEMPORARY_FAILURE)" in log
    assert "the same attempt goes out on trunk backup" in log


def test_a_stop_acknowledged_while_the_first_trunk_rings_keeps_the_failover_leg_from_going_out(run):
    sim, daemon = run(
        {
            "gateways": {"viettel": {"proxy": "viettel-sbc"}, "backup": {}},
            "default": ANSWER,
            # Rings 40 simulated seconds (0.8 s real), then 503: a failover would follow.
            "numbers": [{"glob": "*@viettel-sbc", "outcome": "unreachable", "ring": 40}],
        },
        extra_toml=trunk("viettel", "viettel", carriers=["Viettel"]) + trunk("backup", "backup"),
    )
    import_customers(daemon.db_path, [("C1", [VIETTEL[0]])], code="Q", max_recall_count=0)
    daemon.start()
    wait_until(lambda: len(sim.channels) == 1, 20)  # the first leg rings (its record comes at its end)
    db = open_database(daemon.db_path)
    try:
        queue_state.set_running(db, "Q", False)  # the API's /queue/stop, acknowledged now
    finally:
        db.close()
    # The failover is decided (and refused) before the attempt closes; then nothing more goes out.
    wait_until(lambda: query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state = 'done'") == [(1,)], 20)
    assert "no failover: WITHDRAWN_BEFORE_DIAL" in daemon.read_log()
    assert daemon.terminate() == 0
    assert [gateway for _, gateway, _ in originates(sim)] == ["viettel"]  # never out on backup


def test_a_calling_window_that_closes_while_the_first_trunk_rings_keeps_the_failover_leg_in(run):
    # Found by a review: a first leg that rings, then fails (SIP timer B: about 32 s), was
    # followed by a second leg after the window's end; the look before it asked only the store.
    sim, daemon = run(
        {
            "gateways": {"viettel": {"proxy": "viettel-sbc"}, "backup": {}},
            "default": ANSWER,
            # Rings 150 simulated seconds (3 s real), then 503: a failover would follow.
            "numbers": [{"glob": "*@viettel-sbc", "outcome": "unreachable", "ring": 150}],
        },
        extra_toml=trunk("viettel", "viettel", carriers=["Viettel"]) + trunk("backup", "backup"),
    )
    import_customers(daemon.db_path, [("C1", [VIETTEL[0]])], code="Q", max_recall_count=0)
    daemon.start()
    wait_until(lambda: len(sim.channels) == 1, 20)  # the first leg rings
    closes = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) + dt.timedelta(seconds=1)
    text = daemon.config.read_text()
    daemon.config.write_text(text.replace('window_end = "23:59:59"', f'window_end = "{closes:%H:%M:%S}"'))
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: configuration reloaded" in daemon.read_log(), 10)
    wait_until(lambda: query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state = 'done'") == [(1,)], 20)
    assert "no failover: WINDOW_CLOSED_BEFORE_DIAL" in daemon.read_log()
    assert daemon.terminate() == 0
    assert [gateway for _, gateway, _ in originates(sim)] == ["viettel"]  # never out on backup


def test_a_trunk_the_switch_does_not_know_fails_over_and_stops_no_queue(run):
    sim, daemon = run(
        {"gateways": ["backup"], "default": ANSWER},
        extra_toml=trunk("ghost", "ghost", prefixes=["098"]) + trunk("backup", "backup"),
    )
    import_customers(daemon.db_path, [("A", [VIETTEL[0]]), ("B", [VIETTEL[1]])])
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert daemon.terminate() == 0
    assert query(daemon.db_path, "SELECT state, stop_reason FROM queue") == [("running", None)]
    assert query(daemon.db_path, "SELECT DISTINCT state FROM customer") == [("success",)]
    legs = originates(sim)
    assert {(g, o) for _, g, o in legs} == {("ghost", "invalid_gateway"), ("backup", "answer")}
    assert len(legs) == 4  # each customer: ghost refused (no channel at all), then backup answered
    assert "trunk ghost failed (INVALID_GATEWAY)" in daemon.read_log()


def test_per_trunk_channel_limits_hold_on_the_switchs_own_channels(run):
    sim, daemon = run(
        {"gateways": ["viettel", "other"], "default": {"outcome": "answer", "answer_after": 1, "hangup_after": 40}},
        channel_limit=20,
        extra_toml=trunk("viettel", "viettel", carriers=["Viettel"], channel_limit=2)
        + trunk("other", "other", channel_limit=3),
    )
    import_customers(daemon.db_path, [(f"C{i}", [n]) for i, n in enumerate(VIETTEL + ["0912000001", "0912000002"])])
    peaks = {"viettel": 0, "other": 0}

    def watch():
        while True:
            now = {"viettel": 0, "other": 0}
            for channel in list(sim.channels.values()):
                now[channel.target.gateway] += 1
            for name in peaks:
                peaks[name] = max(peaks[name], now[name])
            gevent.sleep(0.005)

    watcher = gevent.spawn(watch)
    daemon.start()
    try:
        wait_until(lambda: all_final(daemon.db_path), 90)
    finally:
        watcher.kill()
    assert daemon.terminate() == 0
    assert peaks == {"viettel": 2, "other": 3}  # both full at some point, never over
    spilled = query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE number LIKE '098%' AND trunk = 'other'")
    assert spilled[0][0] > 0  # Viettel numbers went out on the other trunk while theirs was full


def test_a_queues_caller_id_goes_out_and_trunks_rotate_their_pool(run):
    pool = ["02871000001", "02871000002"]
    sim, daemon = run(
        {"gateways": ["viettel"], "default": ANSWER}, extra_toml=trunk("viettel", "viettel", caller_ids=pool)
    )
    import_customers(daemon.db_path, [("A", [VIETTEL[0]]), ("B", [VIETTEL[1]])], code="POOL", concurrent_call=1)
    import_customers(daemon.db_path, [("C", [VIETTEL[2]])], code="OWN", caller_id="02871000002")
    import_customers(daemon.db_path, [("D", [VIETTEL[3]])], code="STALE", caller_id="0999")  # not configured
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert daemon.terminate() == 0
    number_of = dict(query(daemon.db_path, "SELECT uuid, number FROM attempt"))
    shown = {
        number_of[r["uuid"]]: dict(r["variables"]).get("origination_caller_id_number")
        for r in sim.records
        if r["event"] == "originate"
    }
    assert shown[VIETTEL[2]] == "02871000002"
    rotated = [shown[n] for n in (VIETTEL[0], VIETTEL[1], VIETTEL[3])]
    assert set(rotated) == set(pool)  # three calls took the pool in turn, the stale queue's too
    assert "caller id 0999 of queue 'STALE' is no longer configured; using the trunk's" in daemon.read_log()


def test_no_key_pressed_is_recalled_where_the_queue_asks_after_its_own_delay(run):
    press_at = menu_offset() + 3.0
    sim, daemon = run(
        {
            "default": {"outcome": "answer", "answer_after": 1, "hangup_after": 60},
            "numbers": [{"number": "0901000001", "keys": [[press_at, "9"]]}],
        },
        recall_delays={"no_key": 0.5},
        recall_delay=3600,
    )
    import_customers(
        daemon.db_path,
        [("KEY", ["0901000001"]), ("SILENT", ["0901000002"])],
        code="NK",
        max_recall_count=1,
        retry_when=["no_answer", "no_key"],
    )
    import_customers(daemon.db_path, [("PLAIN", ["0901000003"])], code="PLAIN", max_recall_count=1)
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 90)
    assert daemon.terminate() == 0
    outcomes = query(
        daemon.db_path,
        "SELECT c.ext_id, c.state, GROUP_CONCAT(a.outcome) FROM customer c JOIN attempt a ON a.customer_id = c.id"
        " GROUP BY c.ext_id ORDER BY c.ext_id",
    )
    assert outcomes == [
        ("KEY", "success", "success"),
        ("PLAIN", "success", "success"),  # no retry_when: answered and heard is a success, as before
        ("SILENT", "failed", "no_key,no_key"),  # recalled once (no_key delay 0.5 s), then failed
    ]


def test_no_call_starts_on_a_closed_date(run):
    today = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    sim, daemon = run(
        {"default": ANSWER}, closed_dates=[f"{today - dt.timedelta(days=1)}..{today + dt.timedelta(days=1)}"]
    )
    import_customers(daemon.db_path, [("A", ["0901000001"])])
    daemon.start()
    gevent.sleep(2.0)  # the loop came round many times: a call would have started at once
    assert daemon.terminate() == 0
    assert query(daemon.db_path, "SELECT state, (SELECT COUNT(*) FROM attempt) FROM customer") == [("pending", 0)]
    assert not [r for r in sim.records if r["event"] == "originate"]


def test_the_daemon_calls_higher_priority_first_then_in_import_order(run):
    from daemon.config import QueueDefaults
    from daemon.store import customers as store_customers
    from daemon.store import records
    from daemon.store.schema import open_database

    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 0.5, "hangup_after": 5}})
    fields = {"contract_number": "HD123456", "upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"}
    people = [("LOW1", 0), ("HIGH1", 5), ("MID", 2), ("LOW2", 0), ("HIGH2", 5)]
    db = open_database(daemon.db_path)
    request = records.ImportRequest(
        "P",
        "IVR-1",
        {"concurrent_call": 1},
        [records.NewCustomer(x, [f"090100000{i}"], fields, p) for i, (x, p) in enumerate(people)],
    )
    store_customers.import_customers(db, request, QueueDefaults())
    db.close()
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert daemon.terminate() == 0
    order = query(
        daemon.db_path, "SELECT c.ext_id FROM attempt a JOIN customer c ON c.id = a.customer_id ORDER BY a.id"
    )
    assert [x for (x,) in order] == ["HIGH1", "HIGH2", "MID", "LOW1", "LOW2"]
