"""The fields a channel's events are rendered from: the first set, the variable lines, the times."""

from simulator.events import format_local, url_encode

# q850 codes of the causes the simulator produces (SYSTEM_SHUTDOWN is 16 in the captures)
Q850 = {
    'NORMAL_CLEARING': 16,
    'USER_BUSY': 17,
    'NO_USER_RESPONSE': 18,
    'NO_ANSWER': 19,
    'CALL_REJECTED': 21,
    'UNALLOCATED_NUMBER': 1,
    'NORMAL_TEMPORARY_FAILURE': 41,
    'INVALID_NUMBER_FORMAT': 28,
    'SYSTEM_SHUTDOWN': 16,
    'ORIGINATOR_CANCEL': 487,
    'DESTINATION_OUT_OF_ORDER': 27,
    'MANAGER_REQUEST': 503,
    'LOSE_RACE': 502,
    'RECOVERY_ON_TIMER_EXPIRE': 102,
    'NORMAL_UNSPECIFIED': 31,
    'ALLOTTED_TIMEOUT': 602,
}


def initial_fields(switch, uuid, target, variables, created, job, origin_arg):
    """A new channel's template fields: the switch's, the target's, the originate's, the rest empty."""
    fields = dict(switch.base_fields)
    fields.update(
        uuid=uuid,
        chan=url_encode(target.channel_name),
        user=url_encode(target.user),
        profile=url_encode(target.profile),
        sip_profile='gateway' if target.gateway else url_encode(target.profile),
        _gateway='variable_sip_gateway_name: %s\n' % url_encode(target.gateway) if target.gateway else '',
        _peer='',
        req_uri=url_encode(target.req_uri),
        hostport=url_encode(target.hostport),
        port=target.port,
        session_id=str(switch.session_id),
        media_port=str(16384 + 2 * (switch.session_id % 8000)),
        _orig=variable_lines(variables),
        _app='',
        _app_late='',
        _sendmsg='',
        created_us=usec(created),
        answered_us='0',
        progress_us='0',
        hangup_us='0',
        progress_media_us='0',
        cause='',
        q850='',
        disposition='',
        sip_status='',
        sip_proto='',
        sip_fail_status='',
        sip_phrase='',
        sip_term_cause='',
        app='',
        app_data='',
        app_resp='_none_',
        app_uuid='',
        last_app='',
        _last_arg='',
        digits_dialed='none',
        digit='',
        play_file='',
        play_status='done',
        job=job or '',
        job_cmd='originate',
        job_arg=url_encode(origin_arg),
    )
    return fields


def peer_lines(target, scenario):
    """sip_user_agent and sip_allow, as a gateway's 180/200 sets them (sipp sent neither)."""
    if target.gateway is None:
        return ''
    gateway = scenario.gateway(target.gateway)
    return ''.join(
        'variable_%s: %s\n' % (name, url_encode(value))
        for name, value in (('sip_user_agent', gateway.user_agent), ('sip_allow', gateway.allow))
        if value is not None
    )


def variable_lines(variables):
    return ''.join('variable_%s: %s\n' % (name, url_encode(value)) for name, value in variables.items())


def usec(epoch):
    return str(int(epoch * 1000000)) if epoch else '0'


def times(created, progress, answered, ended):
    """The *_stamp, *_epoch, duration and billsec variables of CHANNEL_HANGUP_COMPLETE."""
    c, p, a, e = (int(x * 1000000) if x else 0 for x in (created, progress, answered, ended))
    cs, ps, as_, es = (x // 1000000 for x in (c, p, a, e))
    out = {}
    for name, value, secs in (
        ('start', c, cs),
        ('profile_start', c, cs),
        ('answer', a, as_),
        ('progress', p, ps),
        ('end', e, es),
    ):
        out['t_%s_stamp' % name] = url_encode(format_local(secs)) if value else ''
        out['t_%s_epoch' % name] = str(secs)
        out['t_%s_uepoch' % name] = str(value)
    spans = {
        'duration': (cs, es, c, e),
        'bill': (as_, es, a, e) if a else (0, 0, 0, 0),
        'progress': (cs, ps, c, p) if p else (0, 0, 0, 0),
        'answer': (cs, as_, c, a) if a else (0, 0, 0, 0),
    }
    d0, d1, du0, du1 = spans['duration']
    out.update(
        t_duration=str(d1 - d0),
        t_mduration=str((du1 - du0) // 1000),
        t_uduration=str(du1 - du0),
        t_flow_billsec=str(d1 - d0),
        t_flow_billmsec=str((du1 - du0) // 1000),
        t_flow_billusec=str(du1 - du0),
    )
    for prefix, key in (('bill', 'bill'), ('progress', 'progress'), ('answer', 'answer')):
        s0, s1, u0, u1 = spans[key]
        out['t_%ssec' % prefix] = str(s1 - s0)
        out['t_%smsec' % prefix] = str((u1 - u0) // 1000)
        out['t_%susec' % prefix] = str(u1 - u0)
    for prefix in ('wait', 'progress_media'):
        out['t_%ssec' % prefix] = out['t_%smsec' % prefix] = out['t_%susec' % prefix] = '0'
    return out
