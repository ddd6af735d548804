"""The five commands of the seed over the real Flask app, on each backend (a real SQLite file,
a real PostgreSQL server)."""

import dataclasses
import json

import pytest

from api.app import create_app
from api.services import services
from daemon.store.schema import execute
from tests.api_fixtures import (
    AUTH,
    REPO,
    SEED_DNC,
    customer,
    customer_states,
    make_config,
    post,
    rows,
    seed_import,
)

SEED_OK = {"code": 200, "content": "successfully", "data": {"fail": [], "success": ["TEL4VN_Test"]}}
SEED_IMPORT_FAIL = {"code": 400, "content": "import fail", "data": {"fail": [], "success": []}}
COMMAND_OK = {"code": 200, "content": "successfully"}
NOT_FOUND = {"code": 404, "content": "queue not found"}


@pytest.fixture
def config(tmp_path, store_url):
    """The API's config with a fresh store on each backend (tests/pg_fixtures.py)."""
    return dataclasses.replace(make_config(tmp_path), database=store_url)


def set_state(db, ext_id, state):
    with db.connection_context():
        execute(db, "UPDATE customer SET state = ? WHERE ext_id = ?", (state, ext_id))


# --- the seed's samples, field for field ---


def test_seed_import_gets_the_seed_response(client, db):
    r = post(client, "/queue", seed_import())
    assert r.status_code == 200
    assert r.get_json() == SEED_OK
    assert rows(
        db, "SELECT code, template, concurrent_call, max_recall_count, min_recall_duration, state FROM queue"
    ) == [("Autocall-Q1", "IVR-1", 5, 3, 3, "running")]
    [(ext_id, mobiles, fields, state)] = rows(db, "SELECT ext_id, mobiles, fields, state FROM customer")
    assert (ext_id, json.loads(mobiles), state) == ("TEL4VN_Test", ["0982596021"], "pending")
    assert json.loads(fields)["total_ovd_amount"] == 3211100


@pytest.mark.parametrize("path", ["/queue/stop", "/queue/start", "/queue/delete", "/queue/dnc"])
def test_seed_commands_on_an_unknown_queue_get_queue_not_found(client, path):
    body = SEED_DNC if path == "/queue/dnc" else {"queue_code": "Autocall-Q1"}
    r = post(client, path, body)
    reply = r.get_json()
    if path == "/queue/dnc":  # the seed's answer, plus a note that the ids are kept (docs/api.md)
        assert "kept" in reply.pop("note")
    assert (r.status_code, reply) == (404, NOT_FOUND)


def test_seed_dnc_stop_start_delete_get_the_seed_responses(client, db):
    post(client, "/queue", seed_import())
    for path, body in [
        ("/queue/dnc", SEED_DNC),
        ("/queue/stop", {"queue_code": "Autocall-Q1"}),
        ("/queue/start", {"queue_code": "Autocall-Q1"}),
        ("/queue/stop", {"queue_code": "Autocall-Q1"}),
        ("/queue/delete", {"queue_code": "Autocall-Q1"}),
    ]:
        r = post(client, path, body)
        assert (path, r.status_code, r.get_json()) == (path, 200, COMMAND_OK)
    assert rows(db, "SELECT state FROM queue") == [("deleted",)]


# --- auth ---


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "test-token-0123456789abcdef"},
        {"Authorization": "Basic test-token-0123456789abcdef"},
        {"Authorization": "Bearer "},
    ],
)
def test_missing_or_wrong_token_is_401_and_writes_nothing(client, db, headers):
    r = post(client, "/queue", seed_import(), headers=headers)
    assert (r.status_code, r.get_json()) == (401, {"code": 401, "content": "unauthorized"})
    assert rows(db, "SELECT COUNT(*) FROM queue") == [(0,)]


def test_reads_need_a_token_but_healthz_does_not(client):
    assert client.get("/v2/autocall/queue/Autocall-Q1").status_code == 401
    assert client.get("/v2/autocall/openapi.json").status_code == 401
    r = client.get("/healthz")
    assert (r.status_code, r.get_json()) == (200, {"code": 200, "content": "ok"})


def test_app_refuses_to_start_without_a_token(tmp_path):
    import dataclasses

    from daemon.errors import ConfigError

    config = make_config(tmp_path)
    with pytest.raises(ConfigError, match="api.tokens"):
        create_app(dataclasses.replace(config, api=dataclasses.replace(config.api, tokens=())))


# --- errors are JSON ---


def test_unknown_route_and_wrong_method_answer_json(client):
    r = client.get("/nothing/here", headers=AUTH)
    assert (r.status_code, r.get_json()) == (404, {"code": 404, "content": "not found"})
    r = client.get("/v2/autocall/queue/stop", headers=AUTH)
    assert r.status_code == 404 or r.get_json()["code"] == r.status_code
    r = client.delete("/v2/autocall/queue", headers=AUTH)
    assert (r.status_code, r.get_json()) == (405, {"code": 405, "content": "method not allowed"})


def test_an_unexpected_error_is_a_json_500(client, db):
    with db.connection_context():
        execute(db, "DROP TABLE dnc")
    post(client, "/queue", seed_import())
    r = post(client, "/queue/dnc", SEED_DNC)
    assert (r.status_code, r.get_json()) == (500, {"code": 500, "content": "internal error"})


def test_too_large_body_is_import_fail_for_import_and_413_elsewhere(tmp_path):
    client = create_app(make_config(tmp_path, max_body_bytes=4096)).test_client()
    big = seed_import()
    big["customers"] = [customer(f"C{i}") for i in range(100)]
    r = post(client, "/queue", big)
    assert r.status_code == 400
    assert {k: r.get_json()[k] for k in SEED_IMPORT_FAIL} == SEED_IMPORT_FAIL
    assert "body larger than 4096 bytes" in r.get_json()["errors"][0]["reason"]
    r = post(client, "/queue/dnc", {"queue_code": "Q", "customers": [{"id": "x" * 5000}]})
    assert (r.status_code, r.get_json()) == (413, {"code": 413, "content": "request body too large"})


# --- request-level import errors: 400 import fail, nothing written ---


def _with(**changes):
    body = seed_import()
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


BAD_IMPORTS = {
    "not json": b"{not json",
    "not utf-8": b'{"queue_code": "\xff"}',
    "a list": b"[1, 2]",
    "NaN": b'{"queue_code": "Q", "template": "IVR-1", "customers": [], "dpd": NaN}',
    "no queue_code": _with(queue_code=...),
    "queue_code a number": _with(queue_code=7),
    "queue_code blank": _with(queue_code="   "),
    "queue_code with newline": _with(queue_code="Q\n1"),
    "no template": _with(template=...),
    "unknown template": _with(template="IVR-404"),
    "template with slash": _with(template="../IVR-1"),
    "template absolute": _with(template="/etc/passwd"),
    "template dots": _with(template="IVR..1"),
    "template hidden": _with(template=".IVR-1"),
    "template with toml suffix": _with(template="IVR-1.toml"),
    "template a list": _with(template=["IVR-1"]),
    "concurrent_call a string": _with(concurrent_call="5"),
    "concurrent_call zero": _with(concurrent_call=0),
    "concurrent_call bool": _with(concurrent_call=True),
    "concurrent_call float": _with(concurrent_call=2.5),
    "max_recall_count negative": _with(max_recall_count=-1),
    "min_recall_duration huge": _with(min_recall_duration=10**9),
    "no customers": _with(customers=...),
    "empty customers": _with(customers=[]),
    "customers an object": _with(customers={"id": "x"}),
    "customer a string": _with(customers=["TEL4VN_Test"]),
    "customer without id": _with(customers=[{"mobiles": ["0982596021"]}]),
    "customer id a list": _with(customers=[{"id": ["a"], "mobiles": ["0982596021"]}]),
    "customer id null": _with(customers=[{"id": None, "mobiles": ["0982596021"]}]),
    "customer id bool": _with(customers=[{"id": True, "mobiles": ["0982596021"]}]),
}


@pytest.mark.parametrize("body", BAD_IMPORTS.values(), ids=BAD_IMPORTS.keys())
def test_request_level_problems_are_import_fail_and_change_nothing(client, db, body):
    r = post(client, "/queue", body)
    assert r.status_code == 400
    reply = r.get_json()
    assert {k: reply[k] for k in SEED_IMPORT_FAIL} == SEED_IMPORT_FAIL
    assert reply["errors"] and all(e["reason"] for e in reply["errors"])
    assert rows(db, "SELECT COUNT(*) FROM queue") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM customer") == [(0,)]


def test_a_bad_import_into_an_existing_queue_leaves_it_untouched(client, db):
    post(client, "/queue", seed_import())
    before = rows(db, "SELECT * FROM queue"), rows(db, "SELECT * FROM customer")
    r = post(client, "/queue", _with(concurrent_call="many"))
    assert r.status_code == 400
    assert (rows(db, "SELECT * FROM queue"), rows(db, "SELECT * FROM customer")) == before


@pytest.mark.parametrize("path", ["/queue/stop", "/queue/start", "/queue/delete", "/queue/dnc"])
@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"queue_code": 5}', b"{}"])
def test_bad_command_bodies_are_400_with_reasons(client, db, path, body):
    post(client, "/queue", seed_import())
    r = post(client, path, body)
    assert r.status_code == 400
    assert r.get_json()["code"] == 400 and r.get_json()["errors"]
    assert rows(db, "SELECT state FROM queue") == [("running",)]


@pytest.mark.parametrize("customers", [[], "KH_01", [{"id": []}], [{"name": "x"}], [{"id": "a\nb"}]])
def test_bad_dnc_lists_are_400_and_block_nobody(client, db, customers):
    post(client, "/queue", seed_import())
    r = post(client, "/queue/dnc", {"queue_code": "Autocall-Q1", "customers": customers})
    assert r.status_code == 400
    assert rows(db, "SELECT COUNT(*) FROM dnc") == [(0,)]


# --- per-customer problems: that id fails with a reason, the rest import ---

PER_CUSTOMER = {
    "no mobiles": {"id": "X", "mobiles": []},
    "mobiles missing": {"id": "X"},
    "mobiles a number": {"id": "X", "mobiles": 982596021},
    "only bad mobiles": {"id": "X", "mobiles": ["12345", "abc", "+1 555 0100"]},
    "mobile with braces": {"id": "X", "mobiles": ["098}2596021"]},
    "mobile with newline": {"id": "X", "mobiles": ["0982596021\n"]},
    "mobile forging a command": {"id": "X", "mobiles": ["0982596021 &park()"]},
    "id empty": {"id": "", "mobiles": ["0982596021"]},
    "id too long": {"id": "x" * 129, "mobiles": ["0982596021"]},
    "id with newline": {"id": "KH\n01", "mobiles": ["0982596021"]},
    "id only spaces": {"id": "   ", "mobiles": ["0982596021"]},
    "id with a leading space": {"id": " KH01", "mobiles": ["0982596021"]},
    "id with a trailing tab": {"id": "KH01\t", "mobiles": ["0982596021"]},
    "id with NEL U+0085": {"id": "KH\u008501", "mobiles": ["0982596021"]},
    "id with CSI U+009B": {"id": "KH\u009b01", "mobiles": ["0982596021"]},
    "id with LINE SEPARATOR": {"id": "KH\u202801", "mobiles": ["0982596021"]},
    "id with a bidi override": {"id": "\u202eKH01", "mobiles": ["0982596021"]},
    "id with a zero-width space": {"id": "KH\u200b01", "mobiles": ["0982596021"]},
    "id a lone surrogate": {"id": "KH\ud80001", "mobiles": ["0982596021"]},
    "id with a combining grapheme joiner": {"id": "KH1\u034f", "mobiles": ["0982596021"]},
    "id with a variation selector": {"id": "KH1\ufe0f", "mobiles": ["0982596021"]},
    "id with a Hangul filler": {"id": "KH1\u3164", "mobiles": ["0982596021"]},
    "id decomposed (NFD)": {"id": "Nguye\u0302\u0303n-01", "mobiles": ["0982596021"]},
    "field a lone surrogate": customer("X", note="ab\udc00"),
    "field with a C1 control": customer("X", note="ab\u009bcd"),
    "field with newline": customer("X", contract_number="HD1", note="line1\nline2"),
    "field a list": customer("X", note=["a"]),
    "field an object": customer("X", note={"a": 1}),
    "field name odd": customer("X", **{"bad name": 1}),
    "amount negative": customer("X", upcoming_amount=-5),
    "amount text": customer("X", upcoming_amount="năm triệu"),
    "amount fraction": customer("X", upcoming_amount=10.5),
    "date impossible": customer("X", upcoming_due_date="2021-02-31"),
    "date text": customer("X", due_date="tomorrow"),
    "contract with braces": customer("X", contract_number="HD}{1"),
    "contract with %0A": customer("X", contract_number="HD%0A1"),
}


@pytest.mark.parametrize("bad", PER_CUSTOMER.values(), ids=PER_CUSTOMER.keys())
def test_a_bad_customer_fails_alone_with_a_reason(client, db, bad):
    body = seed_import()
    body["customers"].append(bad)
    r = post(client, "/queue", body)
    reply = r.get_json()
    assert r.status_code == 200 and reply["content"] == "successfully"
    assert reply["data"] == {"fail": [bad["id"]], "success": ["TEL4VN_Test"]}
    [error] = reply["errors"]
    assert error["id"] == bad["id"] and len(error["reason"]) > 5
    assert customer_states(db) == {"TEL4VN_Test": "pending"}


def test_duplicate_ids_in_one_request_all_fail_once(client, db):
    body = seed_import()
    body["customers"] += [customer("D"), customer("D"), customer("E"), customer("D")]
    reply = post(client, "/queue", body).get_json()
    assert reply["data"] == {"fail": ["D"], "success": ["TEL4VN_Test", "E"]}
    assert "more than once" in reply["errors"][0]["reason"]
    assert customer_states(db) == {"TEL4VN_Test": "pending", "E": "pending"}


def test_free_text_with_commas_braces_quotes_and_percent_is_stored_verbatim(client, db):
    text = 'Nguyễn, "Văn" {A} \'x\' %0A ${var} }'
    body = seed_import()
    body["customers"][0]["full_name"] = text
    assert post(client, "/queue", body).get_json() == SEED_OK
    [(fields,)] = rows(db, "SELECT fields FROM customer")
    assert json.loads(fields)["full_name"] == text


@pytest.mark.parametrize(
    "given,stored",
    [
        ("0982596021", "0982596021"),
        ("+84982596021", "0982596021"),
        ("84982596021", "0982596021"),
        ("0084 98 259 6021", "0982596021"),
        ("098.259.6021", "0982596021"),
        ("(028) 3822-1234", "02838221234"),
        ("+84 28 3822 1234", "02838221234"),
        ("0358-123-456", "0358123456"),
    ],
)
def test_vietnamese_phone_forms_are_normalised(client, db, given, stored):
    body = seed_import()
    body["customers"][0]["mobiles"] = [given]
    assert post(client, "/queue", body).get_json() == SEED_OK
    assert rows(db, "SELECT mobiles FROM customer") == [(json.dumps([stored]),)]


def test_invalid_mobiles_beside_a_valid_one_are_dropped_with_a_warning(client, db):
    body = seed_import()
    body["customers"][0]["mobiles"] = ["123", "0982596021", "+84982596021", "0912345678"]
    reply = post(client, "/queue", body).get_json()
    assert reply["data"] == SEED_OK["data"]
    assert reply["warnings"][0]["id"] == "TEL4VN_Test" and "123" in reply["warnings"][0]["reason"]
    assert rows(db, "SELECT mobiles FROM customer") == [('["0982596021","0912345678"]',)]


def test_unicode_and_integer_ids_are_accepted(client, db):
    body = seed_import()
    body["customers"] = [customer("Khách-hàng_ồ😀"), customer(12345), customer("x" * 128)]
    reply = post(client, "/queue", body).get_json()
    assert reply["data"] == {"fail": [], "success": ["Khách-hàng_ồ😀", "12345", "x" * 128]}
    assert set(customer_states(db)) == {"Khách-hàng_ồ😀", "12345", "x" * 128}


def test_a_ten_megabyte_id_is_refused_for_that_customer(client, db):
    body = seed_import()
    body["customers"].append(customer("i" * (10 * 1024 * 1024)))
    reply = post(client, "/queue", body).get_json()
    assert reply["data"]["success"] == ["TEL4VN_Test"]
    assert "longer than 128" in reply["errors"][0]["reason"]
    assert customer_states(db) == {"TEL4VN_Test": "pending"}


# --- re-import, DNC, stop/start, delete semantics (DESIGN §2) ---


def test_reimport_refreshes_pending_and_rearms_finished_and_refuses_calling(client, db):
    body = seed_import()
    body["customers"] = [customer("P"), customer("S"), customer("F"), customer("C")]
    post(client, "/queue", body)
    set_state(db, "S", "success")
    set_state(db, "F", "failed")
    set_state(db, "C", "calling")
    with db.connection_context():
        execute(db, "UPDATE customer SET round = 2, last_cause = 'USER_BUSY' WHERE ext_id = 'F'")
    body["customers"] = [customer(x, mobile="0912345678", upcoming_amount=7) for x in "PSFC"]
    body["concurrent_call"] = 9
    reply = post(client, "/queue", body).get_json()
    assert reply["data"] == {"fail": ["C"], "success": ["P", "S", "F"]}
    assert "in a call" in reply["errors"][0]["reason"]
    assert customer_states(db) == {"P": "pending", "S": "pending", "F": "pending", "C": "calling"}
    got = {
        ext: (json.loads(m), json.loads(f)["upcoming_amount"], rnd, cause)
        for ext, m, f, rnd, cause in rows(db, "SELECT ext_id, mobiles, fields, round, last_cause FROM customer")
    }
    assert got["P"] == (["0912345678"], 7, 0, None)
    assert got["F"] == (["0912345678"], 7, 0, None)
    assert got["C"] == (["0982596021"], 5000000, 0, None)
    assert rows(db, "SELECT concurrent_call FROM queue") == [(9,)]


def test_dnc_blocks_undialed_keeps_dialed_and_remembers_unknown_ids(client, db):
    body = seed_import()
    body["customers"] = [customer("P"), customer("C"), customer("S")]
    post(client, "/queue", body)
    set_state(db, "C", "calling")
    set_state(db, "S", "success")
    r = post(
        client,
        "/queue/dnc",
        {"queue_code": "Autocall-Q1", "customers": [{"id": "P"}, {"id": "C"}, {"id": "S"}, {"id": "LATER"}]},
    )
    assert r.get_json() == COMMAND_OK
    assert customer_states(db) == {"P": "dnc", "C": "calling", "S": "success"}
    body["customers"] = [customer("LATER"), customer("P"), customer("NEW")]
    reply = post(client, "/queue", body).get_json()
    assert reply["data"] == {"fail": ["LATER", "P"], "success": ["NEW"]}
    assert all("DNC" in e["reason"] for e in reply["errors"])
    assert "LATER" not in customer_states(db)


def test_dnc_is_per_queue(client, db):
    post(client, "/queue", seed_import())
    other = seed_import()
    other["queue_code"] = "Q2"
    post(client, "/queue", other)
    post(client, "/queue/dnc", {"queue_code": "Q2", "customers": [{"id": "TEL4VN_Test"}]})
    assert customer_states(db, "Autocall-Q1") == {"TEL4VN_Test": "pending"}
    assert customer_states(db, "Q2") == {"TEL4VN_Test": "dnc"}


def test_stop_and_start_flip_the_queue_state(client, db):
    post(client, "/queue", seed_import())
    post(client, "/queue/stop", {"queue_code": "Autocall-Q1"})
    assert rows(db, "SELECT state FROM queue") == [("stopped",)]
    # An import into a stopped queue merges but does not restart it.
    post(client, "/queue", seed_import())
    assert rows(db, "SELECT state FROM queue") == [("stopped",)]
    post(client, "/queue/start", {"queue_code": "Autocall-Q1"})
    assert rows(db, "SELECT state FROM queue") == [("running",)]


def test_delete_refuses_a_running_queue(client, db):
    post(client, "/queue", seed_import())
    r = post(client, "/queue/delete", {"queue_code": "Autocall-Q1"})
    assert r.status_code == 409
    assert r.get_json() == {"code": 409, "content": "queue is running, stop it first"}
    assert customer_states(db) == {"TEL4VN_Test": "pending"}


def test_delete_closes_unfinished_keeps_results_and_frees_the_code(client, db):
    body = seed_import()
    body["customers"] = [customer("P"), customer("C"), customer("S"), customer("F")]
    post(client, "/queue", body)
    for ext, state in [("C", "calling"), ("S", "success"), ("F", "failed")]:
        set_state(db, ext, state)
    post(client, "/queue/stop", {"queue_code": "Autocall-Q1"})
    assert post(client, "/queue/delete", {"queue_code": "Autocall-Q1"}).get_json() == COMMAND_OK
    assert dict(rows(db, "SELECT ext_id, state FROM customer")) == {
        "P": "deleted",
        "C": "deleted",
        "S": "success",
        "F": "failed",
    }
    # Gone for the commands...
    assert post(client, "/queue/start", {"queue_code": "Autocall-Q1"}).status_code == 404
    assert client.get("/v2/autocall/queue/Autocall-Q1", headers=AUTH).status_code == 404
    # ...and the code can be imported again as a new queue.
    assert post(client, "/queue", seed_import()).get_json() == SEED_OK
    assert rows(db, "SELECT state FROM queue ORDER BY id") == [("deleted",), ("running",)]
    assert customer_states(db) == {"TEL4VN_Test": "pending"}


def test_import_of_many_customers_is_written_in_chunks(tmp_path):
    client = create_app(make_config(tmp_path, import_chunk=7)).test_client()
    body = seed_import()
    body["customers"] = [customer(f"C{i:03}") for i in range(100)]
    reply = post(client, "/queue", body).get_json()
    assert reply["data"]["success"] == [f"C{i:03}" for i in range(100)]
    db = services(client.application).db
    assert rows(db, "SELECT COUNT(*) FROM customer WHERE state = 'pending'") == [(100,)]


# --- templates: must exist and be valid; customers must have what it reads aloud ---


def test_a_broken_template_refuses_the_import_with_its_problem(tmp_path):
    import dataclasses
    import shutil

    templates = tmp_path / "templates"
    shutil.copytree(REPO / "ivr_templates", templates, ignore=shutil.ignore_patterns("sounds"))
    (templates / "BROKEN.toml").write_text("[[step]]\nid = 'a'\nplay = ['no_such_prompt']\n")
    config = make_config(tmp_path)
    config = dataclasses.replace(
        config, templates=dataclasses.replace(config.templates, dir=templates, sounds=REPO / "ivr_templates" / "sounds")
    )
    client = create_app(config).test_client()
    r = post(client, "/queue", _with(template="BROKEN"))
    assert r.status_code == 400 and r.get_json()["content"] == "import fail"
    assert "no_such_prompt" in r.get_json()["errors"][0]["reason"]
    assert post(client, "/queue", seed_import()).get_json() == SEED_OK


def test_a_customer_without_a_field_the_template_reads_fails(client, db):
    body = seed_import()
    body["customers"].append(
        {
            "id": "NOAMOUNT",
            "mobiles": ["0912345678"],
            "contract_number": "HD1",
            "upcoming_due_date": "2021-07-13",
            "upcoming_amount": None,
        }
    )
    reply = post(client, "/queue", body).get_json()
    assert reply["data"] == {"fail": ["NOAMOUNT"], "success": ["TEL4VN_Test"]}
    assert "upcoming_amount" in reply["errors"][0]["reason"]


@pytest.mark.parametrize("written", ["2021-07-05", "05/07/2021", "5/7/2021", " 5/07/2021 "])
def test_every_date_the_voice_can_read_is_accepted_and_stored_as_iso(client, db, written):
    body = seed_import()
    body["customers"][0]["upcoming_due_date"] = written
    assert post(client, "/queue", body).get_json() == SEED_OK
    stored = execute(db, "SELECT fields FROM customer").fetchone()[0]
    assert '"upcoming_due_date": "2021-07-05"' in stored.replace('":"', '": "')


@pytest.mark.parametrize(
    "written", ["２０２１-０７-０５", "٠٥/٠٧/٢٠٢١", "05/07/２０２１"], ids=["fullwidth", "arabic", "mixed"]
)
def test_a_date_in_another_scripts_digits_fails_its_customer(client, db, written):
    body = seed_import()
    body["customers"][0]["upcoming_due_date"] = written
    reply = post(client, "/queue", body).get_json()
    assert reply["data"] == {"fail": ["TEL4VN_Test"], "success": []}
    assert reply["errors"][0]["reason"] == "upcoming_due_date: expected a real date as YYYY-MM-DD or DD/MM/YYYY"
    assert rows(db, "SELECT COUNT(*) FROM customer") == [(0,)]


@pytest.mark.parametrize("code", [" Q1", "Q1 ", "Q\u20281", "\u202eQ1", "Q\ud8001", "Q\u00851"])
def test_a_queue_code_with_hidden_characters_or_edge_spaces_fails_the_import(client, db, code):
    r = post(client, "/queue", _with(queue_code=code))
    assert r.status_code == 400 and r.get_json()["content"] == "import fail"
    assert "queue_code" in r.get_json()["errors"][0]["reason"]
    assert rows(db, "SELECT COUNT(*) FROM queue") == [(0,)]


def test_a_dnc_list_with_one_lone_surrogate_changes_nothing(client, db):
    assert post(client, "/queue", seed_import()).get_json() == SEED_OK
    ids = [{"id": f"KH{i}"} for i in range(2500)]
    ids[2100] = {"id": "KH\ud800"}
    r = post(client, "/queue/dnc", {"queue_code": "Autocall-Q1", "customers": ids})
    assert r.status_code == 400 and "U+D800" in json.dumps(r.get_json())
    assert rows(db, "SELECT COUNT(*) FROM dnc") == [(0,)]


def test_the_endpoints_do_not_import_the_app_factory():
    # One direction only: app.py builds the app from the blueprints, never the reverse.
    import subprocess
    import sys

    code = "import sys, api.commands, api.reports, api.health; print('api.app' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_503_tells_a_write_that_its_earlier_chunks_are_kept_and_a_read_only_to_send_it_again(
    client, app, monkeypatch
):
    from api.db import DatabaseUnavailable

    def unavailable(*args, **kwargs):
        raise DatabaseUnavailable("the disk holding the database is full", retry_after=30)

    monkeypatch.setattr(services(app).workers, "read", unavailable)
    monkeypatch.setattr(services(app).workers, "write", unavailable)
    read = client.get("/v2/autocall/queue/Autocall-Q1", headers=AUTH)
    write = post(client, "/queue/stop", {"queue_code": "Autocall-Q1"})
    for r in (read, write):
        assert (r.status_code, r.headers["Retry-After"], r.get_json()["content"]) == (
            503,
            "30",
            "database unavailable",
        )
    [said] = read.get_json()["errors"]
    assert said["reason"] == "the disk holding the database is full; the request was not finished: send it again"
    assert write.get_json()["errors"][0]["reason"] == (
        "the disk holding the database is full; the request was not finished: send it again"
        " (what it wrote before is kept)"
    )
