"""`autocall migrate-db --to URL`: copy an installation's database into another, empty one
(SQLite to PostgreSQL, the usual move when a second dialer comes; daemon/store/transfer.py)."""

import argparse

from daemon import config as config_mod
from daemon.errors import ConfigError
from daemon.store import schema, transfer
from daemon.store import url as db_url


def add_command(commands):
    parser = commands.add_parser(
        'migrate-db',
        help='copy every queue, customer, attempt and DNC entry into another, empty database',
        description='Copy the whole database (every queue, customer, attempt, both DNC lists, and the '
        'events and deliveries of the webhooks, ids kept) into another database, which is created '
        'with the current schema and must be '
        'empty. Stop autocall-api and autocall-daemon first: what they write after the copy '
        'started is not copied. The copy is one transaction: if it fails, the destination is '
        'left as empty as it was. Afterwards point [database] url at the destination and start '
        'the services again.',
        epilog='Example: systemctl stop autocall-api autocall-daemon; '
        'AUTOCALL_DB_PASSWORD=... autocall migrate-db --config /etc/autocall/autocall.toml '
        '--to postgresql://autocall@db1/autocall. Exit status 0 copied, 1 the destination already '
        'holds rows, 2 a database that cannot be opened or a wrong usage.',
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        '--from', dest='source', metavar='PATH|URL', help='the database to copy (default: the config\'s)'
    )
    where.add_argument(
        '--config',
        metavar='PATH',
        help='take the database to copy from this config file (default: $AUTOCALL_CONFIG and $AUTOCALL_DB)',
    )
    parser.add_argument(
        '--to',
        required=True,
        metavar='URL|PATH',
        help='the database to copy into: a postgresql:// URL (password from $AUTOCALL_DB_PASSWORD '
        'or ~/.pgpass) or the path of a new SQLite file',
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, out, err) -> int:
    try:
        source = db_url.of(args.source or config_mod.load(args.config).database)
        dest = db_url.of(args.to)
    except ConfigError as exc:
        print(f'autocall: {exc}', file=err)
        return 2
    if str(source) == str(dest):
        print(f'autocall: {source} is both the source and the destination', file=err)
        return 2
    opened = []
    try:
        opened.append(schema.open_existing(source))
        opened.append(schema.open_database(dest))
        copied = transfer.copy_store(*opened, progress=_progress(err))
    except transfer.DestinationNotEmpty as exc:
        print(f'autocall: {dest}: {exc}', file=err)
        return 1
    except schema.StoreError as exc:
        print(f'autocall: {exc}', file=err)
        return 2
    finally:
        for db in opened:
            db.close()
    if not copied.get('queue'):
        print(f'autocall: warning: {source} held no queue; is it the database the services use?', file=err)
    summary = ', '.join(f'{n} {table}' for table, n in copied.items())
    print(f'copied {summary} from {source} to {dest}; point [database] url at it and start the services', file=out)
    return 0


def _progress(err):
    """Report each table's progress on `err`, a line per 10% (and its end)."""
    said: dict[str, int] = {}

    def report(table, done, total):
        tenth = done * 10 // total if total else 10
        if said.get(table) != tenth:
            said[table] = tenth
            print(f'{table}: {done}/{total}', file=err, flush=True)

    return report
