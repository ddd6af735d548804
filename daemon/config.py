"""Configuration: one TOML file plus environment overrides, loaded once into frozen objects.

`load(path, environ)` is called at each entry point; everything below receives the
resulting `Config` (or a part of it) as an argument. A bad value raises `ConfigError`
whose message names the key, e.g. ``api.listen: expected host:port, got 'x'``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import os
import socket
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon import config_values as values
from daemon import trunks as trunks_mod
from daemon import webhooks as webhooks_mod
from daemon.config_values import Address  # noqa: F401 - re-exported
from daemon.errors import ConfigError
from daemon.pacing import CallingWindow
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
class QueueDefaults:
    """Values a queue gets when its import leaves the optional fields out."""

    concurrent_call: int = 5
    max_recall_count: int = 3
    min_recall_duration: int = 3


@dataclasses.dataclass(frozen=True)
class PriorityConfig:
    """A customer's priority when its import gives none: from its `dpd` (days past due)."""

    by_dpd: tuple[tuple[int, int], ...] = ()  # (from dpd, priority), highest dpd first

    def of(self, dpd) -> int:
        if isinstance(dpd, int) and not isinstance(dpd, bool):
            for days, priority in self.by_dpd:
                if dpd >= days:
                    return priority
        return 0


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
    # Local dates (Tết, public holidays) and weekdays (0 = Monday) on which no call starts.
    closed_dates: frozenset[dt.date] = frozenset()
    closed_weekdays: frozenset[int] = frozenset()
    daily_cap: int = 5
    recall_delay: float = 600.0
    # Seconds before the next round by the recall cause of the round's last call (busy: soon,
    # no answer: later); a cause not listed waits recall_delay.
    recall_delays: tuple[tuple[str, float], ...] = ()
    originate_timeout: int = 30
    max_call_seconds: int = 600
    dial_string: str = "sofia/gateway/carrier/{number}"
    caller_id: str = ""
    # Where a menu's "transfer" sends a call; the shipped templates transfer to "agents".
    transfer_destinations: tuple[tuple[str, str], ...] = (("agents", "1000 XML default"),)
    drain_timeout: float = 30.0
    # Trunk-level failures in a row that mark a [[trunks]] entry down, and for how many seconds.
    trunk_down_after: int = 3
    trunk_down_for: float = 60.0
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
class MetricsConfig:
    """Where each program serves Prometheus metrics (docs/metrics.md); None: not served."""

    listen: Address | None = None  # autocall-daemon
    api_listen: Address | None = None  # autocall-api
    allow_remote: bool = False  # metrics have no authentication: loopback only unless this is set


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
    priority: PriorityConfig = PriorityConfig()
    # Carrier trunks ([[trunks]], docs/daemon.md "Trunks"); none: every call uses dialer.dial_string.
    trunks: tuple[trunks_mod.Trunk, ...] = ()
    webhooks: tuple[webhooks_mod.Webhook, ...] = ()
    notifier: webhooks_mod.NotifierConfig = webhooks_mod.NotifierConfig()
    metrics: MetricsConfig = MetricsConfig()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.dialer.timezone)

    @property
    def caller_ids(self) -> frozenset[str]:
        """The caller ids a queue may choose: dialer.caller_id and every trunk's."""
        ids = {c for t in self.trunks for c in t.caller_ids}
        return frozenset(ids | ({self.dialer.caller_id} if self.dialer.caller_id else set()))

    def fallback_trunk(self) -> trunks_mod.Trunk:
        """The trunk of dialer.dial_string: numbers no [[trunks]] entry takes go out on it."""
        d = self.dialer
        return trunks_mod.Trunk(trunks_mod.DEFAULT_NAME, d.dial_string, (), d.channel_limit, d.cps)

    def calling_window(self) -> CallingWindow:
        """The calling window of `[dialer]`: hours, time zone, closed dates and weekdays."""
        d = self.dialer
        return CallingWindow(
            d.window_start, d.window_end, self.tz, closed_dates=d.closed_dates, closed_weekdays=d.closed_weekdays
        )

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
    try:
        return _build(raw, base, origins, environ.get(db_url.PASSWORD_ENV) or None)
    except ConfigError as e:
        if path:  # which file, for the operator who has several (or edited the wrong one)
            raise ConfigError(f"config file {path}: {e}") from None
        raise


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
    for section in ("esl", "templates", "metrics"):
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
        return tomllib.loads(values.toml_text(values.read_small(path)))
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror}") from None
    except values.NotSmallFile as e:
        raise ConfigError(f"config file {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    except UnicodeDecodeError as e:  # e.g. saved as UTF-16 ("Unicode") by a Windows editor
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None


class _Tables(dict):
    """The file's top-level tables; `take` hands one over and remembers its name, so a name left
    over (unknown) can be told the nearest one that was asked for."""

    def __init__(self, raw: dict):
        super().__init__(raw)
        self.asked: list[str] = []

    def take(self, name: str, default=None):
        self.asked.append(name)
        return self.pop(name, default)


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


class _Section:
    """Typed reads from one TOML table; every error names `section.key`."""

    def __init__(self, raw: _Tables, name: str, origins: dict | None = None):
        table = raw.take(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: expected a table")
        self.name, self.table, self.origins = name, dict(table), origins or {}
        self.known: list[str] = []  # the keys asked for: an unknown one is told the nearest

    def take(self, key, default, convert):
        self.known.append(key)
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
            key = sorted(self.table)[0]
            raise ConfigError(f"{self.name}.{key}: unknown key{_did_you_mean(key, self.known)}")


def _build(raw: dict, base: Path, origins: dict, db_password: str | None = None) -> Config:
    raw = _Tables(raw)
    d = Config()
    db = _Section(raw, "database", origins)
    if "path" in db.table and "url" in db.table:
        raise ConfigError("database.path and database.url: give one of them")
    database = db.take("url", None, lambda v: db_url.parse(v, base=base, password=db_password))
    if database is None:
        database = db.take("path", d.database, lambda v: db_url.DatabaseUrl.sqlite(values.path(v, base)))
    db_busy_timeout = db.take("busy_timeout", d.db_busy_timeout, values.float_in(0.05, 600))
    db.done()

    a = _Section(raw, "api", origins)
    api = ApiConfig(
        listen=a.take("listen", d.api.listen, values.address),
        tokens=a.take("tokens", d.api.tokens, values.tokens),
        max_body_bytes=a.take("max_body_bytes", d.api.max_body_bytes, values.int_in(1024, 2**31)),
        import_chunk=a.take("import_chunk", d.api.import_chunk, values.int_in(1, 100_000)),
        header_timeout=a.take("header_timeout", d.api.header_timeout, values.float_in(0.1, 3600)),
        body_timeout=a.take("body_timeout", d.api.body_timeout, values.float_in(0.1, 3600)),
        keepalive_timeout=a.take("keepalive_timeout", d.api.keepalive_timeout, values.float_in(0.1, 3600)),
        max_connections=a.take("max_connections", d.api.max_connections, values.int_in(1, 100_000)),
        lock_timeout=a.take("lock_timeout", d.api.lock_timeout, values.float_in(0.1, 600)),
        read_threads=a.take("read_threads", d.api.read_threads, values.int_in(1, 64)),
    )
    a.done()

    t = _Section(raw, "templates", origins)
    templates = TemplatesConfig(
        dir=t.take("dir", d.templates.dir, lambda v: values.path(v, base)),
        sounds=t.take("sounds", d.templates.sounds, lambda v: values.path(v, base)),
        variant=t.take("variant", d.templates.variant, values.choice("north", "south")),
    )
    t.done()

    e = _Section(raw, "esl", origins)
    esl = EslConfig(
        address=e.take("address", d.esl.address, values.address),
        password=e.take("password", d.esl.password, values.nonempty_str),
        timeout=e.take("timeout", d.esl.timeout, values.float_in(0.1, 600)),
        heartbeat_timeout=e.take("heartbeat_timeout", d.esl.heartbeat_timeout, values.float_in(1, 3600)),
    )
    e.done()

    r = _Section(raw, "dialer", origins)
    dd = d.dialer
    dialer = DialerConfig(
        channel_limit=r.take("channel_limit", dd.channel_limit, values.int_in(1, 100_000)),
        cps=r.take("cps", dd.cps, values.float_in(0.01, 100_000)),
        window_start=r.take("window_start", dd.window_start, values.clock_time),
        window_end=r.take("window_end", dd.window_end, values.clock_time),
        timezone=r.take("timezone", dd.timezone, values.timezone),
        closed_dates=r.take("closed_dates", dd.closed_dates, values.closed_dates),
        closed_weekdays=r.take("closed_weekdays", dd.closed_weekdays, values.closed_weekdays),
        daily_cap=r.take("daily_cap", dd.daily_cap, values.int_in(0, 1000)),
        recall_delay=r.take("recall_delay", dd.recall_delay, values.float_in(0, 7 * 86400)),
        recall_delays=r.take("recall_delays", dd.recall_delays, values.recall_delays),
        originate_timeout=r.take("originate_timeout", dd.originate_timeout, values.int_in(1, 600)),
        max_call_seconds=r.take("max_call_seconds", dd.max_call_seconds, values.int_in(10, 86_400)),
        dial_string=r.take("dial_string", dd.dial_string, values.dial_string),
        caller_id=r.take("caller_id", dd.caller_id, values.caller_id),
        transfer_destinations=r.take("transfer_destinations", dd.transfer_destinations, values.destinations),
        drain_timeout=r.take("drain_timeout", dd.drain_timeout, values.float_in(0, 3600)),
        trunk_down_after=r.take("trunk_down_after", dd.trunk_down_after, values.int_in(1, 1000)),
        trunk_down_for=r.take("trunk_down_for", dd.trunk_down_for, values.float_in(1, 86400)),
        node=r.take("node", dd.node, values.node_name),
        node_grace=r.take("node_grace", dd.node_grace, values.float_in(1, 7 * 86400)),
    )
    r.done()
    if dialer.window_start == dialer.window_end:
        raise ConfigError(
            f"dialer.window_start and dialer.window_end are both {values.hhmm(dialer.window_start)}: the window "
            'would never open; to call around the clock use window_start = "00:00", window_end = "24:00"'
        )

    q = _Section(raw, "queue_defaults")
    qd = d.queue_defaults
    queue_defaults = QueueDefaults(
        concurrent_call=q.take("concurrent_call", qd.concurrent_call, values.int_in(1, 10_000)),
        max_recall_count=q.take("max_recall_count", qd.max_recall_count, values.int_in(0, 100)),
        min_recall_duration=q.take("min_recall_duration", qd.min_recall_duration, values.int_in(0, 86_400)),
    )
    q.done()

    try:
        tables = raw.take("trunks")
        trunk_list = (
            () if tables is None else trunks_mod.trunks(tables, channel_limit=dialer.channel_limit, cps=dialer.cps)
        )
    except ValueError as e:
        raise ConfigError(f"trunks{e}" if str(e).startswith("[") else f"trunks: {e}") from None

    pr = _Section(raw, "priority")
    priority = PriorityConfig(by_dpd=pr.take("by_dpd", (), values.priority_by_dpd))
    pr.done()

    try:
        tables = raw.take("webhooks")
        hooks = () if tables is None else webhooks_mod.webhooks(tables)
    except ValueError as e:
        raise ConfigError(f"webhooks{e}" if str(e).startswith("[") else f"webhooks: {e}") from None
    n = _Section(raw, "notifier", origins)
    dn = d.notifier
    notifier = webhooks_mod.NotifierConfig(
        timeout=n.take("timeout", dn.timeout, values.float_in(0.5, 600)),
        retry_for=n.take("retry_for", dn.retry_for, values.float_in(0, 30 * 86400)),
        backoff_first=n.take("backoff_first", dn.backoff_first, values.float_in(0.1, 86400)),
        backoff_max=n.take("backoff_max", dn.backoff_max, values.float_in(0.1, 86400)),
        concurrency=n.take("concurrency", dn.concurrency, values.int_in(1, 256)),
        keep=n.take("keep", dn.keep, values.float_in(60, 366 * 86400)),
        callback_secret_env=n.take("callback_secret_env", dn.callback_secret_env, webhooks_mod.env_name),
        callback_hosts=n.take("callback_hosts", dn.callback_hosts, webhooks_mod.hosts),
    )
    n.done()
    metrics = _metrics(_Section(raw, "metrics"))

    if raw:
        name = sorted(raw)[0]
        raise ConfigError(f"{name}: unknown section{_did_you_mean(name, raw.asked)}")
    return Config(
        database=database,
        db_busy_timeout=db_busy_timeout,
        api=api,
        templates=templates,
        esl=esl,
        dialer=dialer,
        queue_defaults=queue_defaults,
        priority=priority,
        trunks=trunk_list,
        webhooks=hooks,
        notifier=notifier,
        metrics=metrics,
    )


def _metrics(m: _Section) -> MetricsConfig:
    metrics = MetricsConfig(
        listen=m.take("listen", None, values.address),
        api_listen=m.take("api_listen", None, values.address),
        allow_remote=m.take("allow_remote", False, values.boolean),
    )
    m.done()
    for key in ("listen", "api_listen"):
        address = getattr(metrics, key)
        if address is not None and not metrics.allow_remote and not values.is_loopback(address):
            raise ConfigError(
                f"metrics.{key}: {address.host} is not a loopback address, and metrics are served without "
                "authentication; use 127.0.0.1 (Prometheus on this host, or a tunnel), or set "
                "metrics.allow_remote = true with a firewall in front"
            )
    return metrics
