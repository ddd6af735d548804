"""`autocall webhooks list|retry|replay`: the operator's view of the outbox (daemon/store/outbox.py)."""

import argparse
import contextlib
import datetime as dt
import re
import time

from daemon import config as config_mod
from daemon.errors import ConfigError
from daemon.store import outbox, schema
from daemon.store import url as db_url

_AGO = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_command(commands):
    parser = commands.add_parser(
        'webhooks',
        help='list, retry or replay the deliveries of events to the webhooks',
        description='The events autocall-notifier delivers (customer.finished, attempt.finished, '
        'queue.stopped, queue.finished), one delivery per endpoint: list them, send dead ones '
        'again, or dispatch past events once more (receivers see the same event ids again).',
        epilog='Examples: autocall webhooks list --state dead; autocall webhooks retry --dead; '
        'autocall webhooks replay --since 2h. Exit status 0 done, 2 a database that cannot be '
        'opened or a wrong usage.',
    )
    actions = parser.add_subparsers(dest='action', required=True, metavar='ACTION')
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument('--config', metavar='PATH', help='config file (default: $AUTOCALL_CONFIG and $AUTOCALL_DB)')
    listing = actions.add_parser('list', parents=[where], help='the latest deliveries, newest first')
    listing.add_argument('--state', choices=(outbox.WAITING, outbox.DELIVERED, outbox.DEAD))
    listing.add_argument('--limit', type=int, default=50, metavar='N', help='how many (default 50)')
    listing.set_defaults(run=_list)
    retry = actions.add_parser(
        'retry', parents=[where], help='dead deliveries due again now, with a fresh retry window'
    )
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument('ids', nargs='*', type=int, default=[], metavar='ID', help='delivery ids (from list)')
    which.add_argument('--dead', action='store_true', help='every dead delivery')
    retry.set_defaults(run=_retry)
    replay = actions.add_parser(
        'replay', parents=[where], help='dispatch the events since a time again, to the webhooks configured now'
    )
    replay.add_argument(
        '--since',
        required=True,
        metavar='TIME',
        help='"YYYY-MM-DD HH:MM" in the configured time zone, or an age such as 90m, 2h, 1d',
    )
    replay.set_defaults(run=_replay)


def _list(args, out, err) -> int:
    def show(config, db):
        rows = outbox.deliveries(db, state=args.state, limit=args.limit)
        for r in rows:
            when = dt.datetime.fromtimestamp(r['created_at'], config.tz).strftime('%Y-%m-%d %H:%M:%S')
            last = f" last {r['last_status'] or '-'} {r['last_error'] or ''}".rstrip()
            print(
                f"{r['id']:>8} {when} event {r['event_id']} {r['type'] or '(pruned)'} -> {r['endpoint']} "
                f"{r['state']} tries {r['tries']}{last}",
                file=out,
            )
        backlog = outbox.backlog(db)
        print(
            f'{backlog.waiting} waiting, {backlog.dead} dead, {backlog.undispatched} events not yet dispatched',
            file=out,
        )

    return _with_db(args, err, show, readonly=True)


def _retry(args, out, err) -> int:
    def retry(config, db):
        with db.atomic():
            n = outbox.retry(db, now=time.time(), ids=None if args.dead else args.ids)
        print(f'{n} deliveries due again now', file=out)

    return _with_db(args, err, retry)


def _replay(args, out, err) -> int:
    def replay(config, db):
        since = _since(args.since, config.tz)
        with db.atomic():
            n = outbox.replay(db, since=since)
        stamp = dt.datetime.fromtimestamp(since, config.tz).strftime('%Y-%m-%d %H:%M')
        print(f'{n} events since {stamp} dispatched again at the notifier\'s next turn', file=out)

    return _with_db(args, err, replay)


def _since(text: str, tz) -> float:
    ago = _AGO.fullmatch(text.strip())
    if ago:
        return time.time() - int(ago.group(1)) * _UNIT[ago.group(2)]
    try:
        return dt.datetime.strptime(text.strip(), '%Y-%m-%d %H:%M').replace(tzinfo=tz).timestamp()
    except ValueError:
        raise ConfigError(f'--since {text!r}: expected "YYYY-MM-DD HH:MM" or an age such as 90m, 2h, 1d') from None


def _with_db(args, err, action, readonly=False) -> int:
    try:
        config = config_mod.load(args.config)
        where = db_url.of(config.database)
        db = schema.open_readonly(where) if readonly else schema.open_existing(where)
    except (ConfigError, schema.StoreError) as exc:
        print(f'autocall: {exc}', file=err)
        return 2
    with contextlib.closing(db):
        try:
            action(config, db)
        except (ConfigError, schema.StoreError) as exc:
            print(f'autocall: {exc}', file=err)
            return 2
    return 0
