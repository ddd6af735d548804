"""The `api` commands the simulator answers, with FreeSWITCH's exact response bodies (capture 06).

Non-FreeSWITCH commands for fault injection are namespaced: `sim_fault drop|silence S|refuse S|delay MS|
unreadable [PATHS]` and `sim_restart`.
"""

import json
import logging
from urllib.parse import unquote

import gevent

from simulator import kv
from simulator import sequences as seq
from simulator.events import format_local, plain_to_json, uptime_text
from simulator.switch import ExecRequest

logger = logging.getLogger(__name__)
VERSION = 'FreeSWITCH Version 1.10.12-release~64bit ( 64bit)\n'
NO_CHANNEL = '-ERR No such channel!\n'


def run(sim, command, args):
    """Execute `command args`; returns the response body."""
    handler = _HANDLERS.get(command)
    if handler is None:
        return '-ERR %s Command not found!\n' % command
    return handler(sim, args)


def originate(sim, args):
    result = sim.originate(args)
    if isinstance(result, str):
        return result
    return result.result.get()


def uuid_kill(sim, args):
    uuid, _, cause = args.partition(' ')
    channel = sim.channels.get(uuid)
    if channel is None:
        return NO_CHANNEL
    if channel.kills_failed < channel.behaviour.kill_fails:  # the scenario's stuck channel
        channel.kills_failed += 1
        return NO_CHANNEL if channel.behaviour.kill_reply == 'err' else '+OK\n'
    channel.hangup(cause.strip() or 'NORMAL_CLEARING')  # a call already hanging up stays as it is
    return '+OK\n'


def uuid_exists(sim, args):
    return 'true' if args.strip() in sim.channels else 'false'


def uuid_setvar(sim, args):
    """`uuid_setvar <uuid> <var> [value]` (mod_commands.c uuid_setvar_function): no value unsets."""
    parts = args.split(None, 2)
    if len(parts) not in (2, 3):
        return '-USAGE: <uuid> <var> [value]\n'
    channel = sim.channels.get(parts[0])
    if channel is None:
        return NO_CHANNEL
    channel.set_var(parts[1], parts[2] if len(parts) == 3 else None)
    return '+OK\n'


def uuid_getvar(sim, args):
    uuid, _, name = args.partition(' ')
    channel = sim.channels.get(uuid)
    if channel is None:
        return NO_CHANNEL
    return channel.getvar(name.strip())


def uuid_dump(sim, args):
    uuid, _, fmt = args.partition(' ')
    channel = sim.channels.get(uuid)
    if channel is None:
        return NO_CHANNEL
    text = sim.events.render(seq.CHANNEL_DATA, dict(channel.fields))
    if fmt.strip() == 'json':
        return plain_to_json(text)
    return ''.join(
        '%s: %s\n' % (name, unquote(value))
        for name, _, value in (line.partition(': ') for line in text.splitlines() if line)
    )


def uuid_broadcast(sim, args):
    parts = args.split(' ')
    channel = sim.channels.get(parts[0])
    if channel is None or len(parts) < 2:
        return NO_CHANNEL if channel is None else '-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n'
    channel.execute(ExecRequest('playback', parts[1]))
    return '+OK Message sent\n'


def hupall(sim, args):
    parts = args.split()
    cause = parts[0] if parts else 'NORMAL_CLEARING'
    name, value = (parts[1], parts[2] if len(parts) > 2 else '') if len(parts) > 1 else (None, None)
    for channel in list(sim.channels.values()):
        if name is None or channel.getvar(name) == value:
            channel.hangup(cause)
    if name is None:
        return '+OK hangup all channels with cause: %s\n' % cause
    return '+OK hangup all channels matching [%s]=[%s] with cause: %s\n' % (name, value, cause)


def show(sim, args):
    words = args.split()
    if words[:1] not in (['channels'], ['calls']) or words[-2:] != ['as', 'json']:
        return '-USAGE: show channels|calls as json (the simulator knows no other form)\n'
    # Listed from the core database, not the session table: a new channel shows once the SQL thread
    # wrote it (switch_core_sqldb.c), the scenario's show_channels_lag after it was created.
    listed_before = sim.clock.now() - sim.scenario.show_channels_lag
    rows = [
        _row(sim, channel, words[0])
        for channel in sim.channels.values()
        if channel.state != 'destroyed' and channel.created <= listed_before
    ]
    if not rows:
        return '{"row_count": 0}\n'
    return json.dumps({'row_count': len(rows), 'rows': rows}, separators=(',', ':'))


def _row(sim, channel, kind):
    answered = channel.state == 'answered'
    common = {
        'uuid': channel.uuid,
        'direction': 'outbound',
        'created': format_local(int(channel.created)),
        'created_epoch': str(int(channel.created)),
        'name': channel.target.channel_name,
        'state': 'CS_EXECUTE' if answered else 'CS_CONSUME_MEDIA',
        'cid_name': 'Outbound Call',
        'cid_num': channel.target.user if answered else '0000000000',
        'ip_addr': '',
        'dest': channel.target.user,
    }
    callstate = 'ACTIVE' if answered else ('RINGING' if channel.progress else 'DOWN')
    tail = {
        'presence_id': '',
        'presence_data': '',
        'accountcode': channel.variables.get('accountcode', ''),
        'callstate': callstate,
        'callee_name': '',
        'callee_num': '0000000000' if answered else channel.target.user,
        'callee_direction': 'RECV' if answered else '',
        'call_uuid': channel.uuid,
    }
    if kind == 'calls':
        row = dict(common, **tail, hostname=sim.hostname, sent_callee_name='', sent_callee_num='')
        for name in (
            'uuid',
            'direction',
            'created',
            'created_epoch',
            'name',
            'state',
            'cid_name',
            'cid_num',
            'ip_addr',
            'dest',
            'presence_id',
            'presence_data',
            'accountcode',
            'callstate',
            'callee_name',
            'callee_num',
            'callee_direction',
            'sent_callee_name',
            'sent_callee_num',
        ):
            row['b_' + name] = ''
        row['call_created_epoch'] = ''
        return row
    row = dict(
        common,
        application='park' if answered else '',
        application_data='',
        dialplan='',
        context='default',
        read_codec='PCMU',
        read_rate='8000',
        read_bit_rate='64000',
        write_codec='PCMU',
        write_rate='8000',
        write_bit_rate='64000',
        secure='',
        hostname=sim.hostname,
    )
    row.update(tail)
    row.update(
        sent_callee_name='',
        sent_callee_num='',
        initial_cid_name='',
        initial_cid_num='0000000000',
        initial_ip_addr='',
        initial_dest=channel.target.user,
        initial_dialplan='',
        initial_context='default',
    )
    return row


def status(sim, args):
    up = max(0.0, sim.clock.now() - sim.started)
    count = len(sim.channels)
    return (
        'UP %s\nFreeSWITCH (Version 1.10.12-release  64bit) is ready\n%d session(s) since startup\n'
        '%d session(s) - peak %d, last 5min %d \n%d session(s) per Sec out of max 50, peak %d, last 5min %d \n'
        '200 session(s) max\nmin idle cpu 0.00/99.00\nCurrent Stack Size/Max 240K/8192K\n'
        % (uptime_text(up), sim.sessions_total, count, sim.sessions_peak, sim.sessions_peak, 0, 0, 0)
    )


def file_exists(sim, args):
    # mod_commands.c file_exists_function: 'true'/'false', no newline; as the switch sees the disk
    return 'true' if args and sim.media.exists(args) else 'false'


def hash_command(sim, args):
    return kv.hash_api(sim.hash_store, args)


def db_command(sim, args):
    return kv.db_api(sim.db_store, args)


def version(sim, args):
    return VERSION


def shutdown(sim, args):
    # as `fs_cli -x shutdown` (capture 08): +OK, the API event, then the SIGTERM sequence
    gevent.spawn_later(0.01, sim.shutdown)
    return '+OK\n'


def sim_fault(sim, args):
    words = args.split()
    kind = words[0] if words else ''
    try:
        value = float(words[1]) if len(words) > 1 else None
    except ValueError:
        value = None
    if kind == 'unreadable':  # at once: nothing of this reply depends on it
        sim.set_unreadable(words[1:])
    elif kind == 'drop':
        gevent.spawn_later(0.01, sim.drop_connections)  # after this reply is written
    elif kind in ('silence', 'refuse', 'delay') and value is not None:
        # 10 ms later, so that this command's own reply still goes out
        gevent.spawn_later(0.01, {'silence': sim.silence, 'refuse': sim.refuse, 'delay': sim.delay}[kind], value)
    else:
        return (
            '-ERR usage: sim_fault drop | silence <seconds> | refuse <seconds> | delay <ms> '
            '| unreadable [<path or glob> ...]\n'
        )
    logger.warning('fault injected: %s', args)
    return '+OK %s\n' % args


def sim_restart(sim, args):
    gevent.spawn_later(0.01, sim.restart)
    logger.warning('simulated restart')
    return '+OK restarting\n'


_HANDLERS = {
    'originate': originate,
    'uuid_kill': uuid_kill,
    'uuid_exists': uuid_exists,
    'uuid_getvar': uuid_getvar,
    'uuid_setvar': uuid_setvar,
    'uuid_dump': uuid_dump,
    'uuid_broadcast': uuid_broadcast,
    'hupall': hupall,
    'show': show,
    'status': status,
    'version': version,
    'file_exists': file_exists,
    'hash': hash_command,
    'db': db_command,
    'shutdown': shutdown,
    'sim_fault': sim_fault,
    'sim_restart': sim_restart,
}
