"""Webhooks, as configured and as sent: the `[[webhooks]]` and `[notifier]` settings, the rule
a queue's `callback_url` must follow, and the signature every delivery carries. Pure: the
process that delivers is daemon/notifier.py, the events are daemon/store/outbox.py.

The signature (docs/webhooks.md): header `X-Autocall-Signature: t=<unix seconds>,v1=<hex>`,
where hex is HMAC-SHA256 with the endpoint's secret over `<t>.<body>`; the receiver recomputes
it and refuses a `t` far from its own clock (a replayed request).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import re
import socket
import urllib.parse

from daemon.store.outbox import EVENT_TYPES, Endpoint

SIGNATURE_HEADER = "X-Autocall-Signature"
MAX_URL = 2048
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


@dataclasses.dataclass(frozen=True)
class Webhook:
    """One `[[webhooks]]` table: where events go and with which secret (the name of an
    environment variable: the secret itself never sits in the config file)."""

    name: str
    url: str
    secret_env: str
    events: tuple[str, ...] = EVENT_TYPES
    queues: tuple[str, ...] | None = None  # None: every queue

    def endpoint(self) -> Endpoint:
        return Endpoint(
            self.name, self.url, frozenset(self.events), None if self.queues is None else frozenset(self.queues)
        )


@dataclasses.dataclass(frozen=True)
class NotifierConfig:
    """`[notifier]`: how `autocall-notifier` delivers."""

    timeout: float = 10.0  # seconds for one POST, connect to last byte
    retry_for: float = 6 * 3600.0  # a delivery not done this long after its event is dead
    backoff_first: float = 10.0  # seconds before the second try; doubled each try, with jitter
    backoff_max: float = 1800.0
    concurrency: int = 8  # POSTs in flight at once
    keep: float = 7 * 86400.0  # delivered and dead deliveries (and their events) are kept this long
    callback_secret_env: str = "AUTOCALL_CALLBACK_SECRET"  # signs deliveries to a queue's callback_url
    callback_hosts: tuple[str, ...] = ()  # hosts a callback_url may name with http:// or a private address


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The value of SIGNATURE_HEADER for `body` sent at `timestamp`."""
    digest = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, *, now: float, tolerance: float = 300.0) -> bool:
    """Whether `header` signs `body` with `secret` at a time within `tolerance` of `now` (what a
    receiver does; the tests use it)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts.get("v1", "").encode("ascii")
    except (KeyError, ValueError):  # UnicodeEncodeError is a ValueError
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1].encode()
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, given)


def check_url(value, *, allowed_hosts=(), callback: bool) -> str:
    """`value` as a URL events may be POSTed to, else ValueError saying why. Any URL needs a
    host and no user or password in it (they would sit in the database and the logs). A queue's
    `callback_url` (sent by the platform, so `callback`) must also be `https://`, and must not
    name a loopback, private or link-local address, unless its host is in `allowed_hosts`."""
    if not isinstance(value, str):
        raise ValueError("must be a URL string")
    if not value or len(value) > MAX_URL or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"must be a URL of at most {MAX_URL} characters, without spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as e:
        raise ValueError(f"not a URL: {e}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user or password")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    host = parts.hostname.lower().rstrip(".")
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("host must be ASCII (write an international name in its xn-- form)") from None
    if not (_HOST_NAME.fullmatch(host) or _ipv6(host)):
        # `x%2eevil.test` would be checked as one name and reached as another (urllib unquotes it).
        raise ValueError("host must be a name of letters, digits, '-', '_' and '.', or an IP address")
    if callback and host not in allowed_hosts:
        if parts.scheme != "https":
            raise ValueError(f"must be https:// (or its host {host} allowed in notifier.callback_hosts)")
        if _internal(host):
            raise ValueError(f"names an internal address {host} (allow it in notifier.callback_hosts)")
    return value


def _internal(host: str) -> bool:
    """Whether `host` names this machine or a private network. A host of digits, dots and hex
    that is not a plain dotted quad (2130706433, 0x7f000001, 127.1, 0177.0.0.1) is refused as
    well: the resolver reads such forms as addresses, `ipaddress` does not."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_global
    except ValueError:
        return _NUMERIC_HOST.fullmatch(host) is not None


def internal_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to now that are not global (a callback's name checked again
    at each delivery: a public name may point at a private address). Raises OSError if it does
    not resolve."""
    found = {str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    return sorted(a for a in found if not _global(a))


def _global(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = (
            ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        )
        if embedded is not None:
            return embedded.is_global
    return ip.is_global


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")


def _ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# --- config ----------------------------------------------------------------------------------


def webhooks(value) -> tuple[Webhook, ...]:
    """The `[[webhooks]]` array of tables."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError("expected [[webhooks]] tables")
    hooks, names = [], set()
    for i, table in enumerate(value):
        table = dict(table)
        where = f"[{i}]"
        try:
            url = check_url(table.pop("url", None), callback=False)
        except ValueError as e:
            raise ValueError(f"{where}.url: {e}") from None
        name = table.pop("name", urllib.parse.urlsplit(url).hostname)
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name == "callback":
            raise ValueError(f"{where}.name: 1-64 letters, digits, '_', '.' or '-', not 'callback'")
        if name in names:
            raise ValueError(f"{where}.name: {name!r} is used twice; give each webhook its own name")
        names.add(name)
        secret_env = env_name(table.pop("secret_env", None), f"{where}.secret_env")
        events = table.pop("events", list(EVENT_TYPES))
        if not isinstance(events, list) or not events or any(e not in EVENT_TYPES for e in events):
            raise ValueError(f"{where}.events: a non-empty list of {', '.join(EVENT_TYPES)}")
        queues = table.pop("queues", None)
        if queues is not None and (not isinstance(queues, list) or not all(isinstance(q, str) for q in queues)):
            raise ValueError(f"{where}.queues: a list of queue codes")
        if table:
            raise ValueError(f"{where}.{sorted(table)[0]}: unknown key")
        hooks.append(
            Webhook(name, url, secret_env, tuple(dict.fromkeys(events)), None if queues is None else tuple(queues))
        )
    return tuple(hooks)


def env_name(value, where: str = "value") -> str:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{where}: the name of an environment variable holding the secret (e.g. AUTOCALL_WEBHOOK_SECRET)"
        )
    return value


def hosts(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(h, str) and h and " " not in h for h in value):
        raise ValueError("a list of host names")
    return tuple(h.lower() for h in value)
