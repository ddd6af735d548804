"""Recovering calls after a restart or a lost connection: the store's live attempts against
FreeSWITCH's channels (rq's `StartedJobRegistry.cleanup`, for calls).

`plan` is pure: which attempts to follow again (re-attach) and which to close, with the
outcome the switch recorded for a call that ended while we were away (`daemon/hangup.py`), or
as lost when it kept nothing. `apply` is the thin part that asks the switch, builds the
re-attached `Call`s and records the ended ones, and kills the channels of ours no open attempt
has (orphans: nobody follows them, and their customers may be called again). It runs at
start-up and after every reconnect, so `kill -9` of the daemon loses nobody, double-dials
nobody, and recalls nobody whose call in fact succeeded.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import gevent

from daemon import esl as esl_mod
from daemon import hangup
from daemon.esl import commands
from daemon.store.records import CallReport, Claim

log = logging.getLogger("autocall.reconcile")

LOST = "CALL_LOST"  # cause recorded for a call FreeSWITCH no longer has and kept no record of
# `show channels` reads the core database, which the switch's SQL thread fills after the channel
# events (mod_commands.c ~5883, switch_core_sqldb.c ~2476): a live channel it misses is listed
# again every RELIST seconds, for LISTING_LAG seconds at most.
RELIST, LISTING_LAG = 0.25, 5.0


@dataclasses.dataclass(frozen=True)
class Reattach:
    """An attempt whose channel FreeSWITCH still has: follow it from here."""

    claim: Claim
    state: str  # the channel's callstate (RINGING, EARLY, ACTIVE, ...)
    answered_at: float | None  # the stored answer, else `now` for a channel answered meanwhile
    newly_answered: bool  # answered while we were away: the store must hear of it
    parked: bool  # an application runs (park, or one of ours): the originate is done


def plan(
    open_attempts: list[Claim], channels: dict[str, dict], now: float, records: dict | None = None
) -> tuple[list[Reattach], list[tuple[Claim, CallReport]]]:
    """(re-attach, ended): each open attempt whose uuid is a key of `channels` (uuid -> row of
    `show channels as json`) is re-attached; each other one ended, with the report that closes
    it: from its hangup record in `records` (uuid -> HangupRecord) when the switch kept one,
    judged by the recall rules like any call; else CALL_LOST, interrupted (nobody knows how it
    went: the customer is recalled after the recall delay)."""
    reattach, ended = [], []
    for claim in open_attempts:
        row = channels.get(claim.uuid)
        record = (records or {}).get(claim.uuid)
        if row is None and record is not None:
            ended.append((claim, hangup.recorded_report(record, claim, now)))
            continue
        if row is None:
            ended.append((claim, CallReport(claim.answered_at, now, 0.0, LOST, interrupted=True)))
            continue
        state = row.get("callstate", "")
        newly = claim.answered_at is None and state == "ACTIVE"
        reattach.append(
            Reattach(claim, state, now if newly else claim.answered_at, newly, bool(row.get("application")))
        )
    return reattach, ended


def channel_rows(body: str) -> dict[str, dict]:
    """uuid -> row (callstate, application, ...) from `show channels as json` (which says
    {"row_count": 0} when empty)."""
    try:
        data = json.loads(body)
    except ValueError:
        raise esl_mod.ESLError(f"show channels: unexpected reply {body[:80]!r}") from None
    return {row["uuid"]: row for row in data.get("rows", [])}


def apply(client, claims: list[Claim], now: float, *, follow, close, unowned, sleep=gevent.sleep) -> None:
    """Ask `client` for its channels, and for the hangup records of the calls it no longer has,
    and carry out `plan`: `follow(reattach, events)` for each call to re-attach (`events`: what
    arrived for it while we listed), `close(claim, report)` for each ended one. A call is ended
    only when `show channels` misses it and `uuid_exists` says so too. A channel of ours that no
    open attempt has (`unowned(uuids)` -> those of the store's attempts closed or never made, on
    any node) is killed: nobody follows it, and its customer may be called again meanwhile.
    ESLError from the switch, and StoreUnavailable from `unowned`, pass through before anything
    is followed or closed."""
    heard: dict[str, list] = {claim.uuid: [] for claim in claims}
    for claim in claims:  # subscribed before listing, so no event falls between the two
        client.subscribe_channel(claim.uuid, heard[claim.uuid].append)
    channels = channel_rows(client.api(commands.SHOW_CHANNELS))
    mine = {claim.uuid for claim in claims}
    others = [uuid for uuid in channels if uuid not in mine]
    orphans = unowned(others) if others else set()
    for claim in claims:
        if claim.uuid not in channels and _hung_up(heard[claim.uuid]):
            channels[claim.uuid] = {}  # gone while we listed: follow it to its recorded end
    unlisted = [claim.uuid for claim in claims if claim.uuid not in channels]
    channels.update(_listed_late(client, unlisted, heard, sleep))
    _kill_orphans(client, sorted(orphans))
    records = hangup.read_records(client, [claim for claim in claims if claim.uuid not in channels])
    reattach, ended = plan(claims, channels, now, records)
    reattach = [_with_channel_result(client, item) for item in reattach]
    for claim, report in ended:
        client.unsubscribe_channel(claim.uuid)
        if claim.uuid in records:
            log.info(
                "call %s (customer %r of %r) ended while the event socket was down: %s, talk %.1fs, keys %s",
                claim.uuid,
                claim.ext_id,
                claim.queue_code,
                report.cause,
                report.talk_seconds,
                report.keys or "-",
            )
        close(claim, report)
    for item in reattach:
        log.info(
            "re-attached call %s (customer %r of %r, %s, step %s)",
            item.claim.uuid,
            item.claim.ext_id,
            item.claim.queue_code,
            item.state,
            item.claim.step or "-",
        )
        follow(item, heard[item.claim.uuid])


def _with_channel_result(client, item: Reattach) -> Reattach:
    """`item` with the IVR result its channel carries (`commands.RESULT_VAR`), which is newer than
    the store's when the daemon stopped before it could write it."""
    if item.claim.slot is None:  # dialled without a hangup record: the channel carries none
        return item
    said = client.api(commands.uuid_getvar(item.claim.uuid, commands.RESULT_VAR)).strip()
    if said == item.claim.result or not hangup.is_result(said):  # `_undef_`: no result yet
        return item
    return dataclasses.replace(item, claim=dataclasses.replace(item.claim, result=said))


def _kill_orphans(client, uuids: list[str]) -> None:
    """uuid_kill each of `uuids` that carries our tag (`commands.ATTEMPT_VAR`, read from the
    live channel: `show channels` has no column for it); another program's channel is left be."""
    for uuid in uuids:
        attempt = client.api(commands.uuid_getvar(uuid, commands.ATTEMPT_VAR)).strip()
        if not attempt.isdigit():
            continue
        said = client.api(commands.uuid_kill(uuid)).strip()
        log.warning(
            "channel %s (attempt %s) is up on FreeSWITCH but no open attempt has it; killed it (uuid_kill: %s)",
            uuid,
            attempt,
            said or "-",
        )


def _listed_late(client, uuids: list[str], heard: dict[str, list], sleep) -> dict[str, dict]:
    """uuid -> row for each of `uuids` (not in `show channels`) that the switch still has: its
    live session table (`uuid_exists`) knows a new channel before the listing does. Listed
    again until each shows (or hangs up: its events are then heard); one still unlisted after
    LISTING_LAG is followed with its state unknown ({}) rather than closed beside a live call."""
    live = [uuid for uuid in uuids if client.api(commands.uuid_exists(uuid)).strip() != "false"]
    rows: dict[str, dict] = {}
    waited = 0.0
    while waited < LISTING_LAG:
        waiting = [uuid for uuid in live if uuid not in rows and not _hung_up(heard[uuid])]
        if not waiting:
            break
        sleep(RELIST)
        waited += RELIST
        listed = channel_rows(client.api(commands.SHOW_CHANNELS))
        rows.update((uuid, listed[uuid]) for uuid in waiting if uuid in listed)
    for uuid in live:
        if uuid not in rows:
            if not _hung_up(heard[uuid]):
                log.warning(
                    "call %s: FreeSWITCH has its channel but did not list it for %.0fs; following it", uuid, LISTING_LAG
                )
            rows[uuid] = {}
    return rows


def _hung_up(events) -> bool:
    return any(event.name == "CHANNEL_HANGUP_COMPLETE" for event in events)
