"""The notifier against receivers and names that misbehave, in process (a real SQLite store, the
real Notifier, its POST replaced where the receiver's answer is the point). Found by attacking
the webhooks: a delivery failed more than a thousand times, a receiver's bytes in the log, a
callback name whose DNS never answers, a token in a URL's query, two callback hosts."""

import dataclasses
import http.client
import logging
import time

import gevent
import pytest

from daemon import config as config_mod
from daemon import notifier as notifier_mod
from daemon import webhooks
from daemon.store import outbox
from daemon.store.schema import execute, open_database
from tests.pg_fixtures import close

SECRET = b"signing-key"


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "autocall.sqlite3"
    db = open_database(path)
    yield path, db
    close(db)


def notifier(path, db, hooks=(), *, post, **settings) -> notifier_mod.Notifier:
    base = config_mod.load(None, environ={"AUTOCALL_DB": str(path)})
    config = dataclasses.replace(
        base,
        webhooks=tuple(webhooks.Webhook(name, url, "X") for name, url in hooks),
        notifier=dataclasses.replace(base.notifier, **settings),
    )
    names = {name: SECRET for name, _ in hooks}
    return notifier_mod.Notifier(config, db, {**names, outbox.CALLBACK: SECRET}, post=post)


def add_delivery(db, endpoint, url, *, event_id=1, tries=0):
    now = time.time()
    with db.atomic():
        execute(
            db,
            "INSERT INTO delivery (event_id, endpoint, url, body, state, tries, next_try_at, created_at)"
            " VALUES (?, ?, ?, '{}', 'pending', ?, ?, ?)",
            (event_id, endpoint, url, tries, now, now),
        )


def one_turn(n: notifier_mod.Notifier):
    n.turn()
    n.pool.join(raise_error=True)


def deliveries(db) -> list[tuple]:
    return execute(db, "SELECT state, tries, last_error FROM delivery ORDER BY id").fetchall()


def test_a_delivery_failed_a_thousand_times_is_put_off_again_not_lost_to_an_overflow(store):
    """backoff_first * 2 ** 1024 is no float: the try's greenlet died before the failure was
    recorded, so the delivery went again at every lease, for ever, and never died."""
    path, db = store
    n = notifier(path, db, [("crm", "https://crm.example/hook")], post=lambda *a: 503, backoff_first=10.0)
    add_delivery(db, "crm", "https://crm.example/hook", tries=1100)
    one_turn(n)
    assert deliveries(db) == [("pending", 1101, "HTTP 503")]


def test_a_receivers_own_bytes_reach_the_log_and_the_store_escaped(store, caplog):
    path, db = store
    evil = "\x1b[2K\r2026-12-04 21:00:00,000 INFO autocall.notifier: endpoint crm delivers again \u202e"

    def post(*args):
        raise http.client.BadStatusLine(evil)

    n = notifier(path, db, [("crm", "https://crm.example/hook")], post=post)
    add_delivery(db, "crm", "https://crm.example/hook")
    with caplog.at_level(logging.INFO, logger="autocall.notifier"):
        one_turn(n)
    [(_, _, error)] = deliveries(db)
    for said in (error, caplog.text):
        assert "\x1b" not in said and "\r" not in said and "\u202e" not in said
    assert error.startswith("BadStatusLine: ") and "\\x1b[2K\\r2026-12-04" in error


def test_a_callback_name_whose_dns_never_answers_holds_its_slot_no_longer_than_the_timeout(store, monkeypatch):
    path, db = store

    def slow_dns(host, port):
        gevent.sleep(30)
        return []

    monkeypatch.setattr(webhooks, "internal_addresses", slow_dns)
    n = notifier(path, db, post=lambda *a: 204, timeout=0.5)
    add_delivery(db, outbox.CALLBACK, "https://slow.attacker.test/cb")
    began = time.monotonic()
    one_turn(n)
    assert time.monotonic() - began < 5
    assert deliveries(db) == [("pending", 1, "no answer within 0.5s")]


def test_the_log_names_no_token_of_a_url_and_says_failing_once_per_callback_host(store, caplog):
    path, db = store
    hook = "https://crm.example/hook?api_key=sk_live_SECRET123"
    urls = [hook, "https://a.example/cb", "https://b.example/cb?token=T0KEN"]
    answer = lambda url, *a: 204 if "a.example" in url else 503  # noqa: E731
    n = notifier(path, db, [("crm", hook)], post=answer, callback_hosts=("a.example", "b.example"))
    with caplog.at_level(logging.INFO, logger="autocall.notifier"):
        n.stopping.set()
        n.run()  # its start-up line names the webhooks
        for i, url in enumerate(urls * 2):
            add_delivery(db, "crm" if url == hook else outbox.CALLBACK, url, event_id=i + 1)
        one_turn(n)
    assert "SECRET123" not in caplog.text and "T0KEN" not in caplog.text
    assert "crm.example/hook?…" in caplog.text
    failing = [r.getMessage() for r in caplog.records if "failing" in r.getMessage()]
    assert len(failing) == 2 and any("b.example" in line for line in failing)  # crm and b, once each
    assert "delivers again" not in caplog.text  # a.example delivering says nothing of b.example


def test_a_callback_url_stored_before_the_host_rule_meets_it_at_each_try(store):
    """`x%2eevil.test` was checked as one name and reached as another: a queue row holding it
    from before the rule (or an UPDATE by hand) is refused by the notifier too, never POSTed."""
    path, db = store
    posted = []
    n = notifier(path, db, post=lambda url, *a: posted.append(url) or 204)
    add_delivery(db, outbox.CALLBACK, "https://x%2eevil.test/cb")
    one_turn(n)
    [(state, _, error)] = deliveries(db)
    assert posted == [] and state == "pending" and "must be a name of letters" in error


def test_one_try_keeps_one_deadline_for_the_dns_check_and_the_post(store, monkeypatch):
    """Each within its own timeout, a slow check and a slow answer made one try twice as long
    as its lease allows (timeout + 5 s): the delivery was taken and sent again meanwhile."""
    path, db = store

    def slow_dns(host, port):
        gevent.sleep(0.4)
        return []

    def slow_post(url, body, headers, timeout):
        with gevent.Timeout(timeout):
            gevent.sleep(0.4)
        return 204

    monkeypatch.setattr(webhooks, "internal_addresses", slow_dns)
    n = notifier(path, db, post=slow_post, timeout=0.6)
    add_delivery(db, outbox.CALLBACK, "https://slow.example/cb")
    one_turn(n)
    assert deliveries(db) == [("pending", 1, "no answer within 0.6s")]
