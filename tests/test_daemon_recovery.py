"""Results, not guesses (issue 11, item 3): a call that ends while the daemon or its event
socket is down gets the outcome FreeSWITCH recorded for it (its hangup hook), and a call still
up is re-attached at the IVR step it was in. The daemon is a real process, the simulator runs
in this process, both over a real socket."""

import gevent
import pytest

from daemon.ledger import LAZY_WRITE
from tests.daemon_fixtures import all_final, import_customers, query, wait_until

pytestmark = pytest.mark.timeout(120)

PROMPTS = "ivr_templates/sounds/vi/prompts/"
GREETING, INFO = PROMPTS + "xin_chao.wav", PROMPTS + "hop_dong_so.wav"  # IVR-1's first two steps


def attempts(db_path):
    return query(
        db_path,
        "SELECT a.uuid, a.state, a.outcome, a.hangup_cause, a.keys, a.talk_seconds, c.state, c.last_cause"
        " FROM attempt a JOIN customer c ON c.id = a.customer_id ORDER BY a.id",
    )


def originates(sim):
    return [r for r in sim.records if r["event"] == "originate"]


def cut(sim, daemon, how):
    """Take the dialer away from the switch: kill -9 of the daemon, or the event socket dropped
    and refused for 3 s (the daemon lives on and reconnects by itself)."""
    if how == "kill":
        daemon.kill9()
    else:
        sim.refuse(3.0)
        sim.drop_connections()


def bring_back(daemon, how):
    if how == "kill":
        daemon.start()


@pytest.mark.parametrize("how", ["kill", "socket"])
def test_a_call_that_succeeds_while_the_dialer_is_away_is_a_success_not_a_recall(run, how):
    # Answered, a key pressed, then 100 simulated seconds of talk (2 s real) the dialer misses.
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 1, "hangup_after": 100, "keys": [[60, "4"]]}})
    import_customers(daemon.db_path, [("A", ["0901000001"])], min_recall_duration=20)
    daemon.start()
    wait_until(lambda: query(daemon.db_path, "SELECT state FROM attempt") == [("answered",)], 30)
    cut(sim, daemon, how)
    assert sim.channels, "the call must outlive the dialer's connection"
    wait_until(lambda: not sim.channels, 30)  # it ended while nobody listened
    bring_back(daemon, how)
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert daemon.terminate() == 0
    [(uuid, state, outcome, cause, keys, talk, customer, _)] = attempts(daemon.db_path)
    assert (state, outcome, cause, customer) == ("done", "success", "NORMAL_CLEARING", "success")
    assert keys == "4" and talk == pytest.approx(100, abs=1)
    assert [r["uuid"] for r in originates(sim)] == [uuid]  # called once: no recall
    assert "ended while the event socket was down: NORMAL_CLEARING" in daemon.read_log()


@pytest.mark.parametrize(
    "callee, cause",
    [
        ({"outcome": "no_answer"}, "NO_ANSWER"),
        ({"outcome": "unallocated", "ring": 40}, "UNALLOCATED_NUMBER"),
    ],
    ids=["rings-out", "dead-number"],
)
def test_a_call_that_fails_while_the_daemon_is_dead_fails_with_its_real_cause(run, callee, cause):
    sim, daemon = run({"default": callee}, originate_timeout=40)
    import_customers(daemon.db_path, [("A", ["0901000001"])], max_recall_count=0)
    daemon.start()
    wait_until(lambda: sim.channels and sim.channels[next(iter(sim.channels))].progress, 30)  # ringing
    daemon.kill9()
    assert sim.channels
    wait_until(lambda: not sim.channels, 30)
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert daemon.terminate() == 0
    # The one round is used up by the real failure: no CALL_LOST, no second call.
    [(_, _, outcome, got, _, _, customer, last_cause)] = attempts(daemon.db_path)
    assert (got, customer, last_cause) == (cause, "failed", cause)
    assert outcome == ("retry" if cause == "NO_ANSWER" else "dead_number")
    assert len(originates(sim)) == 1


def test_a_call_the_switch_lost_too_is_recalled_as_lost(run):
    # A FreeSWITCH restart takes the channel and its record: nothing is known, so it is recalled.
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 1, "hangup_after": 20}})
    import_customers(daemon.db_path, [("A", ["0901000001"])])
    daemon.start()
    wait_until(lambda: query(daemon.db_path, "SELECT state FROM attempt") == [("answered",)], 30)
    daemon.kill9()
    sim.restart()
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 60)
    assert daemon.terminate() == 0
    rows = attempts(daemon.db_path)
    assert [(r[2], r[3]) for r in rows] == [("interrupted", "CALL_LOST"), ("success", "NORMAL_CLEARING")]
    assert len(originates(sim)) == 2


def playbacks(sim, uuid):
    return [r["arg"] for r in sim.records if r["event"] == "app" and r["uuid"] == uuid and r["app"] == "playback"]


@pytest.mark.parametrize("how", ["kill", "socket"])
def test_a_reattached_answered_call_resumes_at_its_step_not_the_greeting(run, how):
    # time scale 0.1: the info step (~14 simulated s) lasts 1.4 s real, long enough to cut into.
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 1, "hangup_after": "never"}}, time_scale=0.1)
    import_customers(daemon.db_path, [("A", ["0901000001"])])
    daemon.start()
    wait_until(lambda: sim.channels and any(INFO in arg for arg in playbacks(sim, next(iter(sim.channels)))), 30)
    # The step is written with the next result, or by itself within LAZY_WRITE: cut once it is.
    wait_until(lambda: query(daemon.db_path, "SELECT step FROM attempt") == [("info",)], LAZY_WRITE + 5)
    [uuid] = sim.channels
    started = len(sim.records)
    cut(sim, daemon, how)
    bring_back(daemon, how)
    wait_until(lambda: all_final(daemon.db_path), 90)
    assert daemon.terminate() == 0
    before = playbacks(sim, uuid)[: len([r for r in sim.records[:started] if r.get("app") == "playback"])]
    after = [r["arg"] for r in sim.records[started:] if r["event"] == "app" and r["app"] == "playback"]
    assert GREETING in before[0] and INFO in before[-1]
    assert INFO in after[0], after  # the step it was in, again from its start...
    assert not [arg for arg in after if GREETING in arg]  # ...and never the greeting
    assert query(daemon.db_path, "SELECT step, outcome FROM attempt") == [("end", "success")]
    assert f"re-attached call {uuid}" in daemon.read_log() and "step info" in daemon.read_log()


def test_a_call_answered_while_the_daemon_is_dead_starts_at_the_greeting(run):
    # No step was recorded (the dialer never saw the answer): the IVR starts from the start.
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 20, "hangup_after": "never"}}, time_scale=0.1)
    import_customers(daemon.db_path, [("A", ["0901000001"])])
    daemon.start()
    wait_until(lambda: bool(sim.channels), 30)
    daemon.kill9()
    gevent.sleep(0.5)
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 90)
    assert daemon.terminate() == 0
    [uuid] = [r["uuid"] for r in originates(sim)]
    assert GREETING in playbacks(sim, uuid)[0]
