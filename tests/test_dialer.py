"""The Dialer in-process: a real SQLite file, the simulator on 127.0.0.1:0, a fake clock.

The test turns the loop itself with `dialer.step(clock.monotonic())` and moves the clock by
hand; the only waits are for the call greenlets to end (events, bounded), never sleeps.
"""

import dataclasses
import datetime as dt
import logging
import time
from zoneinfo import ZoneInfo

import gevent
import gevent.event
import pytest

from daemon import config as config_mod
from daemon import dialer as dialer_mod
from daemon import ivr, last_look
from daemon.config import QueueDefaults
from daemon.dialer import Dialer
from daemon.errors import ConfigError
from daemon.esl import ESLClient, commands
from daemon.ledger import Ledger
from daemon.store import customers as store_customers
from daemon.store import dnc, queue_state, records
from daemon.store.schema import StoreUnavailable, open_database
from simulator import Simulator
from simulator.scenario import from_dict
from tests.daemon_fixtures import REPO, overlapping_calls, query, wait_until

pytestmark = pytest.mark.timeout(60)

TIME_SCALE = 0.01  # 100 simulated seconds per real second
FIELDS = {"contract_number": "HD123456", "upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"}
GREETING = str(REPO / "ivr_templates" / "sounds" / "vi" / "prompts" / "xin_chao.wav")
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOON = dt.datetime(2026, 12, 2, 12, 0, tzinfo=TZ).timestamp()


class FakeClock:
    """Wall and monotonic time that move only when the test says so."""

    def __init__(self, wall: float):
        self.wall, self.mono = wall, 5000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float):
        self.wall += seconds
        self.mono += seconds


class Rig:
    """A simulator, a database file and dialers on them, all on one fake clock."""

    def __init__(self, tmp_path, scenario, dialer):
        self.tmp_path, self.db_path = tmp_path, tmp_path / "autocall.sqlite3"
        self.clock = FakeClock(NOON)
        self.sim = Simulator(
            from_dict({"gateways": ["carrier"], **scenario}),
            listen=("127.0.0.1", 0),
            time_scale=TIME_SCALE,
            heartbeat=20.0,
            sound_dir=str(REPO),
        ).start()
        settings = {
            "dial_string": "sofia/gateway/carrier/{number}",
            "window_start": "00:00",
            "window_end": "24:00",
            "recall_delay": 60,
            "cps": 200,
            "channel_limit": 50,
            "drain_timeout": 5,
            **dialer,
        }
        lines = ["[dialer]"] + [f"{k} = {v!r}".replace("'", '"') for k, v in settings.items()]
        (tmp_path / "autocall.toml").write_text("\n".join(lines) + "\n")
        self.config = config_mod.load(tmp_path / "autocall.toml", environ={})
        self.db = open_database(self.db_path)
        self.dialers = []
        self.password = "ClueCon"  # the simulator's

    def import_customers(self, customers, *, at=-3600, db=None, **settings):
        """[(id, [numbers])], imported `at` seconds from the clock's now (due since an hour),
        through `db` (default: the dialer's own connection)."""
        request = records.ImportRequest(
            "Q",
            "IVR-1",
            settings,
            [records.NewCustomer(ext_id, list(numbers), FIELDS) for ext_id, numbers in customers],
        )
        store_customers.import_customers(db or self.db, request, QueueDefaults(), now=lambda: self.clock.wall + at)

    def connect(self):
        client = ESLClient(*self.sim.address, self.password, timeout=5.0, heartbeat_timeout=60.0)
        client.connect()
        return client

    def dialer(self, ledger=None) -> Dialer:
        templates = ivr.TemplateLoader(
            REPO / "ivr_templates",
            REPO / "ivr_templates" / "sounds",
            destinations=[name for name, _ in self.config.dialer.transfer_destinations],
        )
        dialer = Dialer(
            self.config,
            ledger or Ledger(self.db),
            templates,
            self.connect,
            clock=self.clock.time,
            monotonic=self.clock.monotonic,
        )
        self.dialers.append(dialer)
        return dialer

    def step(self, dialer) -> float:
        return dialer.step(self.clock.monotonic())

    def attempts(self):
        return query(self.db_path, "SELECT number, state, hangup_cause, outcome FROM attempt ORDER BY id")

    def customers(self):
        return dict(query(self.db_path, "SELECT ext_id, state FROM customer"))

    def originated(self):
        return [r["uuid"] for r in self.sim.records if r["event"] == "originate"]

    def close(self):
        for dialer in self.dialers:
            greenlets = [a.greenlet for a in dialer.calls.values()]
            dialer.link.close()
            gevent.killall(greenlets, timeout=5)
        self.sim.stop()
        self.db.close()


@pytest.fixture
def rig(tmp_path):
    """rig(scenario, **dialer settings) -> Rig; closed after the test."""
    made = []

    def make(scenario=None, **dialer):
        made.append(Rig(tmp_path, scenario or {}, dialer))
        return made[-1]

    yield make
    for r in made:
        r.close()


def settle(dialer, timeout=20.0):
    """Wait (bounded) until every call the dialer has running has been recorded."""
    gevent.joinall([a.greenlet for a in dialer.calls.values()], timeout=timeout)
    assert not dialer.calls, f"{len(dialer.calls)} calls still running"


BUSY = {"default": {"outcome": "busy"}}


def test_a_step_dials_every_due_customer_and_records_each_call(rig):
    r = rig(BUSY)
    r.import_customers([("A", ["0901000001"]), ("B", ["0902000001"]), ("C", ["0903000001"])])
    dialer = r.dialer()
    assert r.step(dialer) == 0.0  # connected and reconciled; dialing is the next turn
    assert dialer.ready.is_set()
    r.step(dialer)
    assert len(dialer.calls) == 3
    settle(dialer)
    assert r.attempts() == [(n, "done", "USER_BUSY", "retry") for n in ("0901000001", "0902000001", "0903000001")]
    assert len(r.originated()) == 3
    assert set(r.customers().values()) == {"pending"}  # recalled after recall_delay


def _one_busy_call(r) -> Dialer:
    """Customer A (one number, one recall) called once and busy; the dialer that called it."""
    r.import_customers([("A", ["0901000001"])], max_recall_count=1)
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    settle(dialer)
    return dialer


def test_a_recalled_customer_is_dialed_again_once_the_recall_delay_has_passed(rig):
    r = rig(BUSY, recall_delay=60)
    dialer = _one_busy_call(r)
    r.clock.advance(59)
    r.step(dialer)
    assert not dialer.calls and len(r.attempts()) == 1
    r.clock.advance(2)
    r.step(dialer)
    settle(dialer)
    assert len(r.attempts()) == 2 and r.customers() == {"A": "failed"}


def test_the_cps_bucket_lets_one_call_out_per_tenth_of_a_second_at_10_cps(rig):
    r = rig(BUSY, cps=10)
    r.import_customers([(f"C{i}", [f"090100000{i}"]) for i in range(5)])
    dialer = r.dialer()
    r.step(dialer)
    assert r.step(dialer) == pytest.approx(0.1)  # one token out, the next in a tenth of a second
    assert len(r.attempts()) == 1
    assert r.step(dialer) == pytest.approx(0.1) and len(r.attempts()) == 1  # same moment: nothing more
    r.clock.advance(0.1)
    r.step(dialer)
    assert len(r.attempts()) == 2
    settle(dialer)


def test_dialing_goes_on_when_the_wall_clock_steps_back_600_seconds(rig, caplog):
    r = rig(BUSY, cps=10)
    r.import_customers([(f"C{i}", [f"090100000{i}"]) for i in range(4)])
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    assert len(r.attempts()) == 1
    caplog.set_level(logging.WARNING, logger="autocall.dialer")
    r.clock.wall -= 600  # NTP or an operator steps the wall clock back
    for _ in range(3):
        r.clock.advance(0.1)
        r.step(dialer)
    assert len(r.attempts()) == 4
    steps = [rec.getMessage() for rec in caplog.records if "wall clock stepped" in rec.getMessage()]
    assert len(steps) == 1 and "-600s" in steps[0]
    settle(dialer)


def test_customers_imported_just_before_the_wall_clock_steps_back_are_dialed_at_once(rig):
    r = rig(BUSY, cps=200)
    r.import_customers([(f"C{i}", [f"090100000{i}"]) for i in range(3)], at=-1)
    dialer = r.dialer()
    r.step(dialer)
    r.clock.wall -= 600
    r.clock.advance(0.1)
    r.step(dialer)
    settle(dialer)
    assert len(r.attempts()) == 3


def test_an_import_stamped_before_a_step_back_and_written_after_it_is_due_a_few_seconds_later(rig, caplog):
    r = rig(BUSY, cps=200)
    r.import_customers([("A", ["0901000001"])], at=-1)
    dialer = r.dialer()
    r.step(dialer)
    r.clock.wall -= 600
    r.clock.advance(0.1)
    r.step(dialer)  # the step is noticed and followed; then an import in flight lands
    r.import_customers([("B", ["0902000001"])], at=+600 - 0.2)
    r.clock.advance(1)
    r.step(dialer)
    assert len(r.attempts()) == 1  # B's stamp lies ten minutes ahead of the new wall time
    caplog.set_level(logging.INFO, logger="autocall.dialer")
    r.clock.advance(5)
    r.step(dialer)
    r.step(dialer)
    settle(dialer)
    assert len(r.attempts()) == 2
    assert any(
        "1 customers written in the time before the wall clock stepped back follow the step" in rec.getMessage()
        for rec in caplog.records
    )


@pytest.mark.parametrize("step", [-600, +3600])  # back: would wait 660 s; forward: would come at once
def test_a_recall_waits_its_delay_by_the_clock_that_did_not_step(rig, step):
    r = rig(BUSY, recall_delay=60)
    dialer = _one_busy_call(r)
    assert len(r.attempts()) == 1
    r.clock.wall += step
    r.clock.advance(59)
    r.step(dialer)
    assert len(r.attempts()) == 1
    r.clock.advance(2)
    r.step(dialer)
    settle(dialer)
    assert len(r.attempts()) == 2


def test_a_reloaded_cps_paces_the_very_next_step(rig):
    r = rig(BUSY, cps=200)
    r.import_customers([(f"C{i}", [f"090100000{i}"]) for i in range(5)])
    dialer = r.dialer()
    r.step(dialer)
    dialer.apply_config(dataclasses.replace(r.config, dialer=dataclasses.replace(r.config.dialer, cps=10)))  # SIGHUP
    r.step(dialer)
    assert len(r.attempts()) == 1  # 10 per second lets one out at once, not 5
    settle(dialer)


class CountingLedger(Ledger):
    """A Ledger that counts its claims, per queue code, and its reads of the running queues."""

    def __init__(self, db):
        super().__init__(db)
        self.claims: dict[str, int] = {}
        self.reads = 0

    def changed_running_queues(self):
        queues = super().changed_running_queues()
        self.reads += queues is not None
        return queues

    def claim_many(self, queue, limit, **kwargs):
        self.claims[queue.code] = self.claims.get(queue.code, 0) + 1
        return super().claim_many(queue, limit, **kwargs)


def _queues_due_later(r, count: int, due_in: float):
    """`count` running queues IDLE0.. of one customer each, first due `due_in` seconds from now."""
    for i in range(count):
        request = records.ImportRequest(
            f"IDLE{i}", "IVR-1", {}, [records.NewCustomer(f"K{i}", [f"09020000{i:02d}"], FIELDS)]
        )
        store_customers.import_customers(r.db, request, QueueDefaults(), now=lambda: r.clock.wall)
    r.db.execute_sql("UPDATE customer SET next_call_at = ?", (r.clock.wall + due_in,))


def test_running_queues_with_nobody_due_are_not_asked_until_their_first_customer_is_due(rig):
    r = rig(BUSY, cps=1000)
    _queues_due_later(r, 30, due_in=10.0)
    ledger = CountingLedger(r.db)
    dialer = r.dialer(ledger)
    r.step(dialer)  # connects
    for _ in range(9):
        assert r.step(dialer) <= 1.0  # comes round to look for a change (an import, a start)
        r.clock.advance(1.0)
    assert ledger.claims == {} and r.attempts() == []
    assert ledger.reads == 1  # nothing was written since: 30 queues not read again each second
    r.clock.advance(1.0)
    r.step(dialer)
    assert ledger.claims == {f"IDLE{i}": 1 for i in range(30)}
    settle(dialer)
    assert len(r.attempts()) == 30


def test_the_loop_wakes_when_the_first_customer_of_a_running_queue_is_due(rig):
    r = rig(BUSY)
    _queues_due_later(r, 1, due_in=0.3)
    dialer = r.dialer()
    r.step(dialer)
    assert r.step(dialer) == pytest.approx(0.3)
    r.clock.advance(0.3)
    r.step(dialer)
    settle(dialer)
    assert len(r.attempts()) == 1


@pytest.mark.parametrize("by", ["this connection", "another connection"])
def test_an_import_into_a_queue_with_nobody_due_is_dialed_at_the_next_read_of_the_queues(rig, by):
    r = rig(BUSY)
    _queues_due_later(r, 1, due_in=3600.0)
    dialer = r.dialer()
    r.step(dialer)
    r.clock.advance(dialer_mod.QUEUE_REFRESH)
    r.step(dialer)  # a look that finds nothing changed
    other = open_database(r.db_path) if by == "another connection" else None  # the API's
    r.import_customers([("A", ["0901000001"])], db=other)  # another queue, due at once
    if other is not None:
        other.close()
    r.clock.advance(dialer_mod.QUEUE_REFRESH)
    r.step(dialer)
    settle(dialer)
    assert [a[0] for a in r.attempts()] == ["0901000001"]


def test_outside_the_calling_window_a_step_dials_nobody_and_waits_for_the_opening(rig):
    r = rig(BUSY, window_start="07:00", window_end="21:00")
    r.clock.wall = dt.datetime(2026, 12, 2, 6, 59, 50, tzinfo=TZ).timestamp()
    r.import_customers([("A", ["0901000001"])])
    dialer = r.dialer()
    r.step(dialer)
    assert r.step(dialer) == pytest.approx(10.0)
    assert r.attempts() == []
    r.clock.advance(10)
    r.step(dialer)
    assert len(r.attempts()) == 1
    settle(dialer)


def test_an_open_attempt_without_a_channel_is_closed_lost_at_start_and_recalled_later(rig):
    r = rig(BUSY, recall_delay=60)
    r.import_customers([("A", ["0901000001"])])
    queue = Ledger(r.db).running_queues()[0]
    Ledger(r.db).claim_many(
        queue, 1, now=r.clock.wall - 5, day_start=0, next_day=r.clock.wall + 86400, daily_cap=5
    )  # a daemon claimed it and died before the originate
    dialer = r.dialer()
    r.step(dialer)
    assert r.attempts() == [("0901000001", "done", "CALL_LOST", "interrupted")]
    [(state, next_call_at)] = query(r.db_path, "SELECT state, next_call_at FROM customer")
    assert (state, next_call_at) == ("pending", r.clock.wall + 60)
    assert r.originated() == [] and not r.sim.channels


def _crash_mid_call(r):
    """A first dialer starts A's call and loses it while the callee listens; returns its uuid."""
    first = r.dialer()
    r.step(first)
    r.step(first)
    [active] = first.calls.values()
    assert active.call.answered.wait(10), "the call was not answered"
    first.link.close()  # the daemon is gone; FreeSWITCH keeps the channel
    gevent.joinall([active.greenlet], timeout=5)
    assert r.attempts()[0][1] != "done" and active.call.claim.uuid in r.sim.channels
    return active.call.claim.uuid


LISTENS = {"default": {"outcome": "answer", "answer_after": 0.5, "hangup_after": "never"}}  # we hang up


def test_a_wall_clock_step_forward_does_not_cut_a_call_at_its_length_limit(rig, caplog):
    r = rig(LISTENS, max_call_seconds=300)
    r.import_customers([("A", ["0901000001"])])
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    [active] = dialer.calls.values()
    # The IVR has begun (its length limit is counted from there) when the first prompt plays.
    wait_until(lambda: any(rec["event"] == "app" for rec in r.sim.records), 10)
    caplog.set_level(logging.WARNING, logger="autocall.call")
    r.clock.wall += 3600
    settle(dialer)
    assert not [rec for rec in caplog.records if "longer than" in rec.getMessage()]
    assert r.customers() == {"A": "success"}


def test_a_restarted_dialer_reattaches_the_live_call_and_dials_nobody_twice(rig):
    r = rig(LISTENS)
    r.import_customers([("A", ["0901000001"])])
    uuid = _crash_mid_call(r)
    second = r.dialer()
    r.step(second)
    assert [a.call.claim.uuid for a in second.calls.values()] == [uuid]
    settle(second)
    [(number, state, cause, result)] = r.attempts()
    assert (state, cause, result) == ("done", "NORMAL_CLEARING", "success")
    assert r.originated() == [uuid]
    assert r.customers() == {"A": "success"}


def test_a_new_call_takes_the_lowest_record_slot_no_call_in_progress_holds(rig):
    r = rig({"default": {"outcome": "busy"}, "numbers": [{"number": "0902000001", **LISTENS["default"]}]})
    r.import_customers([("A", ["0901000001"]), ("B", ["0902000001"])])
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    [a] = [x.greenlet for x in dialer.calls.values() if x.call.claim.ext_id == "A"]
    gevent.joinall([a], timeout=10)  # A was busy and is recorded; B is still up in slot 1
    r.import_customers([("C", ["0903000001"])])
    r.step(dialer)
    slots = dict(query(r.db_path, "SELECT c.ext_id, a.slot FROM attempt a JOIN customer c ON c.id = a.customer_id"))
    assert slots == {"A": 0, "B": 1, "C": 0}
    [c] = [x.greenlet for x in dialer.calls.values() if x.call.claim.ext_id == "C"]
    gevent.joinall([c], timeout=10)
    hooks = [r["variables"].get("api_hangup_hook", "") for r in r.sim.records if r["event"] == "originate"]
    assert [hook.split("/")[2] for hook in hooks] == ["0", "0"]  # A's and C's calls wrote slot 0


def test_a_reattached_call_whose_sound_file_the_switch_cannot_play_is_hung_up_not_played(rig):
    r = rig(LISTENS)
    r.import_customers([("A", ["0901000001"])])
    uuid = _crash_mid_call(r)
    apps_before = sum(1 for rec in r.sim.records if rec["event"] == "app")
    r.sim.set_unreadable([GREETING])
    second = r.dialer()
    r.step(second)
    settle(second)
    assert sum(1 for rec in r.sim.records if rec["event"] == "app") == apps_before
    assert r.attempts()[0][1:] == ("done", "NORMAL_CLEARING", "interrupted")
    assert uuid not in r.sim.channels


def test_a_template_the_switch_cannot_play_stops_the_queue_and_dials_nobody(rig):
    r = rig(BUSY)
    r.sim.set_unreadable([GREETING])
    r.import_customers([("A", ["0901000001"])])
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    assert r.attempts() == [("0901000001", "done", "SOUND_FILE_UNPLAYABLE", "not_dialed")]
    [(state, reason)] = query(r.db_path, "SELECT state, stop_reason FROM queue")
    assert state == "stopped" and GREETING in reason
    assert r.customers() == {"A": "pending"} and r.originated() == []


CLAIM_A = records.Claim(1, "u1", "j1", "0901000001", 1, "A", FIELDS, 1, "Q", "IVR-1", 0)


# What the API commits, from its own connection, in the gap between a claim and its originate.
WITHDRAWALS = {
    "stop": lambda db: queue_state.set_running(db, "Q", False),
    "dnc": lambda db: store_customers.block(db, "Q", ["A"]),
    "dnc_number": lambda db: dnc.block_numbers(db, ["0901000001"]),
}


@pytest.mark.parametrize("withdrawal", sorted(WITHDRAWALS))
def test_a_stop_or_dnc_acknowledged_after_the_claim_but_before_the_originate_keeps_the_customer_uncalled(
    rig, monkeypatch, withdrawal
):
    r = rig(BUSY)
    r.import_customers([("A", ["0901000001"]), ("B", ["0902000001"])])
    api_db = open_database(r.db_path)
    real_prepare = dialer_mod.prepare

    def prepare_while_the_api_answers(claim, *args):
        if claim.ext_id == "A":  # the claim is committed; the originate has not gone
            WITHDRAWALS[withdrawal](api_db)
            gevent.sleep(last_look.FRESH_CLAIM)  # a loaded host: the batch is slow to get ready
        return real_prepare(claim, *args)

    monkeypatch.setattr(dialer_mod, "prepare", prepare_while_the_api_answers)
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    settle(dialer)
    api_db.close()
    called = [rec["dial"] for rec in r.sim.records if rec["event"] == "originate"]
    called = [dial.rsplit("/", 1)[-1] for dial in called]
    assert "0901000001" not in called
    [(cause, result)] = query(r.db_path, "SELECT hangup_cause, outcome FROM attempt WHERE number = '0901000001'")
    assert (cause, result) == ("WITHDRAWN_BEFORE_DIAL", "not_dialed")
    state = {"stop": "pending", "dnc": "dnc", "dnc_number": "pending"}[withdrawal]
    assert r.customers()["A"] == state
    # B, claimed in the same batch, is called unless the whole queue was stopped.
    assert ("0902000001" in called) == (withdrawal != "stop")


@pytest.mark.parametrize("late", ["batch", "greenlet"])
def test_a_claim_that_comes_back_after_the_window_closed_is_not_dialed(rig, monkeypatch, late):
    # Found by a review: the window was looked at once per turn, before the claim, and a claim can
    # wait for the write lock (another node, an import's chunk) for up to its busy timeout.
    r = rig(BUSY, window_start="08:00", window_end="12:01")  # the clock says 12:00
    r.import_customers([("A", ["0901000001"])])
    if late == "batch":
        real_claim = Ledger.claim_many

        def claim_then_the_window_closes(self, *args, **kwargs):
            claims = real_claim(self, *args, **kwargs)
            r.clock.wall += 90  # the claim waited for the lock
            return claims

        monkeypatch.setattr(Ledger, "claim_many", claim_then_the_window_closes)
    else:
        real_launch = Dialer._launch

        def launch_then_the_window_closes(self, call, **kwargs):
            real_launch(self, call, **kwargs)  # spawned, its originate not yet sent
            r.clock.wall += 90

        monkeypatch.setattr(Dialer, "_launch", launch_then_the_window_closes)
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    settle(dialer)
    assert r.originated() == []
    assert r.attempts() == [("0901000001", "done", last_look.WINDOW_CLOSED, "not_dialed")]
    assert r.customers() == {"A": "pending"}  # called when the window opens again, nothing counted


def test_a_claim_whose_answer_was_lost_after_its_commit_leaves_nobody_calling(rig, monkeypatch, caplog):
    # Found by a review on PostgreSQL: the COMMIT landed, its answer went with the connection,
    # and the dialer took the claim for one that wrote nothing. Its attempts stayed open under a
    # node that kept beating: customers `calling` until a restart, holding concurrent_call.
    r = rig(BUSY)
    r.import_customers([("A", ["0901000001"]), ("B", ["0902000001"])], concurrent_call=2, max_recall_count=0)
    lost = _lose_the_first_claim(monkeypatch)
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)  # the claim "fails"
    assert len(lost) == 2 and r.customers() == {"A": "calling", "B": "calling"} and r.originated() == []
    for _ in range(3):
        r.clock.advance(5)  # past the outage's probe delay
        r.step(dialer)
        settle(dialer)
    assert r.attempts()[:2] == [
        (n, "done", "CLAIM_UNCONFIRMED_BEFORE_DIAL", "not_dialed") for n in ("0901000001", "0902000001")
    ]
    assert len(r.originated()) == 2  # then each called once, as any customer
    assert r.customers() == {"A": "failed", "B": "failed"}
    assert "was claimed by a claim whose answer was lost" in caplog.text


def _lose_the_first_claim(monkeypatch, limit=None):
    """The first claim commits, then its answer is lost (StoreUnavailable); returns its claims.
    With `limit`, that claim takes at most `limit` customers."""
    real_claim, lost = Ledger.claim_many, []

    def committed_then_the_answer_lost(self, queue, count, **kwargs):
        claims = real_claim(self, queue, count if lost or limit is None else min(count, limit), **kwargs)
        if not lost:
            lost.extend(claims)
            raise StoreUnavailable("the connection is closed")
        return claims

    monkeypatch.setattr(Ledger, "claim_many", committed_then_the_answer_lost)
    return lost


def test_a_lost_claim_at_the_windows_end_is_closed_though_the_window_is_closed(rig, monkeypatch):
    # Found by a review: the sweep came after the window check, so such customers stayed
    # `calling` (holding concurrent_call and the person rule) until the next opening.
    r = rig(BUSY, window_start="08:00", window_end="12:01")  # the clock says 12:00
    r.import_customers([("A", ["0901000001"]), ("B", ["0902000001"])], concurrent_call=2, max_recall_count=0)
    lost = _lose_the_first_claim(monkeypatch)
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    assert len(lost) == 2
    for _ in range(3):
        r.clock.advance(61)  # the database answers again after the window closed
        r.step(dialer)
    assert r.customers() == {"A": "pending", "B": "pending"} and r.originated() == []
    assert {row[2] for row in r.attempts()} == {"CLAIM_UNCONFIRMED_BEFORE_DIAL"}


def test_a_sweep_that_sees_the_event_socket_go_down_claims_nobody_onto_it(rig, monkeypatch):
    # Found by a review: the turn went on to claim B onto the dead client; its call detached at
    # once and reconciliation closed it CALL_LOST, never dialed.
    r = rig(BUSY)
    r.import_customers([("A", ["0901000001"]), ("B", ["0902000001"])], concurrent_call=5, max_recall_count=1)
    lost = _lose_the_first_claim(monkeypatch, limit=1)
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    assert [c.ext_id for c in lost] == ["A"]
    real_open, client = Ledger.open_attempts, dialer.link.client

    def the_socket_goes_down_during_the_read(self, **kwargs):
        found = real_open(self, **kwargs)
        r.sim.drop_connections()
        assert client.dead.wait(5)
        return found

    monkeypatch.setattr(Ledger, "open_attempts", the_socket_goes_down_during_the_read)
    r.clock.advance(5)
    assert r.step(dialer) == 0.0  # reconnect at once
    monkeypatch.undo()
    assert [row[1] for row in r.attempts()] == ["dialing"]  # B was not claimed onto the dead client
    for _ in range(3):
        r.clock.advance(5)
        r.step(dialer)
        settle(dialer)
    assert "0902000001" in [row[0] for row in r.attempts() if row[2] == "USER_BUSY"]  # B called after the reconnect


def test_a_sweep_leaves_an_unnamed_attempt_another_node_follows(rig):
    # Found by a review: attempts made before attempts named their node are read by every node's
    # reconciliation; node n1's sweep closed one that node n2 had re-attached, and A was called
    # a second time while the first call was up.
    r = rig({"default": {"outcome": "answer", "answer_after": 0.5, "hangup_after": "never"}})
    n1 = r.dialer(Ledger(r.db, node="n1"))
    r.step(n1)
    r.import_customers([("A", ["0901000001"])])
    old = r.dialer(Ledger(r.db))  # a dialer of before attempts named their node
    r.step(old)
    r.step(old)
    [active] = old.calls.values()
    assert active.call.answered.wait(10)
    old.link.close()
    gevent.joinall([active.greenlet], timeout=5)
    n2 = r.dialer(Ledger(r.db, node="n2"))
    r.step(n2)  # re-attaches the live, unnamed call
    assert [a.call.claim.uuid for a in n2.calls.values()] == [active.call.claim.uuid]
    n1._unsure_sweeps = dialer_mod.UNSURE_SWEEPS  # as after a failed claim of n1's
    r.step(n1)
    gevent.sleep(1.0)
    assert len(r.originated()) + len(r.sim.channels) == 1  # A's one call, ended or still up
    assert "CLAIM_UNCONFIRMED_BEFORE_DIAL" not in [row[2] for row in r.attempts()]


def test_the_last_looks_say_the_window_closed_but_a_reattached_call_is_followed():
    # A failover's next leg asks `late(claim, looked_at=0.0)` (tests/test_daemon_trunks.py).
    open_now = [True]
    look = last_look.LastLook(None, None, lambda: open_now[0])
    assert look.late(CLAIM_A, looked_at=None) is None  # a re-attached call is followed whatever the hour
    open_now[0] = False
    assert look.late(CLAIM_A, looked_at=0.0) == last_look.WINDOW_CLOSED
    assert look.late(CLAIM_A, looked_at=None) is None
    assert look.batch([CLAIM_A], asked_at=0.0) == (
        set(),
        last_look.WINDOW_CLOSED,
        pytest.approx(time.monotonic(), abs=5),
    )


@pytest.mark.parametrize("withdrawal", sorted(WITHDRAWALS))
def test_a_call_whose_greenlet_starts_late_asks_again_and_honours_what_came_meanwhile(rig, monkeypatch, withdrawal):
    r = rig(BUSY)
    r.import_customers([("A", ["0901000001"])])
    api_db = open_database(r.db_path)
    real_launch = Dialer._launch

    def launch_then_the_api_answers(self, call, **kwargs):
        real_launch(self, call, **kwargs)  # spawned, its originate not yet sent
        WITHDRAWALS[withdrawal](api_db)

    monkeypatch.setattr(Dialer, "_launch", launch_then_the_api_answers)
    monkeypatch.setattr(last_look, "LATE_LOOK", -1.0)  # every greenlet starts "late"
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    settle(dialer)
    api_db.close()
    assert r.originated() == []
    assert r.attempts() == [("0901000001", "done", "WITHDRAWN_BEFORE_DIAL", "not_dialed")]
    assert r.customers()["A"] == {"stop": "pending", "dnc": "dnc", "dnc_number": "pending"}[withdrawal]


def test_a_call_that_failed_in_the_dialer_is_recorded_once_the_switch_ended_its_channel(rig, monkeypatch, caplog):
    """An error of ours mid-call (a bug): the channel is hung up and the attempt closed only once
    the switch says it is gone; a first kill it refuses is not the end (test_found_kill_refused)."""
    # park_timeout (max_call_seconds) 36 s away in real time: only a kill of the dialer's can end it first.
    r = rig({"default": {"answer_after": 0.1, "hangup_after": "never", "kill_fails": 1}}, max_call_seconds=3600)
    r.import_customers([("A", ["0901000001"])])

    def broken(self):
        raise RuntimeError("a bug in the IVR")

    monkeypatch.setattr(dialer_mod.Call, "_run_ivr", broken)
    caplog.set_level(logging.INFO, logger="autocall")
    dialer = r.dialer()
    # The refused kill is tried again after 1 s, not the default 10.
    dialer.call_settings = dataclasses.replace(dialer.call_settings, hangup_grace=1.0)
    r.step(dialer)
    r.step(dialer)
    settle(dialer)
    assert not r.sim.channels  # killed again after the refusal, before the attempt was closed
    assert r.attempts() == [("0901000001", "done", "AUTOCALL_ERROR", "interrupted")]
    assert "channel still up" in caplog.text


def test_after_the_connection_drops_the_next_step_reconnects_and_dialing_resumes(rig):
    r = rig(BUSY)
    r.import_customers([("A", ["0901000001"]), ("B", ["0902000001"])], concurrent_call=1)
    dialer = r.dialer()
    r.step(dialer)
    first = dialer.link.client
    r.sim.drop_connections()
    assert first.dead.wait(5)
    assert not dialer.healthy(r.clock.monotonic())
    assert r.step(dialer) == 0.0 and dialer.link.client is not first and dialer.ready.is_set()
    r.step(dialer)
    settle(dialer)
    assert len(r.attempts()) == 1  # concurrent_call = 1: B waits for the next turn
    r.step(dialer)
    settle(dialer)
    assert [row[2] for row in r.attempts()] == ["USER_BUSY", "USER_BUSY"]


def test_a_call_not_yet_in_show_channels_at_a_reconnect_is_reattached_not_recalled_beside_itself(rig):
    # The switch lists a new channel 100 simulated seconds (1 s real) after making it, as its core
    # database can lag the live sessions: the reconnect's first listing misses the live call.
    r = rig({**LISTENS, "show_channels_lag": 100}, recall_delay=60)
    r.import_customers([("A", ["0901000001"])])
    dialer = r.dialer()
    r.step(dialer)
    r.step(dialer)
    [active] = dialer.calls.values()
    uuid = active.call.claim.uuid
    wait_until(lambda: uuid in r.sim.channels, 5)
    first = dialer.link.client
    r.sim.drop_connections()
    assert first.dead.wait(5)
    assert r.step(dialer) == 0.0 and dialer.ready.is_set()
    r.clock.advance(61)  # past the recall delay of a call closed as lost
    r.step(dialer)
    settle(dialer)
    assert r.sim.wait_idle(15)  # a channel left unwatched ends at its park_timeout
    customer_of = {
        uuid: ext_id
        for uuid, ext_id in query(
            r.db_path, "SELECT a.uuid, c.ext_id FROM attempt a JOIN customer c ON c.id = a.customer_id"
        )
    }
    assert overlapping_calls(r.sim.records, customer_of) == []
    assert r.originated() == [uuid]
    assert r.attempts() == [("0901000001", "done", "NORMAL_CLEARING", "success")]


def _up_on_the_switch(r, claim, tagged=True) -> str:
    """A channel for `claim` on the simulator, originated as the dialer does (with our tag) or
    as another program would (without it)."""
    client = r.connect()
    try:
        if tagged:
            command = commands.originate(
                uuid=claim.uuid,
                number=claim.number,
                attempt_id=claim.attempt_id,
                queue_id=claim.queue_id,
                dial_string="sofia/gateway/carrier/{number}",
                caller_id="",
                originate_timeout=30,
                park_timeout=600,
            )
        else:
            command = f"originate {{origination_uuid={claim.uuid}}}sofia/gateway/carrier/{claim.number} &park()"
        assert client.api(command).startswith("+OK"), command
    finally:
        client.close()
    return claim.uuid


def test_reconciliation_kills_a_channel_of_ours_no_open_attempt_has_and_no_other(rig, caplog):
    r = rig(LISTENS)
    r.import_customers([("A", ["0901000001"]), ("B", ["0902000001"]), ("C", ["0903000001"])])
    queue = Ledger(r.db).running_queues()[0]
    claims = {}
    for node in ("pbx1", "pbx2", "pbx2"):
        [claims[len(claims)]] = Ledger(r.db, node=node).claim_many(
            queue, 1, now=r.clock.wall, day_start=0, next_day=r.clock.wall + 86400, daily_cap=5
        )
    orphan = _up_on_the_switch(r, claims[0])  # pbx1's call, recorded while its channel would not die
    Ledger(r.db).finish(claims[0], records.CallReport(None, r.clock.wall, 0.0, "NORMAL_CLEARING"), recall_delay=60)
    other_node = _up_on_the_switch(r, claims[1])  # pbx2's open call on the same switch
    foreign = _up_on_the_switch(r, dataclasses.replace(claims[2], uuid="not-ours-1"), tagged=False)
    dialer = r.dialer(Ledger(r.db, node="pbx1"))
    caplog.set_level(logging.WARNING, logger="autocall.reconcile")
    r.step(dialer)
    wait_until(lambda: orphan not in r.sim.channels, 5)
    assert other_node in r.sim.channels and foreign in r.sim.channels
    assert [rec.getMessage() for rec in caplog.records if "no open attempt has it" in rec.getMessage()] == [
        f"channel {orphan} (attempt {claims[0].attempt_id}) is up on FreeSWITCH but no open attempt has it;"
        " killed it (uuid_kill: +OK)"
    ]
    assert not dialer.calls  # pbx2's call is pbx2's to follow


def test_the_loop_counts_as_come_round_at_every_step(rig):
    r = rig(BUSY)
    dialer = r.dialer()
    r.clock.advance(1000)
    assert dialer.wedged(r.clock.monotonic())
    r.step(dialer)
    assert not dialer.wedged(r.clock.monotonic())


def test_a_password_the_switch_refuses_three_times_stops_the_dialer_with_a_config_error(rig):
    r = rig(BUSY)
    r.password = "wrong"
    dialer = r.dialer()
    for _ in range(2):
        pause = r.step(dialer)
        assert pause > 0 and not dialer.ready.is_set()
        r.clock.advance(pause)
    with pytest.raises(ConfigError, match="esl.password"):
        r.step(dialer)


class SignallingLedger(Ledger):
    """The real ledger; `finished` is set when a call result has been written."""

    def __init__(self, db):
        super().__init__(db)
        self.finished = gevent.event.Event()

    def finish(self, *args, **kwargs):
        try:
            return super().finish(*args, **kwargs)
        finally:
            self.finished.set()


def test_run_dials_until_stop_and_then_drains(rig):
    r = rig(BUSY)
    r.import_customers([("A", ["0901000001"])])
    ledger = SignallingLedger(r.db)
    dialer = r.dialer(ledger)
    runner = gevent.spawn(dialer.run)
    assert ledger.finished.wait(10), "no call recorded"
    dialer.stop()
    runner.get(timeout=10)
    assert r.attempts() == [("0901000001", "done", "USER_BUSY", "retry")]
    assert not dialer.link.up


def test_the_outage_line_tells_its_time_in_the_configured_zone(rig, monkeypatch):
    # Found by the careless-operator review: `autocall status` headed its view in the config's
    # zone but dated the outage in the host's (UTC): a 4 s outage read as 7 hours old.
    r = rig(BUSY, timezone="Asia/Ho_Chi_Minh")
    dialer = r.dialer()
    dialer.outage.clock = lambda: 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, 15:00 in Hanoi
    dialer.outage.failed(StoreUnavailable("the disk is full"))
    with monkeypatch.context() as host:
        host.setenv("TZ", "UTC")  # the host's zone, wherever the test runs
        time.tzset()
        line = dialer.describe()
    time.tzset()
    assert line.startswith("database unavailable since 15:00:00 (the disk is full)")
