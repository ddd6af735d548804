"""`autocall`: the operator's command line.

    autocall templates check [NAME ...] [--esl [HOST:PORT]]  every problem, one line each
    autocall templates render NAME --customer JSON|@FILE  what one customer's call plays
    autocall status [--db PATH | --config PATH] [--queue CODE] [--watch [SECONDS]]
    autocall migrate-db --to URL [--from PATH|URL | --config PATH]  copy into an empty database
    autocall webhooks list|retry|replay              the deliveries of events to the webhooks
    autocall users add|list|remove|password|role     the web console's accounts (daemon/cli_users.py)
    autocall calendar check [--config PATH] [--from DATE] [--days N]  the next open calling windows

Exit status: 0 all good, 1 a template has problems or cannot be rendered (templates), the
queue asked for does not exist (status) or the destination already holds rows (migrate-db),
2 wrong usage, a database that cannot be read or FreeSWITCH not reachable (templates check --esl).
"""

import argparse
import contextlib
import json
import logging
import sys
import time

from daemon import cli_calendar, cli_migrate, cli_users, cli_webhooks, config_values, ivr, statefile, status
from daemon import config as config_mod
from daemon.errors import AutocallError, ConfigError
from daemon.esl import ESLClient, ESLConnectionLost, ESLError
from daemon.playable import SwitchFiles
from daemon.store import nodes, outbox
from daemon.store import url as db_url


def main(argv=None):
    """Entry point of the `autocall` console script; returns the exit status."""
    logging.basicConfig(level=logging.ERROR, format='autocall: %(message)s')  # the ESL client's own notes stay quiet
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.run(args, sys.stdout, sys.stderr)


def build_parser():
    """The argument parser: `templates`, `status`, `migrate-db`, `webhooks` and `users`."""
    parser = argparse.ArgumentParser(
        prog='autocall',
        description='Operate the autocall IVR dialer.',
        epilog='Run "autocall COMMAND --help" for the options of a command.',
    )
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    _add_templates_commands(commands)
    _add_status_command(commands)
    cli_migrate.add_command(commands)
    cli_webhooks.add_command(commands)
    cli_users.add_command(commands)
    cli_calendar.add_command(commands)
    return parser


def _add_templates_commands(commands):
    templates = commands.add_parser(
        'templates',
        help='check IVR templates and preview the call they make',
        description='Check IVR templates (ivr_templates/*.toml) and preview one customer\'s call.',
    )
    actions = templates.add_subparsers(dest='action', required=True, metavar='ACTION')
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        '--config',
        metavar='PATH',
        help='take the folders, variant and transfer destinations from this config file '
        '(default: $AUTOCALL_CONFIG, else built-in defaults and $AUTOCALL_TEMPLATES/$AUTOCALL_SOUNDS)',
    )
    where.add_argument('--templates', metavar='DIR', help='folder of the *.toml templates (overrides the config)')
    where.add_argument('--sounds', metavar='DIR', help='folder of the sound files (overrides the config)')
    where.add_argument(
        '--variant',
        choices=('north', 'south'),
        help='how numbers are read: north (nghìn, linh) or south (ngàn, lẻ) (overrides the config)',
    )
    check = actions.add_parser(
        'check',
        parents=[where],
        help='report every problem of templates',
        description='Check templates: TOML syntax, step types and settings, customer fields, sound files, '
        'unreachable steps, goto targets, loops. Prints one line per problem, or "ok NAME".',
        epilog='Exit status 1 if any template has a problem, 2 if --esl cannot reach FreeSWITCH.',
    )
    check.add_argument('names', nargs='*', metavar='NAME', help='template names, e.g. IVR-1 (default: all)')
    check.add_argument(
        '--esl',
        nargs='?',
        const='',
        metavar='HOST:PORT',
        help='also ask FreeSWITCH (api file_exists) whether it can play every file the templates '
        'may play; HOST:PORT of its event socket, default the config\'s [esl] address '
        '(password from the config or $AUTOCALL_ESL_PASSWORD, as autocall-daemon)',
    )
    check.set_defaults(run=_check)
    render = actions.add_parser(
        'render',
        parents=[where],
        help='show the files and the words of one customer\'s call',
        description='Render one customer\'s call: every step with its sound files, the keys of each menu, '
        'and the Vietnamese a callee who presses no key hears.',
        epilog='Example: autocall templates render IVR-1 --customer \'{"contract_number": "HD123456", '
        '"upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"}\'',
    )
    render.add_argument('name', metavar='NAME', help='template name, e.g. IVR-1')
    render.add_argument(
        '--customer',
        required=True,
        metavar='JSON',
        help='the customer\'s fields as a JSON object, or @FILE to read it from a file',
    )
    render.set_defaults(run=_render)


def _add_status_command(commands):
    parser = commands.add_parser(
        'status',
        help='live view of the queues: progress, calls in progress, last outcomes',
        description='Show every live queue from the database the API and the dialer share: state, '
        'progress (finished/total customers), calls made, customers in a call, succeeded, '
        'failed, dnc, deleted, waiting (due now or waiting for a recall), calls started in '
        'the last minute and the last call outcomes. The database is opened read-only, so this '
        'is safe while autocall-api and autocall-daemon run.',
        epilog='Examples: autocall status --config /etc/autocall/autocall.toml --watch; '
        'autocall status --db var/autocall.sqlite3 --queue Autocall-Q1. '
        'Exit status 1 if --queue names no live queue, 2 if the database cannot be read.',
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        '--db',
        metavar='PATH|URL',
        help='the SQLite file to read, or a postgresql:// URL (password from $AUTOCALL_DB_PASSWORD)',
    )
    where.add_argument(
        '--config',
        metavar='PATH',
        help='take the database from this config file (default: $AUTOCALL_CONFIG '
        'and $AUTOCALL_DB, as autocall-api and autocall-daemon do)',
    )
    parser.add_argument('--queue', metavar='CODE', help='show only this queue')
    parser.add_argument(
        '--watch',
        nargs='?',
        type=_positive_seconds,
        const=2.0,
        metavar='SECONDS',
        help='redraw every SECONDS (default 2) until Ctrl-C; the screen is cleared '
        'when the output is a terminal, otherwise each view is appended',
    )
    parser.add_argument(
        '--recent',
        type=_count,
        default=5,
        metavar='N',
        help='how many of the last call outcomes to list per queue (default 5)',
    )
    parser.set_defaults(run=_status)


def _positive_seconds(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'must be more than 0 seconds, got {text}')
    return value


def _count(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f'expected a whole number >= 0, got {text}')
    return int(text)


def _status(args, out, err):
    try:
        config = config_mod.load(args.config)
        db_path = db_url.of(args.db or config.database)
        conn = status.open_readonly(db_path)
    except (ConfigError, status.StatusError) as exc:
        print(f'autocall: {exc}', file=err)
        return 2
    with contextlib.closing(conn):

        def draw():
            now = time.time()
            queues = status.read(conn, now=now, queue=args.queue, recent=args.recent)
            # Beside SQLite's file, the dialer's state file (it tells even when the database fails);
            # on PostgreSQL, every node's heartbeat row.
            dialer = statefile.look(db_path.path) if db_path.path else None
            dialers = None if db_path.path else nodes.states(conn)
            webhooks = outbox.backlog(conn)
            return status.render(
                queues, now=now, tz=config.tz, source=str(db_path), dialer=dialer, webhooks=webhooks, nodes=dialers
            )

        if args.queue is not None and not status.read(conn, now=time.time(), queue=args.queue):
            print(f'autocall: no live queue {args.queue!r} in {db_path}', file=err)
            return 1
        if args.watch is None:
            out.write(draw())
        else:
            status.watch(draw, out, interval=args.watch, clear=out.isatty())
    return 0


def _resolve_where(args, err):
    """Fill --templates/--sounds/--variant from the config where not given; False on a bad config."""
    try:
        config = config_mod.load(args.config)
    except AutocallError as exc:
        print(f'autocall: {exc}', file=err)
        return False
    args.templates = args.templates or str(config.templates.dir)
    args.sounds = args.sounds or str(config.templates.sounds)
    args.variant = args.variant or config.templates.variant
    args.destinations = [name for name, _target in config.dialer.transfer_destinations]
    args.esl_config = config.esl
    return True


def _check(args, out, err):
    if not _resolve_where(args, err):
        return 2
    names = [_plain_name(name) for name in args.names]
    if not names:
        try:
            names = ivr.template_names(args.templates)
        except OSError as exc:
            print(f'autocall: cannot list templates in {args.templates}: {exc.strerror}', file=err)
            return 1
    if not names:
        print(f'autocall: no templates (*.toml) in {args.templates}', file=err)
        return 1
    client = None
    if args.esl is not None:
        client = _connect_esl(args, err)
        if client is None:
            return 2
    try:
        return _check_names(args, names, client, out)
    except ESLConnectionLost as exc:  # not the template's fault: the --esl status, 2
        print(f'autocall: lost FreeSWITCH during the check: {exc}', file=err)
        return 2
    finally:
        if client is not None:
            client.close()


def _check_names(args, names, client, out):
    failed = False
    switch_files = SwitchFiles()
    for name in names:
        problems = _problems(args, name)
        if client is not None and not problems:
            problems = _unplayable(args, name, client, switch_files)
        for problem in problems:
            print(problem, file=out)
        if not problems:
            print(f'ok {name}', file=out)
        failed = failed or bool(problems)
    return 1 if failed else 0


def _connect_esl(args, err):
    """A connected ESLClient for --esl, or None after saying why."""
    try:
        address = config_values.address(args.esl) if args.esl else args.esl_config.address
    except ValueError as exc:
        print(f'autocall: --esl: {exc}', file=err)
        return None
    client = ESLClient(address.host, address.port, args.esl_config.password, events=(), timeout=args.esl_config.timeout)
    try:
        client.connect()
    except ESLError as exc:
        print(f'autocall: cannot reach FreeSWITCH at {address.host}:{address.port}: {exc}', file=err)
        return None
    return client


def _unplayable(args, name, client, switch_files):
    """One line per file of template `name` that FreeSWITCH says it cannot play."""
    template = ivr.load(
        ivr.template_path(args.templates, name), args.sounds, variant=args.variant, destinations=args.destinations
    )
    try:
        missing = switch_files.unplayable(client, template.files())
    except ESLConnectionLost:
        raise
    except ESLError as exc:
        return [f'{name}: cannot ask FreeSWITCH about its files: {exc}']
    return [f'{name}: FreeSWITCH cannot play {path}' for path in missing]


def _problems(args, name):
    if not ivr.valid_template_name(name):
        return [f'{name}: not a template name (letters, digits, _ . - like IVR-1)']
    return ivr.check(
        ivr.template_path(args.templates, name), args.sounds, variant=args.variant, destinations=args.destinations
    )


def _render(args, out, err):
    if not _resolve_where(args, err):
        return 2
    customer = _read_customer(args.customer, err)
    if customer is None:
        return 2
    try:
        path = ivr.template_path(args.templates, _plain_name(args.name))
        template = ivr.load(path, args.sounds, variant=args.variant, destinations=args.destinations)
        script = template.render(customer)
    except ivr.TemplateInvalid as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 1
    except ivr.RenderError as exc:
        print(f'autocall: cannot render this customer: {exc}', file=err)
        return 1
    except ivr.TemplateError as exc:
        print(f'autocall: {exc}', file=err)
        return 1
    _print_script(template, script, out)
    return 0


def _plain_name(name):
    return name[:-5] if name.endswith('.toml') else name


def _read_customer(text, err):
    """The customer object from JSON text or @file; None (after saying why) if unusable."""
    if text.startswith('@'):
        try:
            with open(text[1:], encoding='utf-8') as fh:
                text = fh.read()
        except OSError as exc:
            print(f'autocall: --customer: cannot read {text[1:]}: {exc.strerror}', file=err)
            return None
    try:
        customer = json.loads(text)
    except ValueError as exc:
        print(f'autocall: --customer: not valid JSON: {exc}', file=err)
        return None
    if not isinstance(customer, dict):
        print('autocall: --customer: must be a JSON object like {"contract_number": "HD1"}', file=err)
        return None
    return customer


def _print_script(template, script, out):
    print(f'template {template.name}: {template.description} (variant {template.variant.name})', file=out)
    print(f'starts at step {script.start}', file=out)
    for step in script.steps.values():
        print(file=out)
        print(f'[{step.id}] {step.describe()}', file=out)
        for path in getattr(step, 'files', ()):
            print(f'  {path}', file=out)
        if getattr(step, 'transcript', ''):
            print(f'  says: {step.transcript}', file=out)
        if isinstance(step, ivr.Menu):
            for key, action in sorted(step.keys.items()):
                print(f'  key {key} → {action.describe()}', file=out)
            print(f'  no key → {step.on_no_input.describe()}', file=out)
            print(f'  wrong key → {step.on_invalid.describe()}', file=out)
    print(file=out)
    print('a callee who presses no key hears:', file=out)
    print(f'  {script.transcript()}', file=out)


if __name__ == '__main__':
    sys.exit(main())
