"""What a finished call means: the cause table and the recall rules (DESIGN §3, §4), pure.

`classify(call)` turns what FreeSWITCH reported into an attempt outcome;
`next_state(customer, outcome, ...)` decides the customer's next state. Neither does I/O,
so behaviour over days of recalls is tested in microseconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from daemon.store import states
from daemon.store.records import CallReport

# Attempt outcomes.
SUCCESS = "success"  # answered, talked long enough
SHORT = "short"  # answered, but hung up before min_recall_duration
NO_KEY = "no_key"  # answered, heard the message, pressed no key a menu accepts (queues that recall it)
RETRY = "retry"  # not answered (busy, no answer, ...): try again later
DEAD_NUMBER = "dead_number"  # the network says this number does not exist: skip it from now on
CONFIG_ERROR = "config_error"  # our side is misconfigured (gateway, profile): stop the queue
INTERRUPTED = "interrupted"  # we lost or cut the call (daemon restart, ESL loss, shutdown)
NOT_DIALED = "not_dialed"  # claimed, but the originate never reached FreeSWITCH

# The one table of hangup causes (DESIGN §4). Anything not listed is a retry.
DEAD_NUMBER_CAUSES = frozenset(
    {
        "UNALLOCATED_NUMBER",
        "INVALID_NUMBER_FORMAT",
        "NUMBER_CHANGED",
        "NO_ROUTE_DESTINATION",
    }
)
CONFIG_ERROR_CAUSES = frozenset(
    {
        "INVALID_GATEWAY",
        "INVALID_PROFILE",
        "GATEWAY_DOWN",
        "CHAN_NOT_IMPLEMENTED",
        "INCOMPATIBLE_DESTINATION",
        "BEARERCAPABILITY_NOTAUTH",
        "OUTGOING_CALL_BARRED",
        "MANDATORY_IE_MISSING",
        "INVALID_URL",
    }
)
# Documented for operators; every other cause also falls into RETRY.
RETRY_CAUSES = frozenset(
    {
        "USER_BUSY",
        "NO_ANSWER",
        "NO_USER_RESPONSE",
        "RECOVERY_ON_TIMER_EXPIRE",
        "NORMAL_TEMPORARY_FAILURE",
        "SWITCH_CONGESTION",
        "NORMAL_CIRCUIT_CONGESTION",
        "CALL_REJECTED",
        "ORIGINATOR_CANCEL",
        "DESTINATION_OUT_OF_ORDER",
        "SUBSCRIBER_ABSENT",
        "NETWORK_OUT_OF_ORDER",
        "SYSTEM_SHUTDOWN",
        "MEDIA_TIMEOUT",
        "ALLOTTED_TIMEOUT",
        "PROGRESS_TIMEOUT",
        "NORMAL_CLEARING",
    }
)
# Attempts with these outcomes do not count against the customer's daily cap or rounds.
NOT_COUNTED = frozenset({CONFIG_ERROR, NOT_DIALED})

# What a failed attempt was, for a queue's `retry_when` and the per-cause recall delays
# (docs/daemon.md, "Recalls by cause"). A RETRY cause not listed here is "other".
RECALL_CAUSES = ("no_answer", "busy", "rejected", "unreachable", "short", "no_key", "other")
RECALL_CAUSE_OF = {
    "USER_BUSY": "busy",
    "NO_ANSWER": "no_answer",
    "NO_USER_RESPONSE": "no_answer",
    "PROGRESS_TIMEOUT": "no_answer",
    "ALLOTTED_TIMEOUT": "no_answer",
    "RECOVERY_ON_TIMER_EXPIRE": "no_answer",
    "CALL_REJECTED": "rejected",
    "NORMAL_TEMPORARY_FAILURE": "unreachable",
    "SUBSCRIBER_ABSENT": "unreachable",
    "DESTINATION_OUT_OF_ORDER": "unreachable",
    "NETWORK_OUT_OF_ORDER": "unreachable",
    "SWITCH_CONGESTION": "unreachable",
    "NORMAL_CIRCUIT_CONGESTION": "unreachable",
}
# Today's rule, the default of a queue that sets no `retry_when`: every failure is recalled,
# and a call answered long enough is a success whether or not a key was pressed.
DEFAULT_RETRY_WHEN = tuple(c for c in RECALL_CAUSES if c != "no_key")


def recall_cause(result: str, cause: str | None) -> str | None:
    """The RECALL_CAUSES entry of an attempt with outcome `result` and hangup `cause`; None for
    outcomes that are no failure of the customer's (success, dead number, ours)."""
    if result in (SHORT, NO_KEY):
        return result
    if result == RETRY:
        return RECALL_CAUSE_OF.get(cause or "", "other")
    return None


def retry_when_of(value) -> tuple[str, ...]:
    """A queue's stored `retry_when` (None: the default) as a tuple of RECALL_CAUSES."""
    return DEFAULT_RETRY_WHEN if value is None else tuple(value)


def cause_class(cause: str | None) -> str:
    """RETRY, DEAD_NUMBER or CONFIG_ERROR for a FreeSWITCH hangup cause."""
    if cause in DEAD_NUMBER_CAUSES:
        return DEAD_NUMBER
    if cause in CONFIG_ERROR_CAUSES:
        return CONFIG_ERROR
    return RETRY


def classify(
    *,
    answered: bool,
    talk_seconds: float,
    cause: str | None,
    min_talk: float,
    interrupted: bool = False,
    key_accepted: bool = True,
    retry_when: tuple[str, ...] = DEFAULT_RETRY_WHEN,
) -> str:
    """The outcome of one attempt. "Answered" comes from answer_epoch, never from the cause.
    A call answered long enough with no key a menu accepted is NO_KEY where `retry_when` holds
    "no_key", else a success."""
    if answered:
        if interrupted:
            return INTERRUPTED
        if talk_seconds < min_talk:
            return SHORT
        return NO_KEY if not key_accepted and "no_key" in retry_when else SUCCESS
    if interrupted:
        return INTERRUPTED
    return cause_class(cause)


def of_report(report: CallReport, min_talk: float, retry_when: tuple[str, ...] = DEFAULT_RETRY_WHEN) -> str:
    """The outcome of a call as the dialer reported it (what `store.customers.finish` writes):
    a call that stopped its queue (`stop_reason`) is a configuration error. Whether a menu
    accepted a key is the call's word; for a call that ended while we were away (not known),
    a recorded IVR result says so."""
    if report.stop_reason:
        return CONFIG_ERROR
    accepted = report.key_accepted if report.key_accepted is not None else report.result is not None
    return classify(
        answered=report.answered_at is not None,
        talk_seconds=report.talk_seconds,
        cause=report.cause,
        min_talk=min_talk,
        interrupted=report.interrupted,
        key_accepted=accepted,
        retry_when=retry_when,
    )


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a customer stands in its rounds (a slice of the customer row)."""

    mobiles: tuple[str, ...]
    number_index: int
    round: int
    dead_numbers: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Next:
    """What to write for the customer after an attempt."""

    state: str  # pending / success / failed / dnc
    number_index: int
    round: int
    dead_numbers: frozenset[str]
    delay: float | None = None  # seconds until the next call; None keeps the customer's place


def next_state(
    p: Progress,
    number: str,
    outcome: str,
    *,
    max_recall_count: int,
    recall_delay: float,
    on_dnc: bool,
    cause: str | None = None,
    retry_when: tuple[str, ...] = DEFAULT_RETRY_WHEN,
    recall_delays: Mapping[str, float] | None = None,
) -> Next:
    """The customer's next state after `outcome` (hangup `cause`) on `number` (DESIGN §3).

    A round tries each live number in order; the first success ends the customer
    `success`. A round without success is followed by up to `max_recall_count` more
    rounds, then `failed`; only when the recall cause of its last attempt (`recall_cause`) is in
    `retry_when`, else it ends `failed` at once. The next round comes after the delay
    `recall_delays` gives that cause, else `recall_delay`. Dead numbers are skipped from then
    on. A configuration error or a lost call retries the same number without using a round.
    A customer put on DNC is never dialed again.
    """
    dead = p.dead_numbers | {number} if outcome == DEAD_NUMBER else p.dead_numbers
    if outcome == SUCCESS:
        return Next(states.SUCCESS, p.number_index, p.round, dead)
    if on_dnc:
        return Next(states.DNC, p.number_index, p.round, dead)
    if outcome in NOT_COUNTED:
        return Next(states.PENDING, p.number_index, p.round, dead, None)  # not the customer's doing
    if outcome == INTERRUPTED:
        return Next(states.PENDING, p.number_index, p.round, dead, recall_delay)  # same number, later
    live = [i for i, m in enumerate(p.mobiles) if m not in dead]
    if not live:
        return Next(states.FAILED, p.number_index, p.round, dead)
    later = [i for i in live if i > p.number_index]
    if later:
        return Next(states.PENDING, later[0], p.round, dead, 0.0)
    finished_round = p.round + 1
    why = recall_cause(outcome, cause)
    if finished_round > max_recall_count or (why is not None and why not in retry_when):
        return Next(states.FAILED, p.number_index, finished_round, dead)
    delay = (recall_delays or {}).get(why or "", recall_delay)
    return Next(states.PENDING, live[0], finished_round, dead, delay)


def first_live_index(mobiles, dead_numbers, start: int = 0) -> int | None:
    """Index of the first number at or after `start` that is not dead, or None."""
    for i in range(start, len(mobiles)):
        if mobiles[i] not in dead_numbers:
            return i
    return None
