"""What a finished call means: the cause table and the recall rules (DESIGN §3, §4), pure.

`classify(call)` turns what FreeSWITCH reported into an attempt outcome;
`next_state(customer, outcome, ...)` decides the customer's next state. Neither does I/O,
so behaviour over days of recalls is tested in microseconds.
"""

from __future__ import annotations

import dataclasses

from daemon.store import states
from daemon.store.records import CallReport

# Attempt outcomes.
SUCCESS = "success"  # answered, talked long enough
SHORT = "short"  # answered, but hung up before min_recall_duration
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


def cause_class(cause: str | None) -> str:
    """RETRY, DEAD_NUMBER or CONFIG_ERROR for a FreeSWITCH hangup cause."""
    if cause in DEAD_NUMBER_CAUSES:
        return DEAD_NUMBER
    if cause in CONFIG_ERROR_CAUSES:
        return CONFIG_ERROR
    return RETRY


def classify(
    *, answered: bool, talk_seconds: float, cause: str | None, min_talk: float, interrupted: bool = False
) -> str:
    """The outcome of one attempt. "Answered" comes from answer_epoch, never from the cause."""
    if answered:
        if interrupted:
            return INTERRUPTED
        return SUCCESS if talk_seconds >= min_talk else SHORT
    if interrupted:
        return INTERRUPTED
    return cause_class(cause)


def of_report(report: CallReport, min_talk: float) -> str:
    """The outcome of a call as the dialer reported it (what `store.customers.finish` writes):
    a call that stopped its queue (`stop_reason`) is a configuration error."""
    if report.stop_reason:
        return CONFIG_ERROR
    return classify(
        answered=report.answered_at is not None,
        talk_seconds=report.talk_seconds,
        cause=report.cause,
        min_talk=min_talk,
        interrupted=report.interrupted,
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
    p: Progress, number: str, outcome: str, *, max_recall_count: int, recall_delay: float, on_dnc: bool
) -> Next:
    """The customer's next state after `outcome` on `number` (DESIGN §3).

    A round tries each live number in order; the first success ends the customer
    `success`. A round without success is followed by up to `max_recall_count` more
    rounds, `recall_delay` apart, then `failed`. Dead numbers are skipped from then on.
    A configuration error or a lost call retries the same number without using a round.
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
    if finished_round > max_recall_count:
        return Next(states.FAILED, p.number_index, finished_round, dead)
    return Next(states.PENDING, live[0], finished_round, dead, recall_delay)


def first_live_index(mobiles, dead_numbers, start: int = 0) -> int | None:
    """Index of the first number at or after `start` that is not dead, or None."""
    for i in range(start, len(mobiles)):
        if mobiles[i] not in dead_numbers:
            return i
    return None
