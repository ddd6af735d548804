"""`autocall users add|list|remove|password|role`: the accounts of the web console (api/ui/).

A password is never an argument (it would be in the shell's history and in `ps`): it is asked
twice on a terminal, else read as the first line of standard input
(`printf '%s\\n' "$PW" | autocall users add ana --role operator`).
"""

import argparse
import contextlib
import datetime as dt
import getpass
import os
import sys
import time

import peewee as pw

from daemon import config as config_mod
from daemon import passwords
from daemon.errors import ConfigError
from daemon.store import operators, schema
from daemon.store import url as db_url


def add_command(commands):
    parser = commands.add_parser(
        'users',
        help='accounts of the web console: add, list, remove, password, role',
        description='Accounts of the operator\'s web console (/ui/ of autocall-api), apart from the '
        'platform\'s API tokens. A viewer sees every page; an operator may also stop and start '
        'queues and add DNC ids. Passwords are asked on the terminal, or read from the first '
        'line of standard input, never given as arguments.',
        epilog='Examples: autocall users add ana --role operator; autocall users list. '
        'Exit status 0 done, 1 no such account or the name is taken, 2 a wrong usage, a refused '
        'password or a database that cannot be opened.',
    )
    actions = parser.add_subparsers(dest='action', required=True, metavar='ACTION')
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument('--config', metavar='PATH', help='config file (default: $AUTOCALL_CONFIG and $AUTOCALL_DB)')
    add = actions.add_parser('add', parents=[where], help='a new account (the password is asked)')
    add.add_argument('name', type=_name, metavar='NAME')
    add.add_argument('--role', required=True, choices=operators.ROLES)
    add.set_defaults(run=_add)
    listing = actions.add_parser('list', parents=[where], help='every account with its role')
    listing.set_defaults(run=_list)
    remove = actions.add_parser('remove', parents=[where], help='remove an account (its sessions end)')
    remove.add_argument('name', type=_name, metavar='NAME')
    remove.set_defaults(run=_remove)
    password = actions.add_parser('password', parents=[where], help='a new password (its sessions end)')
    password.add_argument('name', type=_name, metavar='NAME')
    password.set_defaults(run=_password)
    role = actions.add_parser('role', parents=[where], help='a new role (its sessions end)')
    role.add_argument('name', type=_name, metavar='NAME')
    role.add_argument('role', choices=operators.ROLES)
    role.set_defaults(run=_role)


def _name(text):
    if not operators.valid_name(text):
        raise argparse.ArgumentTypeError(
            f'{text!r}: a name is 1 to 64 letters, digits or . _ @ -, starting with a letter or digit'
        )
    return text


def _add(args, out, err) -> int:
    password = _read_password(err)
    if password is None:
        return 2

    def add(db):
        operators.add_user(db, args.name, args.role, passwords.hash_password(password), now=time.time())
        _audit(db, 'user.add', args.name, f'role {args.role}')

    return _write(args, err, add, f'account {args.name} added ({args.role})', out)


def _password(args, out, err) -> int:
    password = _read_password(err)
    if password is None:
        return 2

    def change(db):
        operators.change_user(db, args.name, password_hash=passwords.hash_password(password), now=time.time())
        _audit(db, 'user.password', args.name, None)

    return _write(args, err, change, f'password of {args.name} changed; its sessions ended', out)


def _role(args, out, err) -> int:
    def change(db):
        operators.change_user(db, args.name, role=args.role, now=time.time())
        _audit(db, 'user.role', args.name, f'role {args.role}')

    return _write(args, err, change, f'{args.name} is now {args.role}; its sessions ended', out)


def _remove(args, out, err) -> int:
    def remove(db):
        operators.remove_user(db, args.name)
        _audit(db, 'user.remove', args.name, None)

    return _write(args, err, remove, f'account {args.name} removed', out)


def _list(args, out, err) -> int:
    try:
        config = config_mod.load(args.config)
        db = schema.open_readonly(db_url.of(config.database))
    except (ConfigError, schema.StoreError) as exc:
        print(f'autocall: {exc}', file=err)
        return 2
    with contextlib.closing(db):
        accounts = operators.users(db)
    for user in accounts:
        since = dt.datetime.fromtimestamp(user['created_at'], config.tz).strftime('%Y-%m-%d %H:%M')
        print(f"{user['name']:<24} {user['role']:<9} since {since}", file=out)
    if not accounts:
        print('no account yet: autocall users add NAME --role viewer|operator', file=out)
    return 0


def _audit(db, action: str, name: str, detail: str | None):
    who = f'{_unix_user()} (autocall users)'
    operators.record(db, who, action, target=name, detail=detail, now=time.time())


def _unix_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f'uid {os.getuid()}'


def _write(args, err, action, said: str, out) -> int:
    try:
        config = config_mod.load(args.config)
        db = schema.open_existing(db_url.of(config.database))
    except (ConfigError, schema.StoreError) as exc:
        print(f'autocall: {exc}', file=err)
        return 2
    with contextlib.closing(db):
        try:
            with db.atomic():
                action(db)
        except (operators.UserExists, pw.IntegrityError):  # the second: made meanwhile by another `users add`
            print(f'autocall: an account {args.name} exists already (autocall users password {args.name})', file=err)
            return 1
        except operators.UserNotFound:
            print(f'autocall: no account {args.name} (autocall users list)', file=err)
            return 1
        except pw.DatabaseError as exc:
            print(f'autocall: {schema.store_error(exc, "database")}; nothing changed', file=err)
            return 2
    print(said, file=out)
    return 0


def _read_password(err, stdin=None) -> str | None:
    """The new password: asked twice on a terminal, else the first line of stdin; None (after
    saying why) when it is refused."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        password = getpass.getpass('password: ')
        if getpass.getpass('again: ') != password:
            print('autocall: the two passwords differ; nothing changed', file=err)
            return None
    else:
        password = stdin.readline().rstrip('\r\n')
    text = _as_utf8(password, getattr(stdin, 'encoding', None))
    if text is None:
        print('autocall: the password is not UTF-8 text; nothing changed', file=err)
        return None
    try:
        passwords.check_strength(text)
    except passwords.WeakPassword as exc:
        print(f'autocall: {exc}; nothing changed', file=err)
        return None
    return text


def _as_utf8(password: str, encoding: str | None) -> str | None:
    """`password` as the browser's UTF-8 form will send it, or None if it cannot be: Python
    reads stdin with `surrogateescape`, so bytes that are not text in the locale's encoding
    arrive as lone surrogates (and scrypt's `.encode()` would raise)."""
    try:
        password.encode()
        return password
    except UnicodeEncodeError:
        pass
    try:  # UTF-8 read through an ASCII locale (LC_ALL=C): its bytes, read as UTF-8
        return password.encode(encoding or 'utf-8', 'surrogateescape').decode()
    except (UnicodeError, LookupError):
        return None
