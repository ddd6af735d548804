"""The report reads: queue summary, customers with attempts, attempts CSV."""

import csv
import io

from tests.api_fixtures import AUTH, customer, post, seed_import

T0 = 1626152400.0  # 2021-07-13 05:00 UTC = 12:00 in Ho Chi Minh City


def add_attempt(db, ext_id, number, uuid, **values):
    with db.connection_context():
        cid, qid = db.execute_sql("SELECT id, queue_id FROM customer WHERE ext_id = ?", (ext_id,)).fetchone()
        columns = {
            "customer_id": cid,
            "queue_id": qid,
            "round": 0,
            "number": number,
            "uuid": uuid,
            "job_uuid": "job-" + uuid,
            "state": "done",
            "started_at": T0,
            "keys": "",
            **values,
        }
        db.execute_sql(
            f"INSERT INTO attempt ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            list(columns.values()),
        )


def test_queue_summary_counts_customers_per_state(client, db):
    body = seed_import()
    body["customers"] = [customer(f"C{i}") for i in range(5)]
    post(client, "/queue", body)
    with db.connection_context():
        db.execute_sql("UPDATE customer SET state = 'success' WHERE ext_id IN ('C0', 'C1')")
        db.execute_sql("UPDATE customer SET state = 'calling' WHERE ext_id = 'C2'")
    r = client.get("/v2/autocall/queue/Autocall-Q1", headers=AUTH)
    data = r.get_json()["data"]
    assert r.status_code == 200
    assert data["counts"] == {"pending": 2, "calling": 1, "success": 2, "failed": 0, "dnc": 0, "deleted": 0}
    assert (data["total"], data["finished"], data["state"], data["template"]) == (5, 2, "running", "IVR-1")
    assert (data["concurrent_call"], data["max_recall_count"], data["min_recall_duration"]) == (5, 3, 3)


def test_unknown_queue_reads_are_404(client):
    for path in ("/queue/nope", "/queue/nope/customers", "/queue/nope/attempts.csv"):
        r = client.get("/v2/autocall" + path, headers=AUTH)
        assert (r.status_code, r.get_json()) == (404, {"code": 404, "content": "queue not found"})


def test_customers_are_paged_filtered_and_carry_their_attempts(client, db):
    body = seed_import()
    body["customers"] = [customer(f"C{i}") for i in range(7)]
    post(client, "/queue", body)
    with db.connection_context():
        db.execute_sql("UPDATE customer SET state = 'failed' WHERE ext_id IN ('C1', 'C4')")
    add_attempt(db, "C1", "0982596021", "u1", hangup_cause="USER_BUSY", outcome="retry")
    add_attempt(db, "C1", "0982596021", "u2", hangup_cause="NO_ANSWER", outcome="retry")

    page = client.get("/v2/autocall/queue/Autocall-Q1/customers?per_page=3&page=3", headers=AUTH).get_json()
    assert (page["data"]["total"], [c["id"] for c in page["data"]["customers"]]) == (7, ["C6"])

    failed = client.get("/v2/autocall/queue/Autocall-Q1/customers?state=failed", headers=AUTH).get_json()["data"]
    assert [c["id"] for c in failed["customers"]] == ["C1", "C4"]
    assert [(a["uuid"], a["hangup_cause"]) for a in failed["customers"][0]["attempts"]] == [
        ("u1", "USER_BUSY"),
        ("u2", "NO_ANSWER"),
    ]
    assert failed["customers"][1]["attempts"] == []


def test_customers_listing_rejects_bad_parameters(client):
    post(client, "/queue", seed_import())
    for query in ("state=happy", "page=0", "per_page=501", "page=x", "per_page=-1"):
        r = client.get(f"/v2/autocall/queue/Autocall-Q1/customers?{query}", headers=AUTH)
        assert r.status_code == 400, query
        assert r.get_json()["errors"], query


def test_attempts_csv_lists_every_call_with_local_times(client, db):
    post(client, "/queue", seed_import())
    add_attempt(
        db,
        "TEL4VN_Test",
        "0982596021",
        "u1",
        answered_at=T0 + 2,
        ended_at=T0 + 20,
        hangup_cause="NORMAL_CLEARING",
        sip_status="200",
        talk_seconds=18.0,
        keys="19",
        outcome="success",
        result="promise_to_pay",
    )
    add_attempt(db, "TEL4VN_Test", "0982596021", "u0, \"quoted\"", hangup_cause="USER_BUSY")
    r = client.get("/v2/autocall/queue/Autocall-Q1/attempts.csv", headers=AUTH)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert 'filename="attempts-Autocall-Q1.csv"' in r.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["uuid"] for row in table] == ["u1", 'u0, "quoted"']
    first = table[0]
    assert first["customer_id"] == "TEL4VN_Test"
    assert first["started_at"] == "2021-07-13T12:00:00.000+07:00"
    assert (first["talk_seconds"], first["keys"], first["result"]) == ("18.0", "19", "promise_to_pay")
    assert table[1]["answered_at"] == ""


def test_attempts_csv_of_a_queue_without_calls_is_just_the_header(client):
    post(client, "/queue", seed_import())
    text = client.get("/v2/autocall/queue/Autocall-Q1/attempts.csv", headers=AUTH).get_data(as_text=True)
    assert text.splitlines() == [
        "customer_id,number,uuid,round,state,started_at,answered_at,ended_at,"
        "hangup_cause,sip_status,talk_seconds,keys,outcome,result,trunk"
    ]


def test_attempts_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas(client, db):
    ids = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1,2)", "-2+3", "KH=1"]
    body = seed_import()
    body["customers"] = [customer(ext_id) for ext_id in ids]
    assert post(client, "/queue", body).get_json()["data"]["fail"] == []
    for i, ext_id in enumerate(ids):
        add_attempt(db, ext_id, "0982596021", f"u{i}", hangup_cause="USER_BUSY")
    text = client.get("/v2/autocall/queue/Autocall-Q1/attempts.csv", headers=AUTH).get_data(as_text=True)
    first_column = [row["customer_id"] for row in csv.DictReader(io.StringIO(text))]
    assert first_column == ["'" + ext_id for ext_id in ids[:4]] + ["KH=1"]


def test_attempts_csv_quotes_every_cell_so_a_semicolon_splitting_spreadsheet_starts_none_inside_an_id(client, db):
    """Excel with Vietnamese settings splits a CSV on ";": an id `KH_7;=cmd|...;` left unquoted
    would be three cells there, the second a formula."""
    body = seed_import()
    body["customers"] = [customer("KH_7;=cmd|' /C calc'!A0;")]
    assert post(client, "/queue", body).get_json()["data"]["fail"] == []
    add_attempt(db, "KH_7;=cmd|' /C calc'!A0;", "0982596021", "u1", hangup_cause="USER_BUSY")
    text = client.get("/v2/autocall/queue/Autocall-Q1/attempts.csv", headers=AUTH).get_data(as_text=True)
    line = text.splitlines()[1]
    assert line.startswith('"KH_7;=cmd|\' /C calc\'!A0;","0982596021","u1",')
    for cell in csv.reader(io.StringIO(line), delimiter=";"):  # as such a spreadsheet reads it
        assert not any(part.startswith(("=", "+", "-", "@")) for part in cell)


# --- pages after a cursor (keyset) and pages by number ------------------------------------


def listing(client, query: str) -> dict:
    r = client.get(f"/v2/autocall/queue/Autocall-Q1/customers?{query}", headers=AUTH)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["data"]


def import_many(client, n: int) -> list[str]:
    body = seed_import()
    body["customers"] = [customer(f"C{i:02d}") for i in range(n)]
    assert post(client, "/queue", body).get_json()["data"]["fail"] == []
    return [f"C{i:02d}" for i in range(n)]


def set_state(db, state, *ext_ids):
    with db.connection_context():
        db.execute_sql(
            f"UPDATE customer SET state = ? WHERE ext_id IN ({', '.join('?' * len(ext_ids))})", (state, *ext_ids)
        )


def test_a_walk_by_cursor_lists_every_customer_once_in_order_while_states_change(client, db):
    ids = import_many(client, 23)
    seen, query, turn = [], "per_page=4", 0
    while True:
        data = listing(client, query)
        assert "page" not in data or query == "per_page=4"
        assert data["total"] == 23
        seen += [c["id"] for c in data["customers"]]
        if data["next"] is None:
            break
        # Between pages: customers behind and ahead of the cursor change state, by the API's
        # DNC and as the dialer moves them.
        turn += 1
        post(client, "/queue/dnc", {"queue_code": "Autocall-Q1", "customers": [{"id": ids[turn]}, {"id": ids[-turn]}]})
        set_state(db, "calling", ids[turn * 3 % 23])
        query = f"per_page=4&after={data['next']}"
    assert seen == ids


def test_a_walk_by_cursor_of_one_state_skips_none_that_stayed_in_it(client, db):
    ids = import_many(client, 20)
    left = set()  # pending customers already listed that end dnc before the next page
    seen, query = [], "state=pending&per_page=3"
    while query:
        data = listing(client, query)
        seen += [c["id"] for c in data["customers"]]
        assert {c["state"] for c in data["customers"]} <= {"pending"}
        gone = [c["id"] for c in data["customers"]][:2]
        post(client, "/queue/dnc", {"queue_code": "Autocall-Q1", "customers": [{"id": x} for x in gone]})
        left.update(gone)
        query = data["next"] and f"state=pending&per_page=3&after={data['next']}"
    # With page numbers (OFFSET) each DNC would shift the rest forward and skip customers.
    assert seen == ids
    assert listing(client, "state=dnc")["total"] == len(left)


def test_pages_by_number_read_from_either_end_alike(client, db):
    ids = import_many(client, 23)
    set_state(db, "failed", *ids[::3])
    for state, expected in (("", ids), ("state=failed&", ids[::3])):
        per_page = 3
        pages = [listing(client, f"{state}per_page={per_page}&page={page}") for page in range(1, 10)]
        assert [c["id"] for p in pages for c in p["customers"]] == expected
        assert all(p["total"] == len(expected) and p["page"] == i + 1 for i, p in enumerate(pages))
        full = [p for p in pages if p["customers"]]
        # `next` of any page by number goes on with the cursor where it stopped.
        assert [p["next"] is None for p in full] == [False] * (len(full) - 1) + [True]
        after = listing(client, f"{state}per_page={per_page}&after={full[1]['next']}")
        assert after["customers"] == full[2]["customers"]


def test_a_cursor_is_checked_and_goes_alone(client):
    import_many(client, 3)
    for query in ("after=x", "after=-1", "after=1&page=1", "after=" + "9" * 19, "after=١"):
        r = client.get(f"/v2/autocall/queue/Autocall-Q1/customers?{query}", headers=AUTH)
        assert r.status_code == 400, query
        assert [e["field"] for e in r.get_json()["errors"]] == ["after"], query
    assert listing(client, "after=999999")["customers"] == []


def test_attempts_csv_is_sent_while_its_later_rows_are_not_yet_read(client, db, monkeypatch):
    import api.reports

    monkeypatch.setattr(api.reports, "CSV_PAGE", 5)
    import_many(client, 4)
    for i in range(12):
        add_attempt(db, f"C{i % 4:02d}", "0982596021", f"u{i:02d}")
    r = client.get("/v2/autocall/queue/Autocall-Q1/attempts.csv", headers=AUTH, buffered=False)
    pieces = iter(r.response)
    header, first_page = next(pieces), next(pieces)
    assert header.startswith(b"customer_id,") and first_page.count(b"\n") == 5
    add_attempt(db, "C00", "0982596021", "late")  # written after the first page went out
    rest = b"".join(pieces)
    r.close()
    uuids = [row["uuid"] for row in csv.DictReader(io.StringIO((header + first_page + rest).decode()))]
    assert uuids == [f"u{i:02d}" for i in range(12)] + ["late"]
