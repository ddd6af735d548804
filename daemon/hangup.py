"""What the switch says about a call's end.

Two sources. A call we followed to its end: its CHANNEL_HANGUP_COMPLETE (`epoch`,
`talk_seconds`, `dialed`). A call that ended while our event socket was down: the record its
own hangup hook left in the switch (`commands.hangup_hook`, one mod_hash entry per slot,
overwritten by the next call of that slot), read after a reconnect (`read_records`) and turned
into the CallReport the recall rules judge like any other (`recorded_report`).
"""

from __future__ import annotations

import dataclasses
import logging
import re

from daemon.esl import commands
from daemon.store.records import CallReport, Claim

log = logging.getLogger("autocall.hangup")
_RESULT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a template's result name (daemon/ivr/parse.py)


@dataclasses.dataclass(frozen=True)
class HangupRecord:
    """A call's end as its hangup hook stored it:
    `<uuid>:<cause>:<answer µs>:<end µs>:<sip>:<keys>:<result>` (`:<result>` absent in a
    record of the versions before it)."""

    uuid: str
    cause: str
    answer_us: int  # 0: never answered
    end_us: int
    sip_status: str | None
    keys: str
    result: str | None = None  # the IVR result the channel carried at its end


def parse_record(text: str) -> HangupRecord | None:
    """The record in `text` (a `hash select` reply), or None when it is not one."""
    parts = text.split(":", 6)
    if len(parts) == 6:
        parts.append("")
    if len(parts) != 7:
        return None
    uuid, cause, answer, end, sip, keys, result = parts
    if not (uuid and cause.replace("_", "").isalnum() and answer.isdigit() and end.isdigit()):
        return None
    result = result if is_result(result) else ""  # only ever ours: anything else is no result
    return HangupRecord(uuid, cause, int(answer), int(end), sip or None, "" if keys == "none" else keys, result or None)


def is_result(text: str) -> bool:
    """Whether `text` can be an IVR result as the channel carries it (`commands.RESULT_VAR`)."""
    return _RESULT.fullmatch(text) is not None


def read_records(client, claims: list[Claim]) -> dict[str, HangupRecord]:
    """uuid -> the record the switch kept of each claim's end, for those it kept one of: a claim
    without a slot (dialed before records existed) has none, and a slot holding another call's
    record (reused, or never written: the switch lost the call) counts as none. A switch without
    mod_hash answers -ERR: said once, and nothing is recovered. ESLError passes through."""
    records: dict[str, HangupRecord] = {}
    for claim in claims:
        if claim.slot is None:
            continue
        text = client.api(commands.hangup_record(claim.slot))
        if text.startswith("-ERR"):
            log.warning(
                "FreeSWITCH keeps no hangup records (%s): load mod_hash; calls that ended while the event"
                " socket was down are recalled",
                text.strip(),
            )
            return records
        record = parse_record(text)
        if record is not None and record.uuid == claim.uuid:
            records[claim.uuid] = record
    return records


def recorded_report(record: HangupRecord, claim: Claim, now: float) -> CallReport:
    """The report of a call that ended while we were away. Talk time is the switch's own (end -
    answer); its times are kept at or before `now` on our clock (the switch's may differ). The
    keys are every key the channel heard; the result is the one the channel carried, else the
    one the store has."""
    answered = record.answer_us > 0
    ended_at = min(now, record.end_us / 1e6)
    answered_at = None
    if answered:
        answered_at = claim.answered_at if claim.answered_at is not None else min(ended_at, record.answer_us / 1e6)
    talk = max(0.0, (record.end_us - record.answer_us) / 1e6) if answered else 0.0
    return CallReport(
        answered_at, ended_at, talk, record.cause, record.sip_status, record.keys, record.result or claim.result
    )


def epoch(event, which: str) -> float:
    """`variable_<which>_uepoch` (µs) of a hangup event as seconds, else `_epoch`, else 0."""
    micro = event.get(f"variable_{which}_uepoch")
    if micro and micro.isdigit():
        return int(micro) / 1e6
    whole = event.get(f"variable_{which}_epoch")
    return float(whole) if whole and whole.isdigit() else 0.0


def talk_seconds(event, answered_at: float | None, now: float) -> float:
    """Talk time as FreeSWITCH measured it (answer -> end), else our own clock's."""
    if event is not None:
        answer, end = epoch(event, "answer"), epoch(event, "end")
        if answer > 0 and end >= answer:
            return end - answer
    return max(0.0, now - answered_at) if answered_at is not None else 0.0


def dialed(event) -> str:
    """Every key the channel heard, as the switch logged them (`digits_dialed`, set at hangup:
    switch_channel.c:4536-4590), so keys pressed while we were away count too."""
    keys = event.get("variable_digits_dialed") or ""
    return "" if keys == "none" else keys
