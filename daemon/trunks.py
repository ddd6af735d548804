"""Carrier trunks: which trunk a number goes out on, each trunk's caps, failover, and trunks
marked down for a while after failing again and again (docs/daemon.md, "Trunks").

`Trunk` is one validated `[[trunks]]` entry; `trunks(value, dialer)` reads the list. `TrunkPool`
is the dialer's running state: calls in progress and a CPS token bucket per trunk, the failures
in a row, the caller-id rotation. Everything takes `now` (monotonic seconds); no I/O.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tomllib
from pathlib import Path

from daemon import config_values as values
from daemon.pacing import TokenBucket, bucket_for

log = logging.getLogger("autocall.trunks")

CARRIERS_FILE = Path(__file__).with_name("carriers_vn.toml")
# Hangup causes that say the trunk, not the callee, failed: the same attempt goes out on the
# next trunk. NORMAL_TEMPORARY_FAILURE is what a gateway's 503 (or no answer from it) becomes.
FAILOVER_CAUSES = frozenset({"INVALID_GATEWAY", "GATEWAY_DOWN", "NORMAL_TEMPORARY_FAILURE"})
# ...of those, the ones where FreeSWITCH made no channel (no hangup event will follow).
NO_CHANNEL_CAUSES = frozenset({"INVALID_GATEWAY", "GATEWAY_DOWN"})
DESCRIBE_LIMIT = 400  # characters of the trunks' status line
MAX_TRUNKS = 64
DEFAULT_NAME = "default"  # the trunk of `dialer.dial_string`, for numbers no trunk takes
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_PREFIX = re.compile(r"0[0-9]{1,9}")


@dataclasses.dataclass(frozen=True)
class Trunk:
    name: str
    dial_string: str  # validated like dialer.dial_string: {number} once, nothing FreeSWITCH reads as syntax
    prefixes: tuple[str, ...] = ()  # national-form prefixes it is preferred for; (): every number
    channel_limit: int = 100
    cps: float = 10.0
    caller_ids: tuple[str, ...] = ()  # rotated over when the queue sets none

    def matches(self, number: str) -> bool:
        return any(number.startswith(p) for p in self.prefixes)


def carrier_prefixes(path: Path = CARRIERS_FILE) -> dict[str, tuple[str, ...]]:
    """Carrier name -> its prefixes, from the data file (dated and sourced in its header)."""
    with open(path, "rb") as f:
        return {name: tuple(table["prefixes"]) for name, table in tomllib.load(f).items()}


def trunks(value, *, channel_limit: int, cps: float) -> tuple[Trunk, ...]:
    """`[[trunks]]` as Trunks (ValueError names the entry and key). A trunk's channel_limit and
    cps default to the dialer's."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ValueError("expected [[trunks]] tables")
    if len(value) > MAX_TRUNKS:
        raise ValueError(f"at most {MAX_TRUNKS} trunks")
    carriers = carrier_prefixes()
    result: list[Trunk] = []
    for i, table in enumerate(value):
        table = dict(table)
        where = f"[{i}]"
        try:
            name = table.pop("name", None)
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ValueError("name: letters, digits, _ and - (at most 32), required")
            where = f"[{i}] ({name})"
            if name in {t.name for t in result} or name == DEFAULT_NAME:
                raise ValueError(f"name: {name!r} is taken")
            if "dial_string" not in table:
                raise ValueError('dial_string: required, e.g. "sofia/gateway/viettel/{number}"')
            trunk = Trunk(
                name=name,
                dial_string=_key(table, "dial_string", values.dial_string),
                prefixes=_prefixes(table.pop("prefixes", []), table.pop("carriers", []), carriers),
                channel_limit=_key(table, "channel_limit", values.int_in(1, 100_000), channel_limit),
                cps=_key(table, "cps", values.float_in(0.01, 100_000), cps),
                caller_ids=_key(table, "caller_ids", _caller_ids, ()),
            )
            if table:
                raise ValueError(f"{sorted(table)[0]}: unknown key")
        except ValueError as e:
            raise ValueError(f"{where}.{e}") from None
        result.append(trunk)
    return tuple(result)


def _key(table: dict, key: str, convert, default=None):
    if key not in table:
        return default
    try:
        return convert(table.pop(key))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{key}: {e}") from None


def _prefixes(prefixes, names, carriers: dict) -> tuple[str, ...]:
    if not isinstance(prefixes, list) or not all(isinstance(p, str) and _PREFIX.fullmatch(p) for p in prefixes):
        raise ValueError('prefixes: expected national-form prefixes such as ["086", "096"]')
    if not isinstance(names, list) or not all(n in carriers for n in names):
        raise ValueError(f"carriers: expected names from {', '.join(carriers)} ({CARRIERS_FILE.name})")
    return tuple(dict.fromkeys([*prefixes, *(p for n in names for p in carriers[n])]))


def _caller_ids(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of caller ids (digits)")
    for item in value:
        if not item:
            raise ValueError("a caller id cannot be empty")
        values.caller_id(item)
    return tuple(value)


@dataclasses.dataclass
class _State:
    bucket: TokenBucket
    busy: int = 0
    failures: int = 0  # trunk-level failures in a row
    last_cause: str | None = None
    down_until: float = float("-inf")
    next_caller: int = 0


class TrunkPool:
    """The dialer's trunks at run time. `acquire` picks the trunk for a number (and takes one of
    its channels and a CPS token), `release` gives the channel back; `failed` / `worked` keep
    count of trunk-level failures, and `down_after` of them in a row mark a trunk down for
    `down_for` seconds: it is then used only when no trunk that is up can take the call."""

    def __init__(self, configured: tuple[Trunk, ...], fallback: Trunk, *, down_after: int, down_for: float, now: float):
        self._states: dict[str, _State] = {}
        self.configure(configured, fallback, down_after=down_after, down_for=down_for, now=now)

    def configure(self, configured, fallback: Trunk, *, down_after: int, down_for: float, now: float):
        """Take new settings (SIGHUP); calls in progress stay counted on trunks of the same name.
        `fallback` (the dialer's dial string) is added unless a configured trunk takes every number."""
        catch_all = any(not t.prefixes for t in configured)
        self.trunks = tuple(configured) + (() if catch_all else (fallback,))
        self.down_after, self.down_for = down_after, down_for
        old, self._states = self._states, {}
        for t in self.trunks:
            state = old.get(t.name)
            if state is None or state.bucket.rate != t.cps:
                state = dataclasses.replace(state or _State(bucket_for(t.cps, now)), bucket=bucket_for(t.cps, now))
            self._states[t.name] = state

    def candidates(self, number: str) -> list[Trunk]:
        """Every trunk in the order a call to `number` tries them: those whose prefixes match,
        then those without prefixes, then the others (a cost preference only: number
        portability makes any trunk able to reach any number), each group in config order."""
        return sorted(self.trunks, key=lambda t: 0 if t.matches(number) else (1 if not t.prefixes else 2))

    def room(self, now: float) -> int:
        """How many calls could start now, summed over the trunks (free channels and tokens)."""
        total = 0
        for t in self.trunks:
            state = self._states[t.name]
            total += max(0, min(t.channel_limit - state.busy, state.bucket.available(now)))
        return total

    def acquire(self, number: str, now: float, tried: frozenset[str] = frozenset()) -> Trunk | None:
        """The first candidate not in `tried` with a free channel and a token, preferring trunks
        that are up; its channel and token taken. None: none can take the call now."""
        ready = [
            t
            for t in self.candidates(number)
            if t.name not in tried
            and self._states[t.name].busy < t.channel_limit
            and self._states[t.name].bucket.available(now) >= 1
        ]
        up = [t for t in ready if self._states[t.name].down_until <= now]
        if not ready:
            return None
        trunk = (up or ready)[0]
        state = self._states[trunk.name]
        state.bucket.take(now)
        state.busy += 1
        return trunk

    def adopt(self, number: str) -> Trunk:
        """Count a call found in progress (re-attached after a restart) on the trunk a new call
        to its number would take first; it is not known which one carried it."""
        trunk = self.candidates(number)[0]
        self._states[trunk.name].busy += 1
        return trunk

    def forget_calls(self):
        """No call is in progress any more as far as the pool knows (the event socket was lost)."""
        for state in self._states.values():
            state.busy = 0

    def release(self, name: str):
        state = self._states.get(name)
        if state is not None and state.busy > 0:
            state.busy -= 1

    def caller_id(self, name: str) -> str | None:
        """The next caller id of the trunk's pool (round robin), or None when it has none."""
        trunk = next((t for t in self.trunks if t.name == name), None)
        if trunk is None or not trunk.caller_ids:
            return None
        state = self._states[name]
        caller = trunk.caller_ids[state.next_caller % len(trunk.caller_ids)]
        state.next_caller += 1
        return caller

    def failed(self, name: str, cause: str, now: float):
        """A trunk-level failure of trunk `name` (FAILOVER_CAUSES)."""
        state = self._states.get(name)
        if state is None:
            return
        state.failures += 1
        state.last_cause = cause
        if state.failures >= self.down_after and state.down_until <= now:
            state.down_until = now + self.down_for
            log.warning(
                "trunk %s marked down for %.0fs: %d trunk-level failures in a row (last %s); "
                "calls go out on the other trunks meanwhile",
                name,
                self.down_for,
                state.failures,
                cause,
            )

    def worked(self, name: str, now: float):
        """A call on trunk `name` reached the callee's side (answered, busy, no answer, ...)."""
        state = self._states.get(name)
        if state is None:
            return
        if state.down_until > now or state.failures >= self.down_after:
            log.info("trunk %s carries calls again", name)
        state.failures, state.down_until = 0, float("-inf")

    def is_down(self, name: str, now: float) -> bool:
        return self._states[name].down_until > now

    def busy(self, name: str) -> int:
        return self._states[name].busy

    def describe(self, now: float) -> str:
        """`trunks: viettel 3/30, vina 0/20 down for 42s (5 failures in a row, NORMAL_TEMPORARY_FAILURE)`,
        at most DESCRIBE_LIMIT characters (the state file `autocall status` reads is 1 KiB)."""
        parts = []
        for t in self.trunks:
            state = self._states[t.name]
            part = f"{t.name} {state.busy}/{t.channel_limit}"
            if state.down_until > now:
                part += (
                    f" down for {state.down_until - now:.0f}s ({state.failures} failures in a row, {state.last_cause})"
                )
            parts.append(part)
        text = "trunks: " + ", ".join(parts)
        if len(text) > DESCRIBE_LIMIT:
            text = text[: DESCRIBE_LIMIT - 3] + "..."
        return text
