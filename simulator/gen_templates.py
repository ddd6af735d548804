"""Regenerate `events.txt` (read by `templates.py`) from the real FreeSWITCH captures.

    python -m simulator.gen_templates tests/data/esl-captures simulator/events.txt

Every event the simulator sends is one of these templates: the header names, their order and
every value that does not depend on the call are copied from a capture; values that do depend
on it (uuids, times, the dialled number, causes, application data) become `{slot}` fields that
`events.py` fills in. Channel variables set by applications are cut out and replaced by the
`{_app}` slot, the originate `{...}` variables by `{_orig}`, so one template serves any call.
"""

import json
import os
import sys
from collections import defaultdict

from simulator.capture import raw_event_headers, read_transcript, split_message
from simulator.sequences import USED

# capture file -> tag for each channel in order of appearance (None: channel not used)
SOURCES = {
    '01-answered-playback-dtmf-uuid_kill.log': ['kill'],
    '02-callee-bye-after-answer.log': ['bye'],
    '03-busy-486.log': ['busy'],
    '04-no-answer-timeout.log': ['noanswer'],
    '05-decline-603-and-unreachable.log': ['decline', 'unreach', 'badprofile'],
    '06-sync-api-originate-show-hupall.log': ['hupall', None],
    '11-callee-bye-during-playback.log': ['byeplay'],
    '12-missing-files.log': [None],  # only its channel-less filestring::* CUSTOM events
    '08b-sigterm-while-connected.log': ['shutdown'],
}
GLOBAL_EVENTS = ('API', 'BACKGROUND_JOB', 'HEARTBEAT', 'SHUTDOWN')

SLOT_BY_NAME = {
    'Core-UUID': 'core_uuid',
    'FreeSWITCH-Hostname': 'hostname',
    'FreeSWITCH-Switchname': 'hostname',
    'FreeSWITCH-IPv4': 'ipv4',
    'FreeSWITCH-IPv6': 'ipv6',
    'Event-Date-Local': 'date_local',
    'Event-Date-GMT': 'date_gmt',
    'Event-Date-Timestamp': 'ts',
    'Event-Sequence': 'seq',
    'Caller-Profile-Created-Time': 'created_us',
    'Caller-Channel-Created-Time': 'created_us',
    'Caller-Channel-Answered-Time': 'answered_us',
    'Caller-Channel-Progress-Time': 'progress_us',
    'Caller-Channel-Hangup-Time': 'hangup_us',
    'Hangup-Cause': 'cause',
    'variable_hangup_cause': 'cause',
    'variable_hangup_cause_q850': 'q850',
    'Application': 'app',
    'Application-Data': 'app_data',
    'Application-Response': 'app_resp',
    'Application-UUID': 'app_uuid',
    'Job-UUID': 'job',
    'Job-Command': 'job_cmd',
    'Job-Command-Arg': 'job_arg',
    'API-Command': 'api_cmd',
    'API-Command-Argument': 'api_arg',
    'DTMF-Digit': 'digit',
    'Playback-File-Path': 'play_file',
    'File': 'file',
    'variable_last_app': 'last_app',
    'variable_digits_dialed': 'digits_dialed',
    'variable_session_id': 'session_id',
    'variable_sip_term_status': 'sip_status',
    'variable_proto_specific_hangup_cause': 'sip_proto',
    'variable_sip_invite_failure_status': 'sip_fail_status',
    'variable_sip_invite_failure_phrase': 'sip_phrase',
    'variable_sip_term_cause': 'sip_term_cause',
    'variable_sip_hangup_disposition': 'disposition',
    'variable_local_media_port': 'media_port',
    'variable_sip_profile_name': 'sip_profile',
    'variable_sofia_profile_name': 'profile',
    'variable_recovery_profile_name': 'profile',
    'Command': 'command',
    'event-uuid': 'app_uuid',
    'execute-app-name': 'app',
    'execute-app-arg': 'app_data',
    'Playback-Status': 'play_status',
    'Up-Time': 'uptime',
    'Uptime-msec': 'uptime_ms',
    'Session-Count': 'sessions',
    'Session-Since-Startup': 'sessions_total',
    'Session-Peak-Max': 'sessions_peak',
}
TIME_VARS = (
    'start_stamp profile_start_stamp answer_stamp progress_stamp end_stamp start_epoch start_uepoch '
    'profile_start_epoch profile_start_uepoch answer_epoch answer_uepoch progress_epoch progress_uepoch '
    'end_epoch end_uepoch duration billsec progresssec answersec waitsec progress_mediasec flow_billsec '
    'mduration billmsec progressmsec answermsec waitmsec progress_mediamsec flow_billmsec uduration '
    'billusec progressusec answerusec waitusec progress_mediausec flow_billusec'
).split()
USER_HEADERS = {
    'Caller-Caller-ID-Number',
    'Caller-Callee-ID-Number',
    'Caller-Destination-Number',
    'variable_sip_to_user',
}
PORT_VARS = {
    'variable_sip_to_port',
    'variable_sip_contact_port',
    'variable_sip_network_port',
    'variable_sip_reply_port',
}
APP_VARS = {
    'current_application',
    'current_application_data',
    'current_application_response',
    'current_loop',
    'total_loops',
    'playback_last_offset_pos',
    'playback_seconds',
    'playback_ms',
    'playback_samples',
}
ORIGINATE_VARS = {'origination_uuid', 'autocall_queue', 'autocall_customer', 'ignore_early_media', 'originate_timeout'}


def generalise(name, value, tokens, port):
    """Turn one captured (URL-encoded) value into a format string with {slots}."""
    if name in SLOT_BY_NAME and not (name == 'Channel-Name' and value == 'N/A'):
        return '{%s}' % SLOT_BY_NAME[name]
    if name.startswith('variable_') and name[9:] in TIME_VARS:
        return '{t_%s}' % name[9:]
    if name in USER_HEADERS and value == '1000':
        return '{user}'
    if name in PORT_VARS and value == port:
        return '{port}'
    text = value.replace('{', '{{').replace('}', '}}')
    for token, replacement in tokens:
        text = text.replace(token, replacement)
    return text


def template_text(headers, tokens, port):
    """Render the header list as one format string; app and originate variables become slots."""
    lines, app_done, orig_done = [], False, False
    for name, value in headers:
        if name == 'Content-Length':  # an event's own body is added by the renderer
            continue
        var = name[9:] if name.startswith('variable_') else None
        if var in APP_VARS:
            if not app_done:
                lines.append('{_app}')
                app_done = True
            continue
        if var in ORIGINATE_VARS:
            if not orig_done:
                lines.append('{_orig}')
                orig_done = True
            continue
        if name == 'variable_last_arg':  # its slot follows variable_last_app, present or not
            continue
        if name == 'variable_sip_local_network_addr':  # mod_sofia.c:4848 sets it just before
            lines.append('{_gateway}')
        lines.append('%s: %s\n' % (name, generalise(name, value, tokens, port)))
        if name == 'variable_sip_call_id':  # a 180/200's User-Agent and Allow (sofia.c:6794-6800)
            lines.append('{_peer}')
        if name == 'variable_last_app':
            lines.append('{_last_arg}')
        if name == 'variable_sip_hangup_disposition':  # variables set after a BYE come here
            lines.append('{_app_late}' if app_done else '{_app}{_app_late}')
            app_done = True
    return ''.join(lines)


def channel_tokens(uuid, core, chan, port):
    if chan == 'N/A':
        return [(uuid, '{uuid}'), (core, '{core_uuid}')]
    dest = chan.split('/', 2)[2]
    hostport = dest.split('%40', 1)[1]
    return [
        (uuid, '{uuid}'),
        (core, '{core_uuid}'),
        (chan, '{chan}'),
        (dest, '{req_uri}'),
        (hostport, '{hostport}'),
        ('%3C1000%3E', '%3C{user}%3E'),
    ]


def collect(capture_dir):
    templates = {}
    templates.update(channel_data(capture_dir))
    for filename, tags in SOURCES.items():
        seen_channels, counters = [], defaultdict(int)
        for record in read_transcript(os.path.join(capture_dir, filename)):
            outer, body = split_message(record.data)
            if record.kind != 'RECV' or dict(outer).get('Content-Type') != 'text/event-plain':
                continue
            headers, _inner = raw_event_headers(body)
            fields = dict(headers)
            name, uuid = fields['Event-Name'], fields.get('Unique-ID')
            if uuid is None:
                if name == 'CUSTOM':  # keyed by subclass: filestring::open -> filestring:CUSTOM:open
                    key = fields['Event-Subclass'].replace('%3A%3A', ':CUSTOM:')
                    if key in USED and key not in templates:
                        templates[key] = template_text(headers, [(fields['Core-UUID'], '{core_uuid}')], None)
                elif name in GLOBAL_EVENTS and name not in templates:
                    templates[name] = template_text(headers, [(fields['Core-UUID'], '{core_uuid}')], None)
                continue
            if uuid not in seen_channels:
                seen_channels.append(uuid)
            tag = tags[seen_channels.index(uuid)]
            if tag is None:
                continue
            chan = fields['Channel-Name']
            port = chan.rsplit('%3A', 1)[1] if chan != 'N/A' else None
            key = '%s:%s:%d' % (tag, name, counters[tag, name])
            counters[tag, name] += 1
            if key not in USED:
                continue
            if name == 'PRIVATE_COMMAND':
                # the sendmsg's own headers lead this event; the simulator echoes the client's
                headers = headers[[h for h, _v in headers].index('Event-Name') :]
                templates[key] = '{_sendmsg}'
            else:
                templates[key] = ''
            templates[key] += template_text(headers, channel_tokens(uuid, fields['Core-UUID'], chan, port), port)
    return templates


def channel_data(capture_dir):
    """The CHANNEL_DATA template, from the `uuid_dump <uuid> json` reply in capture 06."""
    from simulator.events import url_encode

    records = read_transcript(os.path.join(capture_dir, '06-sync-api-originate-show-hupall.log'))
    for sent, reply in zip(records, records[1:]):
        if sent.kind == 'SEND' and sent.data.startswith(b'api uuid_dump '):
            pairs = json.loads(split_message(reply.data)[1], object_pairs_hook=list)
            headers = [(name, url_encode(value)) for name, value in pairs]
            fields = dict(headers)
            chan, uuid = fields['Channel-Name'], fields['Unique-ID']
            port = chan.rsplit('%3A', 1)[1]
            text = template_text(headers, channel_tokens(uuid, fields['Core-UUID'], chan, port), port)
            return {'hupall:CHANNEL_DATA:0': text}
    return {}


def derived(templates):
    """Variants no capture shows whole: an app without data, an API event with arguments (each
    differs from a captured one by one header), a 183's CHANNEL_PROGRESS_MEDIA."""
    data_line = 'Application-Data: {app_data}\n'
    return {
        'sim:CHANNEL_EXECUTE:nodata': templates['bye:CHANNEL_EXECUTE:0'],
        'sim:CHANNEL_EXECUTE_COMPLETE:nodata': templates['kill:CHANNEL_EXECUTE_COMPLETE:0'].replace(data_line, ''),
        'sim:API:arg': templates['API'] + 'API-Command-Argument: {api_arg}\n',
        # not captured (sipp sent no 183): the 180's event renamed, with its pre-answer origin
        'sim:CHANNEL_PROGRESS_MEDIA:0': templates['kill:CHANNEL_PROGRESS:0']
        .replace('Event-Name: CHANNEL_PROGRESS\n', 'Event-Name: CHANNEL_PROGRESS_MEDIA\n')
        .replace('switch_channel_perform_mark_ring_ready_value\n', 'switch_channel_perform_mark_pre_answered\n')
        .replace(
            'Caller-Channel-Progress-Media-Time: 0\n', 'Caller-Channel-Progress-Media-Time: {progress_media_us}\n'
        ),
    }


HEADER = (
    '# GENERATED by simulator/gen_templates.py from the real captures (tests/data/esl-captures). Do not edit.\n'
    "# Each template: a line '### <key>', then its text, then one newline. Keys: \"<scenario tag>:<Event-Name>:\n"
    '# <n-th such event of that channel>" or a bare Event-Name. {slots} are filled per event.\n'
)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    templates = collect(argv[0])
    templates.update(derived(templates))
    out = [HEADER] + ['### %s\n%s\n' % (key, templates[key]) for key in sorted(templates)]
    with open(argv[1], 'w', encoding='utf-8') as f:
        f.write(''.join(out))


if __name__ == '__main__':
    main()
