"""Blackout days: closed dates and weekdays in the calling window, pure with an injected clock
across Tết 2027 (its first day is Saturday 6 February 2027), the config keys, and
`autocall calendar check`."""

import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest

from daemon import cli, config_values
from daemon.config import ConfigError, _build
from daemon.pacing import CallingWindow

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
TET = config_values.closed_dates(["2027-02-05..2027-02-10"])  # 29 Tết to mùng 5
WINDOW = CallingWindow(dt.time(7), dt.time(21), HCM, closed_dates=TET, closed_weekdays=frozenset({6}))


def local(*args):
    return dt.datetime(*args, tzinfo=HCM).timestamp()


@pytest.mark.parametrize(
    "when,is_open",
    [
        ((2027, 2, 4, 20, 59), True),  # the last evening before Tết
        ((2027, 2, 5, 9, 0), False),
        ((2027, 2, 6, 12, 0), False),  # mùng 1
        ((2027, 2, 10, 20, 0), False),
        ((2027, 2, 11, 7, 0), True),
        ((2027, 2, 14, 10, 0), False),  # a Sunday
        ((2027, 2, 15, 10, 0), True),
    ],
)
def test_no_call_starts_on_a_closed_date_or_weekday(when, is_open):
    assert WINDOW.is_open(local(*when)) is is_open


def test_the_window_reopens_on_the_first_open_day_after_tet():
    assert WINDOW.next_open(local(2027, 2, 4, 21, 0)) == local(2027, 2, 11, 7, 0)
    assert WINDOW.next_open(local(2027, 2, 7, 10, 0)) == local(2027, 2, 11, 7, 0)
    assert WINDOW.next_open(local(2027, 2, 11, 8, 0)) == local(2027, 2, 11, 8, 0)


def test_a_customer_at_its_daily_cap_before_tet_waits_until_after_it():
    assert WINDOW.next_day_open(local(2027, 2, 4, 15, 0)) == local(2027, 2, 11, 7, 0)
    assert WINDOW.next_day_open(local(2027, 2, 12, 15, 0)) == local(2027, 2, 13, 7, 0)
    assert WINDOW.next_day_open(local(2027, 2, 13, 15, 0)) == local(2027, 2, 15, 7, 0)  # Sunday skipped


def test_a_window_across_midnight_closes_at_midnight_into_a_closed_date():
    night = CallingWindow(dt.time(22), dt.time(2), HCM, closed_dates=frozenset({dt.date(2027, 2, 6)}))
    assert night.is_open(local(2027, 2, 5, 23, 0))
    assert not night.is_open(local(2027, 2, 6, 1, 0))  # after midnight, on the closed date
    assert not night.is_open(local(2027, 2, 6, 22, 30))
    assert night.is_open(local(2027, 2, 7, 0, 30))  # the next date opens at its midnight
    assert night.next_open(local(2027, 2, 6, 0, 0)) == local(2027, 2, 7, 0, 0)


def test_spans_merge_across_midnight_and_skip_closed_days():
    around = CallingWindow(dt.time(0), dt.time.max, HCM, closed_dates=frozenset({dt.date(2027, 2, 6)}))
    spans = around.spans(local(2027, 2, 4, 12, 0))
    assert next(spans) == (local(2027, 2, 3), local(2027, 2, 6))  # begun before now
    assert next(spans)[0] == local(2027, 2, 7)


def test_without_closed_days_the_window_is_as_before():
    plain = CallingWindow(dt.time(7), dt.time(21), HCM)
    assert plain.next_open(local(2027, 2, 5, 22, 0)) == local(2027, 2, 6, 7, 0)
    assert plain.next_day_open(local(2027, 2, 5, 9, 0)) == local(2027, 2, 6, 7, 0)


def test_config_reads_closed_dates_ranges_and_weekdays():
    dialer = _build(
        {"dialer": {"closed_dates": ["2027-02-05..2027-02-07", "2027-04-30"], "closed_weekdays": ["Sunday"]}},
        base=None,
        origins={},
    ).dialer
    assert dialer.closed_dates == {dt.date(2027, 2, 5), dt.date(2027, 2, 6), dt.date(2027, 2, 7), dt.date(2027, 4, 30)}
    assert dialer.closed_weekdays == {6}


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("closed_dates", "2027-02-05", "expected a list"),
        ("closed_dates", ["2027-02-30"], "expected a date"),
        ("closed_dates", ["2027-02-10..2027-02-05"], "expected a date"),
        ("closed_dates", ["2020-01-01..2035-01-01"], "more than"),
        ("closed_weekdays", ["sun"], "weekday names"),
        ("closed_weekdays", list(config_values.WEEKDAYS), "never open"),
    ],
)
def test_bad_closed_days_are_refused_naming_the_key(key, value, message):
    with pytest.raises(ConfigError, match=f"dialer.{key}: .*{message}"):
        _build({"dialer": {key: value}}, base=None, origins={})


def test_calendar_check_lists_the_next_open_windows_across_tet(tmp_path):
    config = tmp_path / "autocall.toml"
    config.write_text('[dialer]\nclosed_dates = ["2027-02-05..2027-02-10"]\nclosed_weekdays = ["sunday"]\n')
    out, err = io.StringIO(), io.StringIO()
    args = cli.build_parser().parse_args(
        ["calendar", "check", "--config", str(config), "--from", "2027-02-04T10:00", "--days", "11"]
    )
    assert args.run(args, out, err) == 0
    lines = out.getvalue().splitlines()
    assert lines[1] == "next call may start: Thu 2027-02-04 10:00"
    assert lines[2:] == [
        "Thu 2027-02-04  open 10:00-21:00",
        *[f"{d:%a %Y-%m-%d}  closed (closed date)" for d in (dt.date(2027, 2, n) for n in range(5, 11))],
        "Thu 2027-02-11  open 07:00-21:00",
        "Fri 2027-02-12  open 07:00-21:00",
        "Sat 2027-02-13  open 07:00-21:00",
        "Sun 2027-02-14  closed (closed weekday)",
    ]
