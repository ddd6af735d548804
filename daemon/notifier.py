"""`autocall-notifier`: delivers the outbox's events to the platform's webhooks.

A process of its own, not a part of the dialer: HTTP to the platform's servers (DNS, TLS, a
receiver that is slow, down or hostile) then never takes time or CPU from the loop that carries
every call's audio commands, and it is stopped, restarted or moved by itself. Several may run
on one PostgreSQL database (one per node is fine): they share the work by row locks and leases.

Each turn: events not yet dispatched become deliveries (`outbox.fan_out`), the deliveries due
are leased (`outbox.take`) and POSTed, `concurrency` at a time, each signed
(`webhooks.sign`); a 2xx answer delivers it, anything else (an error status, a refused or cut
connection, no answer within `timeout`, a redirect) tries it again later, the waits doubling
from `backoff_first` to `backoff_max` with jitter, until `retry_for` after its event: then it is
dead (`autocall webhooks list --state dead`, `autocall webhooks retry`). A notifier killed
mid-POST leaves its leased deliveries to be tried again once the lease ends, so an endpoint
may see an event twice: with the same id. Database work runs on one worker thread, so a write
lock held by the API delays deliveries, never the POSTs in flight.

Exit status: 0 stopped, 2 bad configuration (a webhook's secret not in the environment), 75
the database unavailable at start-up (systemd restarts it).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.pool  # noqa: E402
import gevent.threadpool  # noqa: E402
import peewee as pw  # noqa: E402

from daemon import config as config_mod  # noqa: E402
from daemon import logs, webhooks  # noqa: E402
from daemon.errors import AutocallError, ConfigError, exit_code  # noqa: E402
from daemon.store import outbox  # noqa: E402
from daemon.store.schema import StoreUnavailable, open_database, store_error  # noqa: E402

log = logging.getLogger("autocall.notifier")

IDLE = 0.5  # seconds between looks at the outbox when there was nothing to do
PRUNE_EVERY = 300.0
MAX_REPLY = 64 * 1024  # bytes of a receiver's answer read (and ignored)
USER_AGENT = "autocall-notifier/1"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery, not a new destination: it could lead anywhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: dict, timeout: float) -> int:
    """POST `body` to `url`; the answer's status (an error status included). Raises OSError
    (urllib.error.URLError included) or gevent.Timeout when no full answer came in `timeout`."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with gevent.Timeout(timeout):
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                response.read(MAX_REPLY)
                return response.status
        except urllib.error.HTTPError as e:
            e.read(MAX_REPLY)
            e.close()
            return e.code


class Notifier:
    """Delivers for `config` from `db`; `secrets` maps an endpoint's name to its key (None: not
    set, its deliveries wait). `post` and `clock` are the tests' to replace."""

    def __init__(self, config: config_mod.Config, db, secrets: dict, *, post=post, clock=time.time):
        self.config, self.n = config, config.notifier
        self.db, self.secrets, self.post, self.clock = db, secrets, post, clock
        self.endpoints = [w.endpoint() for w in config.webhooks]
        self.pool = gevent.pool.Pool(self.n.concurrency)
        self.thread = gevent.threadpool.ThreadPool(1)
        self.stopping = gevent.event.Event()
        self._pruned_at = 0.0
        self._failing: set[str] = set()  # endpoints whose last try failed (said once, until one succeeds)

    # --- the loop ---

    def run(self):
        """Deliver until stop(); then let the POSTs in flight finish (up to `timeout`)."""
        log.info(
            "autocall-notifier delivering to %s",
            ", ".join(f"{e.name} ({shown_url(e.url)})" for e in self.endpoints) or "queue callbacks only",
        )
        while not self.stopping.is_set():
            try:
                busy = self.turn()
            except StoreUnavailable as e:
                log.warning("database unavailable (%s); trying again", e)
                busy = False
            self.stopping.wait(0 if busy else IDLE)
        self.pool.join(timeout=self.n.timeout + 1)
        self.thread.kill()

    def stop(self):
        self.stopping.set()

    def turn(self) -> bool:
        """Dispatch events, start the due deliveries there is room for; whether there was work."""
        now = self.clock()
        dispatched = self._db(outbox.fan_out, self.endpoints, now=now, tz=self.config.tz)
        room = self.pool.free_count()
        taken = self._db(outbox.take, now=now, lease=self.n.timeout + 5, limit=room) if room else []
        for delivery in taken:
            self.pool.spawn(self._deliver, delivery)
        if now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            pruned = self._db(outbox.prune, before=now - self.n.keep)
            if pruned:
                log.info("pruned %d events older than %.0f days", pruned, self.n.keep / 86400)
        return bool(dispatched or taken)

    def _db(self, fn, *args, **kwargs):
        """`fn(db, ...)` in one transaction, on the worker thread. After an error that may pass
        the connection is closed, so the next turn opens a new one: PostgreSQL restarted
        leaves a dead connection that peewee would otherwise hand back as open, for ever."""

        def run():
            try:
                with self.db.atomic():
                    return fn(self.db, *args, **kwargs), None
            except Exception as e:  # noqa: BLE001 - raised below, on the loop
                if isinstance(e, pw.OperationalError | pw.InterfaceError) and not self.db.is_closed():
                    with contextlib.suppress(pw.DatabaseError):
                        self.db.close()
                return None, e

        value, error = self.thread.apply(run)
        if error is not None:
            if isinstance(error, pw.OperationalError):
                raise store_error(error, "outbox") from None
            raise error
        return value

    # --- one delivery ---

    def _deliver(self, d: outbox.Delivery):
        secret = self.secrets.get(d.endpoint)
        status, error = None, None
        if secret is None and d.endpoint == outbox.CALLBACK:
            error = f"{self.n.callback_secret_env} is not set: queue callbacks cannot be signed"
        elif secret is None:
            error = f"webhook {d.endpoint} is not configured any more"
        else:
            body = d.body.encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Autocall-Event": str(d.event_id),
                webhooks.SIGNATURE_HEADER: webhooks.sign(secret, int(self.clock()), body),
            }
            try:
                # One deadline for the whole try, the callback's DNS check included: a name whose
                # DNS never answers holds no slot past it, and no try outlasts its lease.
                with gevent.Timeout(self.n.timeout):
                    error = self._refused_host(d)
                    if error is None:
                        status = self.post(d.url, body, headers, self.n.timeout)
                        if not 200 <= status < 300:
                            error = f"HTTP {status}"
            except gevent.Timeout:
                error = f"no answer within {self.n.timeout:g}s"
            except Exception as e:  # noqa: BLE001 - refused, cut, malformed (http.client's own errors): a failed try
                # A receiver's own bytes (a status line that is not HTTP) go to the log and the
                # terminal of `autocall webhooks list`: nothing in them may move a cursor.
                error = logs.escaped(f"{type(e).__name__}: {getattr(e, 'reason', e)}"[:300])
        now, key = self.clock(), _failing_key(d)
        try:
            if error is None:
                self._db(outbox.delivered, d.id, now=now, status=status)
                if key in self._failing:
                    self._failing.discard(key)
                    log.info("endpoint %s (%s) delivers again", d.endpoint, shown_url(d.url))
                return
            retry_at = self._retry_at(d, now)
            self._db(outbox.failed, d.id, now=now, error=error, status=status, retry_at=retry_at)
        except StoreUnavailable as e:
            log.warning("delivery %d: result not recorded (%s); it is tried again after its lease", d.id, e)
            return
        if retry_at is None:
            log.error(
                "delivery %d of event %d to %s is dead after %d tries: %s", d.id, d.event_id, d.endpoint, d.tries, error
            )
        elif key not in self._failing:
            self._failing.add(key)
            log.warning("endpoint %s (%s) failing: %s; retrying with backoff", d.endpoint, shown_url(d.url), error)

    def _refused_host(self, d: outbox.Delivery) -> str | None:
        """Why a queue's callback may not go now: its host resolves to an internal address
        (checked at each try, not only at import: a public name can be pointed anywhere)."""
        if d.endpoint != outbox.CALLBACK:
            return None
        try:  # the import's rules again: a URL stored before they were this strict meets them too
            webhooks.check_url(d.url, allowed_hosts=self.n.callback_hosts, callback=True)
        except ValueError as e:
            return f"callback_url {e}"
        parts = urllib.parse.urlsplit(d.url)
        host = (parts.hostname or "").rstrip(".")
        if host in self.n.callback_hosts:
            return None
        internal = webhooks.internal_addresses(host, parts.port or 443)
        return f"{host} resolves to internal address {internal[0]}" if internal else None

    def _retry_at(self, d: outbox.Delivery, now: float) -> float | None:
        doubled = self.n.backoff_first * 2 ** min(d.tries - 1, 64)  # 2 ** 1024 would not be a float
        wait = min(self.n.backoff_max, doubled) * random.uniform(0.5, 1.0)
        return None if now + wait > d.created_at + self.n.retry_for else now + wait


def _failing_key(d: outbox.Delivery) -> str:
    """What "failing" is said once for: a webhook, or each server (scheme, host, port) queue
    callbacks go to (they share the one endpoint name, and one failing says nothing of another)."""
    if d.endpoint != outbox.CALLBACK:
        return d.endpoint
    parts = urllib.parse.urlsplit(d.url)
    return f"{d.endpoint} {parts.scheme}://{parts.hostname}:{parts.port}"


def shown_url(url: str) -> str:
    """`url` for a log line: without its query, where a receiver's token often sits."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query="…" if parts.query else ""))


def secrets_of(config: config_mod.Config, environ=os.environ) -> dict:
    """Each webhook's secret from its environment variable (ConfigError if one is missing: an
    unsigned event is worth nothing), and the queue callbacks' if set."""
    found: dict = {}
    for hook in config.webhooks:
        value = environ.get(hook.secret_env)
        if not value:
            raise ConfigError(f"webhooks {hook.name}: secret_env {hook.secret_env} is not set in the environment")
        found[hook.name] = value.encode()
    callback = environ.get(config.notifier.callback_secret_env)
    found[outbox.CALLBACK] = callback.encode() if callback else None
    return found


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="autocall-notifier",
        description="Deliver autocall's events (customer and attempt results, queue stops and ends) to the "
        "webhooks of [[webhooks]] and to each queue's callback_url, signed, retried until delivered.",
        epilog="Secrets come from the environment variables the config names (secret_env, "
        "notifier.callback_secret_env). Exit status 0 stopped, 2 bad configuration, 75 database unavailable.",
    )
    parser.add_argument("--config", metavar="PATH", help="config file (default: $AUTOCALL_CONFIG)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logs.setup(args.log_level)
    try:
        config = config_mod.load(args.config)
        secrets = secrets_of(config)
        db = open_database(config.database, busy_timeout=config.db_busy_timeout)
    except AutocallError as e:
        print(f"autocall-notifier: {e}", file=sys.stderr)
        return exit_code(e)
    if secrets[outbox.CALLBACK] is None:
        log.warning(
            "%s is not set: deliveries to a queue's callback_url fail until it is (then: autocall webhooks "
            "retry --dead)",
            config.notifier.callback_secret_env,
        )
    notifier = Notifier(config, db, secrets)
    gevent.signal_handler(signal.SIGTERM, notifier.stop)
    gevent.signal_handler(signal.SIGINT, notifier.stop)
    notifier.run()
    db.close()
    log.info("autocall-notifier stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
