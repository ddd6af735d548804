"""The import's optional `callback_url` (ours, beside the seed's fields): checked before anything
is written, kept on the queue, left alone by an import that does not name it."""

import dataclasses

import pytest

from api.app import create_app
from api.services import services
from daemon import webhooks
from tests.api_fixtures import make_config, post, rows, seed_import


def _import(client, **extra):
    return post(client, "/queue", seed_import() | extra)


def _callback(db):
    return rows(db, "SELECT callback_url FROM queue WHERE code = 'Autocall-Q1'")[0][0]


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://crm.example/cb", "must be https://"),
        ("https://10.1.2.3/cb", "internal address 10.1.2.3"),
        ("https://localhost:8443/cb", "internal address localhost"),
        ("https://[::1]/cb", "internal address ::1"),
        ("https://2130706433/cb", "internal address 2130706433"),
        ("https://0x7f000001/cb", "internal address"),
        ("https://127.1/cb", "internal address 127.1"),
        ("https://0177.0.0.1/cb", "internal address"),
        ("https://localhost./cb", "internal address localhost"),
        ("https://пример.рф/cb", "must be ASCII"),
        # Checked as `x%2eevil.test`, reached as `x.evil.test` (urllib unquotes the host).
        ("https://x%2eevil.test/cb", "must be a name of letters"),
        ("https://crm.example%00.evil/cb", "must be a name of letters"),
        ("https://user:pw@crm.example/cb", "must not hold a user or password"),
        ("ftp://crm.example/cb", "http:// or https:// URL"),
        ("https://crm.example/c b", "without spaces"),
        (42, "must be a URL string"),
    ],
)
def test_a_callback_url_that_breaks_the_rules_refuses_the_import_and_writes_nothing(client, db, url, reason):
    response = _import(client, callback_url=url)
    assert response.status_code == 400
    [error] = response.get_json()["errors"]
    assert error["field"] == "callback_url" and reason in error["reason"]
    assert rows(db, "SELECT COUNT(*) FROM queue")[0][0] == 0


def test_a_callback_url_is_kept_on_the_queue_until_an_import_changes_or_clears_it(client, db):
    assert _import(client, callback_url="https://crm.example/autocall/cb").get_json() == _import(client).get_json()
    assert _callback(db) == "https://crm.example/autocall/cb"  # the second import named none: kept
    assert _import(client, callback_url=None).status_code == 200
    assert _callback(db) is None


def test_a_host_allowed_in_the_config_may_be_plain_http_or_internal(tmp_path):
    config = make_config(tmp_path)
    config = dataclasses.replace(
        config, notifier=dataclasses.replace(config.notifier, callback_hosts=("crm.internal", "10.1.2.3"))
    )
    app = create_app(config)
    try:
        client = app.test_client()
        assert _import(client, callback_url="http://crm.internal:8080/cb").status_code == 200
        assert _import(client, callback_url="https://10.1.2.3/cb").status_code == 200
    finally:
        services(app).workers.close()


def test_the_rule_is_the_same_one_the_notifier_config_uses_for_its_webhooks():
    assert webhooks.check_url("http://10.0.0.5/hook", callback=False) == "http://10.0.0.5/hook"
    with pytest.raises(ValueError, match="user or password"):
        webhooks.check_url("https://a:b@crm.example/", callback=False)


def test_a_hostile_signature_header_is_refused_not_raised():
    assert webhooks.verify(b"s", "t=1,v1=\u00e9", b"{}", now=1) is False
    assert webhooks.verify(b"s", "garbage", b"{}", now=1) is False
    good = webhooks.sign(b"s", 1, b"{}")
    assert webhooks.verify(b"s", good, b"{}", now=1) and not webhooks.verify(b"s", good, b"{ }", now=1)


def test_names_that_look_numeric_but_are_names_pass_and_embedded_loopbacks_do_not():
    for url in (
        "https://cafe.de/cb",
        "https://deadbeef.example/cb",
        "https://1.2.3.4/cb",
        "https://crm_api.example/cb",
        "https://[2606:4700::1111]/cb",
    ):
        assert webhooks.check_url(url, callback=True) == url
    assert webhooks.internal_addresses("localhost", 443) != []  # checked again at each delivery
    assert not webhooks._global("64:ff9b::7f00:1") and not webhooks._global("2002:7f00:1::")
