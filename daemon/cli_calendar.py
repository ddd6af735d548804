"""`autocall calendar check`: when the dialer may call next, as the config says (the calling
window, its time zone, closed dates and closed weekdays)."""

import argparse
import datetime as dt
import time

from daemon import config as config_mod
from daemon import config_values
from daemon.errors import ConfigError
from daemon.pacing import CallingWindow

DAY = dt.timedelta(days=1)


def add_command(commands):
    parser = commands.add_parser(
        'calendar',
        help='the next open calling windows (hours, closed dates, closed weekdays)',
        description='Show when calls may start, from the [dialer] settings of the config: window_start, '
        'window_end, timezone, closed_dates and closed_weekdays.',
    )
    actions = parser.add_subparsers(dest='action', required=True, metavar='ACTION')
    check = actions.add_parser(
        'check',
        help='list the next open windows and the closed days between them',
        description='List the next open calling windows in local time, and each closed day between them '
        'with the reason.',
        epilog='Example: autocall calendar check --config /etc/autocall/autocall.toml --from 2027-02-01 --days 14',
    )
    check.add_argument('--config', metavar='PATH', help='the config file (default: $AUTOCALL_CONFIG)')
    check.add_argument(
        '--from',
        dest='start',
        metavar='DATE[THH:MM]',
        help='local date (and time) to look from, e.g. 2027-02-01 (default: now)',
    )
    check.add_argument('--days', type=int, default=14, metavar='N', help='local days to show (default 14)')
    check.set_defaults(run=run)


def run(args: argparse.Namespace, out, err) -> int:
    try:
        config = config_mod.load(args.config)
    except ConfigError as exc:
        print(f'autocall: {exc}', file=err)
        return 2
    window = config.calling_window()
    now = time.time()
    if args.start:
        try:
            start = dt.datetime.fromisoformat(args.start)
        except ValueError:
            print(f'autocall: --from: expected a local date YYYY-MM-DD[THH:MM], got {args.start!r}', file=err)
            return 2
        now = start.replace(tzinfo=window.tz).timestamp()
    if not 1 <= args.days <= 366:
        print('autocall: --days: between 1 and 366', file=err)
        return 2
    for line in describe(window, now, args.days):
        print(line, file=out)
    return 0


def describe(window: CallingWindow, now: float, days: int) -> list[str]:
    """The lines of `calendar check`: a header, then each local day from `now`'s on for `days`
    days, with its open span(s) (from `now` on) or why it is closed."""
    closed = ', '.join(config_values.WEEKDAYS[d] for d in sorted(window.closed_weekdays)) or 'none'
    lines = [
        f'calling window {config_values.hhmm(window.start)}-{config_values.hhmm(window.end)} {window.tz.key}; '
        f'closed weekdays: {closed}; closed dates: {len(window.closed_dates)}',
        f'next call may start: {dt.datetime.fromtimestamp(window.next_open(now), window.tz):%a %Y-%m-%d %H:%M}',
    ]
    day = dt.datetime.fromtimestamp(now, window.tz).date()
    for _ in range(days):
        reason = window.closed_on(day)
        spans = [(max(b, now), e) for b, e in window.day_spans(day) if e > now]
        if reason:
            lines.append(f'{day:%a %Y-%m-%d}  closed ({reason})')
        elif spans:
            lines.append(f'{day:%a %Y-%m-%d}  open {", ".join(_hours(window, b, e) for b, e in spans)}')
        else:
            lines.append(f'{day:%a %Y-%m-%d}  open hours over')
        day += DAY
    return lines


def _hours(window: CallingWindow, begin: float, end: float) -> str:
    b, e = (dt.datetime.fromtimestamp(t, window.tz) for t in (begin, end))
    return f'{b:%H:%M}-{"24:00" if e.date() > b.date() else f"{e:%H:%M}"}'
