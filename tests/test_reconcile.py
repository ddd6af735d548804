"""daemon/reconcile.py: the store's open attempts against the switch's channels."""

import json

import pytest

from daemon.esl import ESLError, ESLEvent
from daemon.reconcile import LISTING_LAG, LOST, RELIST, apply, channel_rows, plan
from daemon.store.records import Claim
from daemon.store.schema import StoreUnavailable

NOW = 1_700_000_000.0
ANSWERED = NOW - 20


def claim(uuid, answered_at=None, slot=None, result=None):
    return Claim(1, uuid, "job-" + uuid, "0901000001", 7, "A", {}, 3, "Q", "IVR-1", 10, answered_at, slot, None, result)


@pytest.mark.parametrize(
    "row, stored, answered_at, newly, parked",
    [
        ({"callstate": "ACTIVE", "application": "park"}, ANSWERED, ANSWERED, False, True),  # answered, known
        ({"callstate": "ACTIVE", "application": "playback"}, None, NOW, True, True),  # answered meanwhile
        ({"callstate": "RINGING", "application": ""}, None, None, False, False),  # still ringing
        ({"callstate": "EARLY"}, None, None, False, False),  # no application yet
        ({}, ANSWERED, ANSWERED, False, False),  # hung up while listed
    ],
    ids=["answered", "answered-meanwhile", "ringing", "early", "hung-up-while-listed"],
)
def test_a_channel_the_switch_still_has_is_reattached(row, stored, answered_at, newly, parked):
    reattach, lost = plan([claim("u1", stored)], {"u1": row}, NOW)
    assert lost == []
    [item] = reattach
    assert (item.claim.uuid, item.answered_at, item.newly_answered, item.parked) == ("u1", answered_at, newly, parked)
    assert item.state == row.get("callstate", "")


@pytest.mark.parametrize("stored", [None, ANSWERED], ids=["never-answered", "answered"])
def test_a_channel_the_switch_no_longer_has_is_closed_lost_and_interrupted(stored):
    reattach, lost = plan([claim("gone", stored)], {"other": {"callstate": "ACTIVE"}}, NOW)
    assert reattach == []
    [(closed, report)] = lost
    assert closed.uuid == "gone"
    assert (report.cause, report.interrupted, report.ended_at, report.answered_at) == (LOST, True, NOW, stored)
    assert report.talk_seconds == 0.0


def test_each_attempt_lands_in_exactly_one_list_in_store_order():
    claims = [claim("a"), claim("b"), claim("c")]
    reattach, lost = plan(claims, {"b": {"callstate": "RINGING"}}, NOW)
    assert [r.claim.uuid for r in reattach] == ["b"]
    assert [c.uuid for c, _ in lost] == ["a", "c"]


def test_nothing_open_plans_nothing():
    assert plan([], {"u1": {"callstate": "ACTIVE"}}, NOW) == ([], [])


def test_an_empty_channel_list_has_no_rows_key():
    assert channel_rows('{"row_count": 0}') == {}


def test_channel_rows_are_keyed_by_uuid():
    body = json.dumps({"row_count": 2, "rows": [{"uuid": "a", "callstate": "ACTIVE"}, {"uuid": "b"}]})
    assert channel_rows(body) == {"a": {"uuid": "a", "callstate": "ACTIVE"}, "b": {"uuid": "b"}}


def test_a_reply_that_is_not_json_is_an_esl_error():
    with pytest.raises(ESLError, match="show channels: unexpected reply"):
        channel_rows("-ERR no reply")


class ListingClient:
    """A switch whose channel list is `rows`; `during` are events it sends while listing. Its
    live sessions (`uuid_exists`) are those listed and `unlisted`, which are listed only after
    the first `lag` listings (None: never)."""

    def __init__(self, rows, during=(), unlisted=(), lag=None, tags=None, results=None):
        self.rows, self.during, self.handlers, self.commands = rows, during, {}, []
        self.unlisted, self.lag, self.tags = list(unlisted), lag, tags or {}  # uuid -> autocall_attempt
        self.results = results or {}  # uuid -> autocall_result

    def subscribe_channel(self, uuid, handler):
        self.handlers[uuid] = handler

    def unsubscribe_channel(self, uuid):
        self.handlers.pop(uuid, None)

    def api(self, command):
        self.commands.append(command)
        word, _, arg = command.partition(" ")
        if word == "uuid_exists":
            listed = {row["uuid"] for row in self.rows + self.unlisted}
            return "true" if arg in listed else "false"
        if word == "uuid_getvar":
            uuid, _, name = arg.partition(" ")
            values = {"autocall_attempt": self.tags, "autocall_result": self.results}.get(name, {})
            return values.get(uuid, "_undef_")
        if word == "uuid_kill":
            return "+OK\n"
        for event in self.during:
            self.handlers[event.unique_id](event)
        listings = self.commands.count(SHOW)
        rows = self.rows + (self.unlisted if self.lag is not None and listings > self.lag else [])
        return json.dumps({"row_count": len(rows), "rows": rows})


SHOW = "show channels as json"


def _run_apply(client, claims, unowned=lambda uuids: set()):
    followed, closed = [], []
    apply(
        client,
        claims,
        NOW,
        follow=lambda item, heard: followed.append((item, heard)),
        close=lambda c, report: closed.append((c.uuid, report.cause)),
        unowned=unowned,
        sleep=lambda seconds: None,
    )
    return followed, closed


def test_apply_follows_live_calls_with_what_was_heard_and_closes_the_rest():
    answer = ESLEvent([("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "live")])
    client = ListingClient([{"uuid": "live", "callstate": "ACTIVE", "application": "park"}], during=[answer])
    followed, closed = _run_apply(client, [claim("live"), claim("gone")])
    [(item, heard)] = followed
    assert item.claim.uuid == "live" and heard == [answer]
    assert closed == [("gone", LOST)]
    assert "gone" not in client.handlers and client.commands == [SHOW, "uuid_exists gone"]


def test_a_reattached_call_takes_the_result_its_channel_carries_over_the_stores():
    # "newer": the daemon stopped before its write of promise_to_pay landed; "none": no result yet.
    rows = [{"uuid": uuid, "callstate": "ACTIVE", "application": "park"} for uuid in ("newer", "none", "same")]
    client = ListingClient(rows, results={"newer": "promise_to_pay", "same": "wants_agent"})
    claims = [
        claim("newer", ANSWERED, 1, "wants_agent"),
        claim("none", ANSWERED, 2),
        claim("same", ANSWERED, 3, "wants_agent"),
    ]
    followed, closed = _run_apply(client, claims)
    assert closed == []
    assert [(item.claim.uuid, item.claim.result) for item, _ in followed] == [
        ("newer", "promise_to_pay"),
        ("none", None),
        ("same", "wants_agent"),
    ]
    assert [c for c in client.commands if c.startswith("uuid_getvar")] == [
        f"uuid_getvar {uuid} autocall_result" for uuid in ("newer", "none", "same")
    ]


def test_a_call_that_hangs_up_while_channels_are_listed_is_followed_not_lost():
    hangup = ESLEvent([("Event-Name", "CHANNEL_HANGUP_COMPLETE"), ("Unique-ID", "ending")])
    followed, closed = _run_apply(ListingClient([], during=[hangup]), [claim("ending", ANSWERED)])
    assert closed == []
    [(item, heard)] = followed
    assert item.claim.uuid == "ending" and heard == [hangup]


def test_apply_with_nothing_open_and_no_channel_lists_once_and_asks_the_store_nothing():
    client = ListingClient([])
    assert _run_apply(client, [], unowned=pytest.fail) == ([], [])
    assert client.commands == [SHOW]


def test_a_channel_of_ours_no_open_attempt_has_is_killed_and_every_other_left_be(caplog):
    # "orphan": its attempt closed (a call recorded while its channel would not die); "foreign":
    # another program's, no attempt in our store either; "pbx2": another node's open call.
    rows = [{"uuid": uuid, "callstate": "ACTIVE"} for uuid in ("live", "orphan", "foreign", "pbx2")]
    client = ListingClient(rows, tags={"live": "1", "orphan": "5", "pbx2": "9"})
    asked = []

    def unowned(uuids):
        asked.append(uuids)
        return {"orphan", "foreign"}

    followed, closed = _run_apply(client, [claim("live")], unowned=unowned)
    assert [item.claim.uuid for item, _ in followed] == ["live"] and closed == []
    assert asked == [["orphan", "foreign", "pbx2"]]  # never our own open call
    assert [c for c in client.commands if c.startswith("uuid_kill")] == ["uuid_kill orphan"]
    assert "channel orphan (attempt 5) is up on FreeSWITCH but no open attempt has it; killed it" in caplog.text


def test_a_store_that_cannot_say_which_channels_are_orphans_stops_reconciliation_before_it_acts():
    def unreadable(uuids):
        raise StoreUnavailable("database locked")

    client = ListingClient([{"uuid": "x"}], tags={"x": "5"})
    with pytest.raises(StoreUnavailable):
        _run_apply(client, [claim("gone")], unowned=unreadable)
    assert client.commands == [SHOW]


def test_a_live_call_the_listing_lags_on_is_followed_once_listed_not_closed_lost():
    # uuid_exists reads the live sessions, show channels the core database the SQL thread fills later.
    row = {"uuid": "new", "callstate": "ACTIVE", "application": "park"}
    client = ListingClient([], unlisted=[row], lag=2)
    followed, closed = _run_apply(client, [claim("new")])
    assert closed == []
    [(item, _)] = followed
    assert (item.claim.uuid, item.state, item.newly_answered, item.parked) == ("new", "ACTIVE", True, True)
    assert client.commands == [SHOW, "uuid_exists new", SHOW, SHOW]  # listed from the third listing on


def test_a_live_call_never_listed_is_followed_with_its_state_unknown(caplog):
    client = ListingClient([], unlisted=[{"uuid": "stuck", "callstate": "ACTIVE"}])
    followed, closed = _run_apply(client, [claim("stuck", ANSWERED)])
    assert closed == []
    [(item, _)] = followed
    assert (item.state, item.answered_at, item.parked) == ("", ANSWERED, False)
    assert client.commands.count(SHOW) == 1 + LISTING_LAG / RELIST
    assert "did not list it for 5s; following it" in caplog.text


def test_a_call_that_hangs_up_while_the_listing_lags_is_listed_no_more():
    hangup = ESLEvent([("Event-Name", "CHANNEL_HANGUP_COMPLETE"), ("Unique-ID", "brief")])
    client = ListingClient([], during=[hangup], unlisted=[{"uuid": "brief"}])
    followed, closed = _run_apply(client, [claim("brief")])
    assert closed == [] and [item.claim.uuid for item, _ in followed] == ["brief"]
    assert client.commands.count(SHOW) == 1
