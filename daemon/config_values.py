"""The converters of config values: each takes what TOML (or the environment) gave and returns
the value, or raises ValueError with a sentence that follows the key name
(``api.listen: expected host:port, got 'x'``). `daemon.config` applies them key by key."""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import ipaddress
import os
import re
import stat
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon.esl import commands


@dataclasses.dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self):
        return f"{self.host}:{self.port}"


def path(value, base: Path) -> Path:
    if not isinstance(value, str) or not value.strip() or value != value.strip() or not value.isprintable():
        raise ValueError(f"expected a path, got {value!r}")
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def address(value) -> Address:
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and host and port.isdigit() and int(port) < 65536:  # 0: any free port
            return Address(host.strip("[]"), int(port))
    raise ValueError(f"expected host:port, got {value!r}")


def is_loopback(address: Address) -> bool:
    """Whether only this host can reach `address` ("localhost" or a loopback IP)."""
    if address.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def boolean(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


MIN_TOKEN_LENGTH = 16  # about 96 bits from token_urlsafe; guessing over HTTP is hopeless


def tokens(value) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(t, str) for t in items):
        raise ValueError("expected a list of strings or a comma-separated string")
    tokens = tuple(t.strip() for t in items if t.strip())
    for t in tokens:
        if not t.isascii() or not t.isprintable() or " " in t:
            raise ValueError("each token must be printable ASCII without spaces")
        if len(t) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"a token of {len(t)} characters is too easy to guess; use at least "
                f"{MIN_TOKEN_LENGTH} (python3 -c \"import secrets; print(secrets.token_urlsafe(32))\")"
            )
    return tokens


def int_in(low, high):
    def convert(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return convert


def float_in(low, high):
    def convert(value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return float(value)

    return convert


def choice(*options):
    def convert(value):
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value

    return convert


def nonempty_str(value) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValueError("expected a non-empty printable string")
    return value


_CLOCK = re.compile(r"(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,6}))?)?")


def clock_time(value) -> dt.time:
    """ "HH:MM" or "HH:MM:SS" from 00:00 to 24:00; "24:00" (end of day) is dt.time.max."""
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value
    match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match:
        hour, minute, second = (int(part or 0) for part in match.groups()[:3])
        micro = int((match.group(4) or "0").ljust(6, "0"))
        if (hour, minute, second, micro) == (24, 0, 0, 0):
            return dt.time.max
        if hour < 24 and minute < 60 and second < 60:
            return dt.time(hour, minute, second, micro)
    raise ValueError(f'expected a time of day "HH:MM" from 00:00 to 24:00, got {value!r}')


def hhmm(value: dt.time) -> str:
    return "24:00" if value == dt.time.max else value.strftime("%H:%M:%S" if value.second else "%H:%M")


def timezone(value) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, TypeError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def dial_string(value) -> str:
    if not isinstance(value, str) or value.count("{number}") != 1:
        raise ValueError("expected a dial string containing {number} once")
    if not commands.dial_safe(value.replace("{number}", "")):
        raise ValueError("may hold only letters, digits and / . _ - @ : + besides {number}")
    return value


_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def node_name(value) -> str:
    if not isinstance(value, str) or not _NODE.fullmatch(value):
        raise ValueError(f"expected a name of letters, digits and . _ - (at most 63), got {value!r}")
    return value


def caller_id(value) -> str:
    if not isinstance(value, str) or not (value == "" or value.lstrip("+").isdigit()):
        raise ValueError("expected digits (optionally with a leading +)")
    return value


def destinations(value) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ValueError("expected a table of name = \"extension [dialplan [context]]\"")
    for name, target in value.items():
        if not isinstance(target, str) or not commands.dial_safe(target.replace(" ", "")):
            raise ValueError(f"destination {name!r} may hold only letters, digits, spaces and / . _ - @ : +")
    return tuple(sorted(value.items()))


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_CLOSED_DATES = 3660  # ten years of every day: a list beyond that is a mistake


def closed_dates(value) -> frozenset[dt.date]:
    """["2027-02-05", "2027-02-06..2027-02-10", ...]: local dates (ISO), or inclusive ranges."""
    if not isinstance(value, list):
        raise ValueError('expected a list of dates "YYYY-MM-DD" or ranges "YYYY-MM-DD..YYYY-MM-DD"')
    days: set[dt.date] = set()
    for item in value:
        first, _, last = item.partition("..") if isinstance(item, str) else ("", "", "")
        try:
            begin = dt.date.fromisoformat(first) if isinstance(item, str) else item
            end = dt.date.fromisoformat(last) if last else begin
        except ValueError:
            begin = end = None
        if not isinstance(begin, dt.date) or isinstance(begin, dt.datetime) or end is None or end < begin:
            raise ValueError(f'expected a date "YYYY-MM-DD" or a range "YYYY-MM-DD..YYYY-MM-DD", got {item!r}')
        if (end - begin).days + len(days) >= MAX_CLOSED_DATES:
            raise ValueError(f"more than {MAX_CLOSED_DATES} closed dates")
        days.update(begin + dt.timedelta(days=n) for n in range((end - begin).days + 1))
    return frozenset(days)


def closed_weekdays(value) -> frozenset[int]:
    """["sunday", ...] as weekday numbers (0 = Monday); not all seven."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v.lower() in WEEKDAYS for v in value):
        raise ValueError(f"expected a list of weekday names ({', '.join(WEEKDAYS)}), got {value!r}")
    days = frozenset(WEEKDAYS.index(v.lower()) for v in value)
    if len(days) == 7:
        raise ValueError("every weekday is closed: the window would never open")
    return days


def recall_delays(value) -> tuple[tuple[str, float], ...]:
    """{busy = 120, no_answer = 1800, ...}: seconds by recall cause (outcome.RECALL_CAUSES)."""
    from daemon.outcome import RECALL_CAUSES

    if not isinstance(value, dict):
        raise ValueError(f"expected a table of cause = seconds, causes: {', '.join(RECALL_CAUSES)}")
    delays = []
    for cause, seconds in value.items():
        if cause not in RECALL_CAUSES:
            raise ValueError(f"unknown cause {cause!r}; causes: {', '.join(RECALL_CAUSES)}")
        delays.append((cause, float_in(0, 7 * 86400)(seconds)))
    return tuple(sorted(delays))


MAX_PRIORITY = 9  # priorities are 0 (default) to 9: the claim looks at each level once


def priority_by_dpd(value) -> tuple[tuple[int, int], ...]:
    """{"1" = 1, "30" = 2, "90" = 3}: from that many days past due on, that priority; as
    ((dpd, priority), ...) highest dpd first."""
    if not isinstance(value, dict):
        raise ValueError('expected a table of "days past due" = priority, e.g. { 30 = 1, 90 = 2 }')
    rules = []
    for dpd, priority in value.items():
        if not dpd.isdigit():
            raise ValueError(f"{dpd!r} is not a whole number of days past due")
        rules.append((int(dpd), int_in(0, MAX_PRIORITY)(priority)))
    return tuple(sorted(rules, reverse=True))


MAX_FILE_BYTES = 1 << 20  # an operator's text file (the config, a template): a few KiB; past this it is none


class NotSmallFile(ValueError):
    """What is at the path is no file of ours: read_small says what it is."""


def read_small(path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at `path`, refusing without reading what would stall or
    swamp a service: a FIFO or a device (open and read would block its loop), a folder, a file
    over `limit` bytes (a 1 GiB template took 2 GB of memory to parse)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotSmallFile("not a regular file (a folder, a FIFO or a device)")
        if st.st_size > limit:
            raise NotSmallFile(f"{st.st_size:,} bytes; at most {limit:,} are read")
        return os.read(fd, limit + 1)
    finally:
        os.close(fd)


def toml_text(data: bytes) -> str:
    """A TOML file's bytes (the config, a template) as text: UTF-8, without the byte order mark
    Windows Notepad puts in front (TOML has none; tomllib calls it an invalid statement at line 1)."""
    return data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
