"""An import is checked against its template as it is on disk now, each customer rendered:
what the call could not say is that customer's `fail`, never a later `failed` (docs/api.md)."""

import dataclasses
import shutil

import pytest

from api.app import create_app
from api.services import services
from daemon.ivr import TemplateLoader
from tests.api_fixtures import REPO, customer, make_config, post, rows, seed_import

SOUNDS = REPO / "ivr_templates" / "sounds"
FEE = """
[template]
fields = ["fee", "visits", "paid_on"]

[[step]]
id = "info"
play = ["co_khoan_thanh_toan", { money = "fee" }, { number = "visits" }, { date = "paid_on" }]

[[step]]
id = "end"
hangup = true
"""
IMPORT_FAIL = {"code": 400, "content": "import fail", "data": {"fail": [], "success": []}}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def templates(tmp_path):
    path = tmp_path / "templates"
    shutil.copytree(REPO / "ivr_templates", path, ignore=shutil.ignore_patterns("sounds"))
    (path / "FEE.toml").write_text(FEE, encoding="utf-8")
    return path


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def client(tmp_path, templates, clock):
    config = make_config(tmp_path)
    config = dataclasses.replace(config, templates=dataclasses.replace(config.templates, dir=templates, sounds=SOUNDS))
    app = create_app(config)
    # The same loader the app builds, on a clock the test turns (it looks at files once a second).
    loader = TemplateLoader.from_config(config, clock=clock)
    dataclasses.replace(services(app), templates=loader).install(app)
    return app.test_client()


def _fee_customer(ext_id, **fields):
    return {"id": ext_id, "mobiles": ["0982596021"], "fee": 150000, "visits": 2, "paid_on": "2021-07-13", **fields}


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"fee": "150.000đ"}, "says 'fee' as money: cannot say '150.000đ'"),
        ({"fee": -5}, "says 'fee' as money: cannot say -5"),
        ({"fee": 1500.5}, "says 'fee' as money: cannot say 1500.5"),
        ({"visits": True}, "says 'visits' as number: cannot say True"),
        ({"paid_on": 20210713}, "says 'paid_on' as date: cannot say 20210713"),
        ({"paid_on": None}, "says 'paid_on' as date: missing or empty"),
    ],
)
def test_an_extra_field_the_template_cannot_say_fails_that_customer_alone(client, fields, reason):
    body = {"queue_code": "Q", "template": "FEE", "customers": [_fee_customer("OK"), _fee_customer("BAD", **fields)]}
    reply = post(client, "/queue", body).get_json()
    assert reply["code"] == 200 and reply["content"] == "successfully"
    assert reply["data"] == {"fail": ["BAD"], "success": ["OK"]}
    [error] = reply["errors"]
    assert error["id"] == "BAD" and reason in error["reason"]
    db = services(client.application).db
    assert rows(db, "SELECT ext_id FROM customer") == [("OK",)]


def test_a_known_field_said_another_way_than_usual_is_checked_as_said(client, templates):
    # dpd is a whole number: a template that says it as a date can say no customer's dpd.
    (templates / "ODD.toml").write_text('[[step]]\nid = "a"\nplay = [{ date = "dpd" }]\n', encoding="utf-8")
    body = {"queue_code": "Q", "template": "ODD", "customers": [customer("A", dpd=5)]}
    reply = post(client, "/queue", body).get_json()
    assert reply["data"] == {"fail": ["A"], "success": []}
    assert "says 'dpd' as date: cannot say 5 as a date" in reply["errors"][0]["reason"]


def test_a_template_broken_on_disk_refuses_imports_naming_it_though_a_good_version_was_loaded(client, templates, clock):
    assert post(client, "/queue", seed_import()).status_code == 200  # IVR-1 loaded, good
    path = templates / "IVR-1.toml"
    good = path.read_text(encoding="utf-8")
    path.write_text(good.replace('"goto goodbye"', '"goto nowhere"'), encoding="utf-8")
    clock.now += 1.0
    r = post(client, "/queue", seed_import())
    assert r.status_code == 400 and r.get_json() | {"errors": None} == IMPORT_FAIL | {"errors": None, "error_count": 1}
    [error] = r.get_json()["errors"]
    assert error["field"] == "template" and "IVR-1" in error["reason"] and "'nowhere'" in error["reason"]
    db = services(client.application).db
    assert rows(db, "SELECT COUNT(*) FROM customer") == [(1,)]  # the first import only
    # Other templates are not concerned; the fix is taken at the next look.
    body = {"queue_code": "Q2", "template": "FEE", "customers": [_fee_customer("F")]}
    assert post(client, "/queue", body).status_code == 200
    path.write_text(good, encoding="utf-8")
    clock.now += 1.0  # valid on disk now: accepted at once (the dialer takes it once the file is still)
    assert post(client, "/queue", seed_import()).status_code == 200


def test_a_template_file_removed_refuses_imports_naming_it(client, templates, clock):
    assert post(client, "/queue", seed_import()).status_code == 200
    (templates / "IVR-1.toml").unlink()
    clock.now += 1.0
    r = post(client, "/queue", seed_import())
    assert r.status_code == 400 and "no template" in r.get_json()["errors"][0]["reason"]
