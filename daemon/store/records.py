"""The plain values that cross the store's boundary: what the API asks to import, what the
dialer claims and reports back. Frozen dataclasses, no database in them."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)  # an import holds up to 200,000 of them
class NewCustomer:
    ext_id: str
    mobiles: list[str]
    fields: dict
    priority: int = 0  # higher is called first within its queue (0-9)


@dataclasses.dataclass(frozen=True)
class ImportRequest:
    queue_code: str
    template: str
    settings: dict  # only the optional queue fields the request gave
    customers: list[NewCustomer]


@dataclasses.dataclass
class ImportResult:
    success: list[str] = dataclasses.field(default_factory=list)
    rejected: list[dict] = dataclasses.field(default_factory=list)  # {"id", "reason"}
    warnings: list[dict] = dataclasses.field(default_factory=list)  # {"id", "reason"}: accepted, a number dropped


@dataclasses.dataclass(frozen=True)
class QueueInfo:
    id: int
    code: str
    template: str
    concurrent_call: int
    max_recall_count: int
    min_recall_duration: int
    waiting: str | None = None  # why the dialer holds this running queue back (queue_state.set_waiting)
    next_due: float | None = None  # when its first pending customer is due, as read (None: nobody pending)


@dataclasses.dataclass(frozen=True)
class Claim:
    """Everything one call needs, taken from the store in the claim's transaction."""

    attempt_id: int
    uuid: str
    job_uuid: str
    number: str
    customer_id: int
    ext_id: str
    fields: dict
    queue_id: int
    queue_code: str
    template: str
    min_talk: int
    answered_at: float | None = None
    slot: int | None = None  # the switch's record of its hangup (daemon/hangup.py); None: none kept
    step: str | None = None  # the IVR step it was last in, for a re-attached call
    result: str | None = None  # the IVR result recorded so far
    retry_when: tuple[str, ...] | None = None  # the queue's recall causes (None: outcome.DEFAULT_RETRY_WHEN)
    caller_id: str | None = None  # the queue's caller id (None: the trunk's pool, or dialer.caller_id)


@dataclasses.dataclass(frozen=True)
class CallReport:
    """What happened on the call, as FreeSWITCH and the IVR reported it."""

    answered_at: float | None
    ended_at: float
    talk_seconds: float
    cause: str | None
    sip_status: str | None = None
    keys: str = ""
    result: str | None = None
    interrupted: bool = False
    stop_reason: str | None = None  # the switch could not run our configuration: config_error, stop the queue
    key_accepted: bool | None = None  # a menu accepted a key (None: not known, e.g. ended while we were away)
    trunk: str | None = None  # the trunk that carried the call (None: no [[trunks]])
