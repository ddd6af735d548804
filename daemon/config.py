"""Configuration: one TOML file plus environment overrides, loaded once into frozen objects.

`load(path, environ)` is called at each entry point; everything below receives the
resulting `Config` (or a part of it) as an argument. A bad value raises `ConfigError`
whose message names the key, e.g. ``api.listen: expected host:port, got 'x'``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import socket
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon.errors import ConfigError
from daemon.esl import commands
from daemon.store import url as db_url

REPO_ROOT = Path(__file__).resolve().parent.parent

# Environment variables that override the file (systemd's EnvironmentFile= sets these).
ENV_KEYS = {
    "AUTOCALL_DB": "database.path",
    "AUTOCALL_API_LISTEN": "api.listen",
    "AUTOCALL_API_TOKENS": "api.tokens",
    "AUTOCALL_TEMPLATES": "templates.dir",
    "AUTOCALL_SOUNDS": "templates.sounds",
    "AUTOCALL_ESL": "esl.address",
    "AUTOCALL_ESL_PASSWORD": "esl.password",
    "AUTOCALL_NODE": "dialer.node",
}


@dataclasses.dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self):
        return f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class QueueDefaults:
    """Values a queue gets when its import leaves the optional fields out."""

    concurrent_call: int = 5
    max_recall_count: int = 3
    min_recall_duration: int = 3


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    listen: Address = Address("127.0.0.1", 8080)
    tokens: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024 * 1024
    import_chunk: int = 2000
    # Slow or idle clients (api/http.py): seconds for a request's headers, for its body, and
    # for an idle kept-alive connection; connections served at once (the next get 503).
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    keepalive_timeout: float = 30.0
    max_connections: int = 200
    # Database work (api/db.py): seconds a request may wait for a thread and the write lock
    # (then 503), and the threads that run reads.
    lock_timeout: float = 5.0
    read_threads: int = 4


@dataclasses.dataclass(frozen=True)
class TemplatesConfig:
    dir: Path = REPO_ROOT / "ivr_templates"
    sounds: Path = REPO_ROOT / "ivr_templates" / "sounds"
    variant: str = "north"


@dataclasses.dataclass(frozen=True)
class EslConfig:
    address: Address = Address("127.0.0.1", 8021)
    password: str = "ClueCon"
    timeout: float = 5.0
    heartbeat_timeout: float = 60.0


@dataclasses.dataclass(frozen=True)
class DialerConfig:
    channel_limit: int = 100
    cps: float = 10.0
    window_start: dt.time = dt.time(7, 0)
    window_end: dt.time = dt.time(21, 0)
    timezone: str = "Asia/Ho_Chi_Minh"
    daily_cap: int = 5
    recall_delay: float = 600.0
    originate_timeout: int = 30
    max_call_seconds: int = 600
    dial_string: str = "sofia/gateway/carrier/{number}"
    caller_id: str = ""
    # Where a menu's "transfer" sends a call; the shipped templates transfer to "agents".
    transfer_destinations: tuple[tuple[str, str], ...] = (("agents", "1000 XML default"),)
    drain_timeout: float = 30.0
    # This daemon's name among the dialers sharing one database: its attempts carry it, and
    # after a restart it reconciles only those (docs/daemon.md, "Nodes").
    node: str = dataclasses.field(default_factory=socket.gethostname)
    # Seconds another node's silence lasts before this one takes over its open calls; never
    # less than `lease_grace` says (docs/scale-out.md, "When something fails").
    node_grace: float = 60.0

    @property
    def lease_grace(self) -> float:
        """The grace actually used: long enough that a dead node's switch has ended every call
        it still carried (a parked call ends at its park_timeout, max_call_seconds)."""
        return max(self.node_grace, 2 * self.max_call_seconds + self.originate_timeout)


@dataclasses.dataclass(frozen=True)
class Config:
    database: db_url.DatabaseUrl = db_url.DatabaseUrl.sqlite("var/autocall.sqlite3")
    # Seconds a write waits for another connection's write lock before it counts as failed
    # (the dialer then pauses and retries; docs/daemon.md, "The database unavailable").
    db_busy_timeout: float = 30.0
    api: ApiConfig = ApiConfig()
    templates: TemplatesConfig = TemplatesConfig()
    esl: EslConfig = EslConfig()
    dialer: DialerConfig = DialerConfig()
    queue_defaults: QueueDefaults = QueueDefaults()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.dialer.timezone)

    @property
    def db_path(self) -> Path | None:
        """The SQLite file, or None when the database is PostgreSQL."""
        return self.database.path


def load(path: str | os.PathLike | None = None, environ=None) -> Config:
    """Read `path` (or $AUTOCALL_CONFIG, or nothing) and apply the environment overrides."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("AUTOCALL_CONFIG") or None
    raw = _read_toml(Path(path)) if path else {}
    base = Path(path).resolve().parent if path else Path.cwd()
    origins = {}
    for env_name, key in ENV_KEYS.items():
        value = environ.get(env_name)
        if value not in (None, ""):
            if env_name == "AUTOCALL_DB":  # a path or a URL, in place of either in the file
                key = "database.url" if db_url.is_url(value) else "database.path"
                if isinstance(raw.get("database"), dict):
                    raw["database"] = {k: v for k, v in raw["database"].items() if k not in ("path", "url")}
            section, name = key.split(".")
            raw.setdefault(section, {})[name] = value
            origins[key] = env_name
    return _build(raw, base, origins, environ.get(db_url.PASSWORD_ENV) or None)


def restart_only_changes(running: Config, loaded: Config) -> list[str]:
    """Keys that differ between `running` and `loaded` but that SIGHUP cannot apply: the
    dialer holds its database, event socket and template loader from start-up."""
    changed = [
        key
        for key, old, new in (
            ("database", running.database, loaded.database),
            ("database.busy_timeout", running.db_busy_timeout, loaded.db_busy_timeout),
        )
        if old != new
    ]
    for section in ("esl", "templates"):
        old, new = getattr(running, section), getattr(loaded, section)
        changed += [
            f"{section}.{f.name}" for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)
        ]
    if running.dialer.node != loaded.dialer.node:
        changed.append("dialer.node")
    old_names = [name for name, _ in running.dialer.transfer_destinations]
    if old_names != [name for name, _ in loaded.dialer.transfer_destinations]:
        changed.append("dialer.transfer_destinations (names)")
    return changed


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    except UnicodeDecodeError as e:  # e.g. saved as UTF-16 ("Unicode") by a Windows editor
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None


class _Section:
    """Typed reads from one TOML table; every error names `section.key`."""

    def __init__(self, raw: dict, name: str, origins: dict | None = None):
        table = raw.pop(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: expected a table")
        self.name, self.table, self.origins = name, dict(table), origins or {}

    def take(self, key, default, convert):
        if key not in self.table:
            return default
        value = self.table.pop(key)
        try:
            return convert(value)
        except (TypeError, ValueError) as e:
            env = self.origins.get(f"{self.name}.{key}")
            raise ConfigError(f"{self.name}.{key}{f' (from {env})' if env else ''}: {e}") from None

    def done(self):
        if self.table:
            raise ConfigError(f"{self.name}.{sorted(self.table)[0]}: unknown key")


def _build(raw: dict, base: Path, origins: dict, db_password: str | None = None) -> Config:
    raw = dict(raw)
    d = Config()
    db = _Section(raw, "database", origins)
    if "path" in db.table and "url" in db.table:
        raise ConfigError("database.path and database.url: give one of them")
    database = db.take("url", None, lambda v: db_url.parse(v, base=base, password=db_password))
    if database is None:
        database = db.take("path", d.database, lambda v: db_url.DatabaseUrl.sqlite(_path(v, base)))
    db_busy_timeout = db.take("busy_timeout", d.db_busy_timeout, _float_in(0.05, 600))
    db.done()

    a = _Section(raw, "api", origins)
    api = ApiConfig(
        listen=a.take("listen", d.api.listen, parse_address),
        tokens=a.take("tokens", d.api.tokens, _tokens),
        max_body_bytes=a.take("max_body_bytes", d.api.max_body_bytes, _int_in(1024, 2**31)),
        import_chunk=a.take("import_chunk", d.api.import_chunk, _int_in(1, 100_000)),
        header_timeout=a.take("header_timeout", d.api.header_timeout, _float_in(0.1, 3600)),
        body_timeout=a.take("body_timeout", d.api.body_timeout, _float_in(0.1, 3600)),
        keepalive_timeout=a.take("keepalive_timeout", d.api.keepalive_timeout, _float_in(0.1, 3600)),
        max_connections=a.take("max_connections", d.api.max_connections, _int_in(1, 100_000)),
        lock_timeout=a.take("lock_timeout", d.api.lock_timeout, _float_in(0.1, 600)),
        read_threads=a.take("read_threads", d.api.read_threads, _int_in(1, 64)),
    )
    a.done()

    t = _Section(raw, "templates", origins)
    templates = TemplatesConfig(
        dir=t.take("dir", d.templates.dir, lambda v: _path(v, base)),
        sounds=t.take("sounds", d.templates.sounds, lambda v: _path(v, base)),
        variant=t.take("variant", d.templates.variant, _choice("north", "south")),
    )
    t.done()

    e = _Section(raw, "esl", origins)
    esl = EslConfig(
        address=e.take("address", d.esl.address, parse_address),
        password=e.take("password", d.esl.password, _nonempty_str),
        timeout=e.take("timeout", d.esl.timeout, _float_in(0.1, 600)),
        heartbeat_timeout=e.take("heartbeat_timeout", d.esl.heartbeat_timeout, _float_in(1, 3600)),
    )
    e.done()

    r = _Section(raw, "dialer", origins)
    dd = d.dialer
    dialer = DialerConfig(
        channel_limit=r.take("channel_limit", dd.channel_limit, _int_in(1, 100_000)),
        cps=r.take("cps", dd.cps, _float_in(0.01, 100_000)),
        window_start=r.take("window_start", dd.window_start, _clock_time),
        window_end=r.take("window_end", dd.window_end, _clock_time),
        timezone=r.take("timezone", dd.timezone, _timezone),
        daily_cap=r.take("daily_cap", dd.daily_cap, _int_in(0, 1000)),
        recall_delay=r.take("recall_delay", dd.recall_delay, _float_in(0, 7 * 86400)),
        originate_timeout=r.take("originate_timeout", dd.originate_timeout, _int_in(1, 600)),
        max_call_seconds=r.take("max_call_seconds", dd.max_call_seconds, _int_in(10, 86_400)),
        dial_string=r.take("dial_string", dd.dial_string, _dial_string),
        caller_id=r.take("caller_id", dd.caller_id, _caller_id),
        transfer_destinations=r.take("transfer_destinations", dd.transfer_destinations, _destinations),
        drain_timeout=r.take("drain_timeout", dd.drain_timeout, _float_in(0, 3600)),
        node=r.take("node", dd.node, _node_name),
        node_grace=r.take("node_grace", dd.node_grace, _float_in(1, 7 * 86400)),
    )
    r.done()
    if dialer.window_start == dialer.window_end:
        raise ConfigError(
            f"dialer.window_start and dialer.window_end are both {_hhmm(dialer.window_start)}: the window "
            'would never open; to call around the clock use window_start = "00:00", window_end = "24:00"'
        )

    q = _Section(raw, "queue_defaults")
    qd = d.queue_defaults
    queue_defaults = QueueDefaults(
        concurrent_call=q.take("concurrent_call", qd.concurrent_call, _int_in(1, 10_000)),
        max_recall_count=q.take("max_recall_count", qd.max_recall_count, _int_in(0, 100)),
        min_recall_duration=q.take("min_recall_duration", qd.min_recall_duration, _int_in(0, 86_400)),
    )
    q.done()

    if raw:
        raise ConfigError(f"{sorted(raw)[0]}: unknown section")
    return Config(
        database=database,
        db_busy_timeout=db_busy_timeout,
        api=api,
        templates=templates,
        esl=esl,
        dialer=dialer,
        queue_defaults=queue_defaults,
    )


# --- converters: each raises ValueError with a sentence that follows the key name ---


def _path(value, base: Path) -> Path:
    if not isinstance(value, str) or not value.strip() or value != value.strip() or not value.isprintable():
        raise ValueError(f"expected a path, got {value!r}")
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def parse_address(value) -> Address:
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and host and port.isdigit() and int(port) < 65536:  # 0: any free port
            return Address(host.strip("[]"), int(port))
    raise ValueError(f"expected host:port, got {value!r}")


MIN_TOKEN_LENGTH = 16  # about 96 bits from token_urlsafe; guessing over HTTP is hopeless


def _tokens(value) -> tuple[str, ...]:
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


def _int_in(low, high):
    def convert(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return convert


def _float_in(low, high):
    def convert(value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return float(value)

    return convert


def _choice(*options):
    def convert(value):
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value

    return convert


def _nonempty_str(value) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValueError("expected a non-empty printable string")
    return value


_CLOCK = re.compile(r"(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,6}))?)?")


def _clock_time(value) -> dt.time:
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


def _hhmm(value: dt.time) -> str:
    return "24:00" if value == dt.time.max else value.strftime("%H:%M:%S" if value.second else "%H:%M")


def _timezone(value) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, TypeError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def _dial_string(value) -> str:
    if not isinstance(value, str) or value.count("{number}") != 1:
        raise ValueError("expected a dial string containing {number} once")
    if not commands.dial_safe(value.replace("{number}", "")):
        raise ValueError("may hold only letters, digits and / . _ - @ : + besides {number}")
    return value


_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _node_name(value) -> str:
    if not isinstance(value, str) or not _NODE.fullmatch(value):
        raise ValueError(f"expected a name of letters, digits and . _ - (at most 63), got {value!r}")
    return value


def _caller_id(value) -> str:
    if not isinstance(value, str) or not (value == "" or value.lstrip("+").isdigit()):
        raise ValueError("expected digits (optionally with a leading +)")
    return value


def _destinations(value) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ValueError("expected a table of name = \"extension [dialplan [context]]\"")
    for name, target in value.items():
        if not isinstance(target, str) or not commands.dial_safe(target.replace(" ", "")):
            raise ValueError(f"destination {name!r} may hold only letters, digits, spaces and / . _ - @ : +")
    return tuple(sorted(value.items()))
