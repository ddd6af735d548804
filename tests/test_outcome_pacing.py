"""The pure rules: cause classes, recall decisions, token bucket, calling window."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from daemon import outcome
from daemon.outcome import Progress, next_state
from daemon.pacing import WALL_STEP, CallingWindow, TokenBucket, WallWatch, bucket_for

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.mark.parametrize(
    "cause,expected",
    [
        ("USER_BUSY", outcome.RETRY),
        ("NO_ANSWER", outcome.RETRY),
        ("NO_USER_RESPONSE", outcome.RETRY),
        ("RECOVERY_ON_TIMER_EXPIRE", outcome.RETRY),
        ("NORMAL_TEMPORARY_FAILURE", outcome.RETRY),
        ("CALL_REJECTED", outcome.RETRY),
        ("SOMETHING_NEW", outcome.RETRY),
        (None, outcome.RETRY),
        ("UNALLOCATED_NUMBER", outcome.DEAD_NUMBER),
        ("INVALID_NUMBER_FORMAT", outcome.DEAD_NUMBER),
        ("NUMBER_CHANGED", outcome.DEAD_NUMBER),
        ("INVALID_GATEWAY", outcome.CONFIG_ERROR),
        ("INVALID_PROFILE", outcome.CONFIG_ERROR),
    ],
)
def test_unanswered_calls_are_classed_by_cause(cause, expected):
    assert outcome.classify(answered=False, talk_seconds=0, cause=cause, min_talk=3) == expected


def test_answered_is_decided_by_answer_not_by_cause():
    # NORMAL_CLEARING on an unanswered call is a retry; USER_BUSY after an answer is a talk.
    assert outcome.classify(answered=False, talk_seconds=0, cause="NORMAL_CLEARING", min_talk=3) == outcome.RETRY
    assert outcome.classify(answered=True, talk_seconds=10, cause="USER_BUSY", min_talk=3) == outcome.SUCCESS
    assert outcome.classify(answered=True, talk_seconds=2.9, cause="NORMAL_CLEARING", min_talk=3) == outcome.SHORT
    assert outcome.classify(answered=True, talk_seconds=3.0, cause="NORMAL_CLEARING", min_talk=3) == outcome.SUCCESS
    assert (
        outcome.classify(answered=True, talk_seconds=50, cause="X", min_talk=3, interrupted=True) == outcome.INTERRUPTED
    )


def step(progress, number, result, max_recall=2, on_dnc=False):
    return next_state(progress, number, result, max_recall_count=max_recall, recall_delay=600, on_dnc=on_dnc)


P = Progress(("A", "B", "C"), 0, 0, frozenset())


def test_a_failed_number_moves_to_the_next_at_once():
    n = step(P, "A", outcome.RETRY)
    assert (n.state, n.number_index, n.round, n.delay) == ("pending", 1, 0, 0.0)


def test_a_round_without_success_waits_the_recall_delay_then_starts_over():
    n = step(Progress(("A", "B", "C"), 2, 0, frozenset()), "C", outcome.SHORT)
    assert (n.state, n.number_index, n.round, n.delay) == ("pending", 0, 1, 600)


def test_after_max_recall_count_more_rounds_the_customer_fails():
    n = step(Progress(("A",), 0, 2, frozenset()), "A", outcome.RETRY, max_recall=2)
    assert (n.state, n.round) == ("failed", 3)
    n = step(Progress(("A",), 0, 0, frozenset()), "A", outcome.RETRY, max_recall=0)
    assert n.state == "failed"


def test_success_ends_the_customer_whatever_the_round():
    assert step(Progress(("A", "B"), 1, 1, frozenset()), "B", outcome.SUCCESS).state == "success"


def test_a_dead_number_is_skipped_in_later_rounds():
    n = step(P, "A", outcome.DEAD_NUMBER)
    assert (n.state, n.number_index, n.dead_numbers) == ("pending", 1, frozenset({"A"}))
    n = step(Progress(("A", "B", "C"), 2, 0, frozenset({"A"})), "C", outcome.RETRY)
    assert (n.state, n.number_index, n.round) == ("pending", 1, 1)


def test_all_numbers_dead_fails_at_once():
    n = step(Progress(("A", "B"), 1, 0, frozenset({"A"})), "B", outcome.DEAD_NUMBER)
    assert (n.state, n.dead_numbers) == ("failed", frozenset({"A", "B"}))


def test_config_errors_and_lost_calls_do_not_use_up_the_customer():
    n = step(P, "A", outcome.CONFIG_ERROR)
    assert (n.state, n.number_index, n.round, n.delay) == ("pending", 0, 0, None)
    n = step(P, "A", outcome.INTERRUPTED)
    assert (n.state, n.number_index, n.round, n.delay) == ("pending", 0, 0, 600)


def test_dnc_during_a_call_ends_the_customer_dnc_unless_it_succeeded():
    assert step(P, "A", outcome.RETRY, on_dnc=True).state == "dnc"
    assert step(P, "A", outcome.SUCCESS, on_dnc=True).state == "success"


# --- pacing ---


def test_token_bucket_allows_the_rate_and_no_more():
    bucket = TokenBucket(rate=10, burst=1, now=0.0)
    taken = sum(bucket.take(t / 1000) for t in range(0, 10_000))  # every ms for 10 s
    assert taken in (100, 101)
    assert bucket.wait(10.0) > 0


def test_bucket_for_bursts_a_tenth_of_a_second():
    bucket = bucket_for(500, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(100)) == 50
    bucket.give_back()
    assert bucket.take(0.0)


def local(*args):
    return dt.datetime(*args, tzinfo=HCM).timestamp()


WINDOW = CallingWindow(dt.time(7), dt.time(21), HCM)


@pytest.mark.parametrize(
    "when,is_open",
    [
        ((2026, 11, 27, 6, 59), False),
        ((2026, 11, 27, 7, 0), True),
        ((2026, 11, 27, 20, 59), True),
        ((2026, 11, 27, 21, 0), False),
        ((2026, 11, 27, 23, 30), False),
    ],
)
def test_calling_window_is_local_time(when, is_open):
    assert WINDOW.is_open(local(*when)) is is_open


def test_window_reopens_at_seven_the_next_morning():
    assert WINDOW.next_open(local(2026, 11, 27, 22, 0)) == local(2026, 11, 28, 7, 0)
    assert WINDOW.next_open(local(2026, 11, 27, 5, 0)) == local(2026, 11, 27, 7, 0)
    assert WINDOW.next_open(local(2026, 11, 27, 9, 0)) == local(2026, 11, 27, 9, 0)
    assert WINDOW.day_start(local(2026, 11, 27, 9, 0)) == local(2026, 11, 27)
    assert WINDOW.next_day_open(local(2026, 11, 27, 9, 0)) == local(2026, 11, 28, 7, 0)


def test_a_window_across_midnight():
    night = CallingWindow(dt.time(22), dt.time(2), HCM)
    assert night.is_open(local(2026, 11, 27, 23, 0)) and night.is_open(local(2026, 11, 28, 1, 0))
    assert not night.is_open(local(2026, 11, 28, 3, 0))


def test_take_up_to_takes_only_whole_tokens_and_give_back_returns_them():
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert bucket.take_up_to(3, 0.0) == 3
    assert bucket.take_up_to(10, 0.0) == 2
    assert bucket.take_up_to(10, 0.05) == 0
    bucket.give_back(2)
    assert bucket.take_up_to(10, 0.05) == 2


def test_wall_watch_reports_a_step_back_of_the_wall_clock_once():
    watch = WallWatch()
    assert watch.step(1_000_000.0, 50.0) is None  # the first look has nothing to compare with
    assert watch.step(1_000_000.0 + 1 - 600, 51.0) == -600
    assert watch.step(1_000_000.0 + 2 - 600, 52.0) is None  # the same step is not reported again


def test_wall_watch_ignores_drift_up_to_wall_step_seconds():
    watch = WallWatch()
    watch.step(0.0, 0.0)
    assert watch.step(30.0 + WALL_STEP, 30.0) is None
    assert watch.step(61.0 + 2 * WALL_STEP + 0.1, 61.0) == pytest.approx(WALL_STEP + 0.1)
