"""Which captured event follows which: the event sequences of every call outcome, as template keys.

Keys name a template in `templates.py`: "<capture tag>:<Event-Name>:<n>" is the n-th event of that
name on the channel of the capture with that tag (see gen_templates.SOURCES). The orders below
are the orders seen in the captures.
"""

START = {
    tag: [
        '%s:CHANNEL_OUTGOING:0' % tag,
        '%s:CHANNEL_STATE:0' % tag,
        '%s:CHANNEL_CREATE:0' % tag,
        '%s:CHANNEL_ORIGINATE:0' % tag,
        '%s:CHANNEL_STATE:1' % tag,
        '%s:CHANNEL_STATE:2' % tag,
    ]
    for tag in ('kill', 'busy', 'decline', 'unreach', 'noanswer', 'bye')
}

# 180 Ringing (sipp sent it before 200 in every answered capture)
RINGING = ['kill:CHANNEL_PROGRESS:0', 'kill:CHANNEL_CALLSTATE:0']

# 200 OK: codecs (before the answer time is set), answer up to the job result, then after it.
# Order as in captures 02, 06, 07b and 08b (in 01 the ACTIVE call state came after the job result)
MEDIA = ['bye:CODEC:0', 'bye:CODEC:1']
ANSWER = ['bye:CHANNEL_ANSWER:0', 'bye:CHANNEL_CALLSTATE:1', 'bye:CALL_UPDATE:0']
ANSWER_AFTER_JOB = ['bye:CHANNEL_STATE:3', 'bye:CHANNEL_EXECUTE:0', 'bye:CHANNEL_PARK:0']
# capture 01's order, used when the scenario asks for event_order = "varied"
ANSWER_01 = ['kill:CHANNEL_ANSWER:0', 'kill:CALL_UPDATE:0']
ANSWER_AFTER_JOB_01 = [
    'kill:CHANNEL_CALLSTATE:1',
    'kill:CHANNEL_STATE:3',
    'kill:CHANNEL_EXECUTE:0',
    'kill:CHANNEL_PARK:0',
]

# refused before answer (486/603/404/503...): (hangup up to reporting, after the job result)
REFUSED = {
    tag: (
        [
            '%s:CHANNEL_HANGUP:0' % tag,
            '%s:CHANNEL_STATE:3' % tag,
            '%s:CHANNEL_CALLSTATE:0' % tag,
            '%s:CHANNEL_STATE:4' % tag,
            '%s:CHANNEL_HANGUP_COMPLETE:0' % tag,
        ],
        ['%s:CHANNEL_DESTROY:0' % tag, '%s:CHANNEL_STATE:5' % tag],
    )
    for tag in ('busy', 'decline', 'unreach')
}

# originate_timeout while ringing: the job result comes right after CHANNEL_HANGUP
NO_ANSWER = (
    ['noanswer:CHANNEL_HANGUP:0'],
    [
        'noanswer:CHANNEL_STATE:3',
        'noanswer:CHANNEL_CALLSTATE:1',
        'noanswer:CHANNEL_STATE:4',
        'noanswer:CHANNEL_HANGUP_COMPLETE:0',
        'noanswer:CHANNEL_DESTROY:0',
        'noanswer:CHANNEL_STATE:5',
    ],
)

# no channel could be made (unknown profile or gateway): destroyed at once
NO_CHANNEL = ['badprofile:CHANNEL_DESTROY:0', 'badprofile:CHANNEL_STATE:0']

# hangup of an answered, parked call: (CHANNEL_HANGUP, the rest); local = we hung up, remote = callee's BYE
HANGUP_LOCAL = (
    ['kill:CHANNEL_HANGUP:0'],
    [
        'kill:CHANNEL_UNPARK:0',
        'kill:CHANNEL_EXECUTE_COMPLETE:1',
        'kill:CHANNEL_STATE:4',
        'kill:CHANNEL_CALLSTATE:2',
        'kill:CHANNEL_STATE:5',
        'kill:CHANNEL_HANGUP_COMPLETE:0',
        'kill:CHANNEL_DESTROY:0',
        'kill:CHANNEL_STATE:6',
    ],
)
HANGUP_REMOTE = (
    ['bye:CHANNEL_HANGUP:0'],
    [
        'bye:CHANNEL_UNPARK:0',
        'bye:CHANNEL_EXECUTE_COMPLETE:0',
        'bye:CHANNEL_STATE:4',
        'bye:CHANNEL_CALLSTATE:2',
        'bye:CHANNEL_STATE:5',
        'bye:CHANNEL_HANGUP_COMPLETE:0',
        'bye:CHANNEL_DESTROY:0',
        'bye:CHANNEL_STATE:6',
    ],
)
# the switch shutting down (capture 08b; its HANGUP call state carries the variables too)
HANGUP_SHUTDOWN = (
    ['shutdown:CHANNEL_HANGUP:0'],
    [
        'shutdown:CHANNEL_UNPARK:0',
        'shutdown:CHANNEL_EXECUTE_COMPLETE:0',
        'shutdown:CHANNEL_STATE:4',
        'shutdown:CHANNEL_CALLSTATE:2',
        'shutdown:CHANNEL_STATE:5',
        'shutdown:CHANNEL_HANGUP_COMPLETE:0',
        'shutdown:CHANNEL_DESTROY:0',
        'shutdown:CHANNEL_STATE:6',
    ],
)

# an application run by sendmsg inside park
EXECUTE = 'kill:CHANNEL_EXECUTE:1'
EXECUTE_NODATA = 'sim:CHANNEL_EXECUTE:nodata'
EXECUTE_COMPLETE = 'kill:CHANNEL_EXECUTE_COMPLETE:0'
EXECUTE_COMPLETE_NODATA = 'sim:CHANNEL_EXECUTE_COMPLETE:nodata'
EXECUTE_COMPLETE_HUNGUP = 'kill:CHANNEL_EXECUTE_COMPLETE:1'
EXECUTE_COMPLETE_HUNGUP_DATA = 'byeplay:CHANNEL_EXECUTE_COMPLETE:0'  # playback cut by the callee's BYE (11)
API_WITH_ARG = 'sim:API:arg'
# keys starting "sim:" are derived by gen_templates.derived
PROGRESS_MEDIA = 'sim:CHANNEL_PROGRESS_MEDIA:0'  # 183 with SDP (no capture has one)
PLAYBACK_START = 'kill:PLAYBACK_START:0'
PLAYBACK_STOP = 'kill:PLAYBACK_STOP:0'
DTMF = 'kill:DTMF:0'
PRIVATE_COMMAND = 'kill:PRIVATE_COMMAND:0'
# the same events once the call is hung up, as capture 11 shows them (Answer-State: hangup...)
HUNG_UP = {PLAYBACK_STOP: 'byeplay:PLAYBACK_STOP:0', PRIVATE_COMMAND: 'byeplay:PRIVATE_COMMAND:0'}
CHANNEL_DATA = 'hupall:CHANNEL_DATA:0'  # the uuid_dump reply
# mod_dptools next_file's channel-less CUSTOM events for the members of a file_string:// (capture 12)
FILESTRING = {what: 'filestring:CUSTOM:%s' % what for what in ('open', 'close', 'fail')}


def _all_keys():
    keys = [key for seq in START.values() for key in seq]
    for before, after in REFUSED.values():
        keys += before + after
    for seq in (
        (RINGING, MEDIA, ANSWER, ANSWER_AFTER_JOB, ANSWER_01, ANSWER_AFTER_JOB_01, NO_CHANNEL)
        + NO_ANSWER
        + HANGUP_LOCAL
        + HANGUP_REMOTE
        + HANGUP_SHUTDOWN
    ):
        keys += seq
    return (
        set(keys)
        | {
            'bye:CHANNEL_EXECUTE:0',
            EXECUTE,
            EXECUTE_COMPLETE,
            EXECUTE_COMPLETE_HUNGUP,
            PLAYBACK_START,
            PLAYBACK_STOP,
            EXECUTE_COMPLETE_HUNGUP_DATA,
            DTMF,
            PRIVATE_COMMAND,
            CHANNEL_DATA,
        }
        | set(FILESTRING.values())
        | set(HUNG_UP.values())
    )


USED = _all_keys()
