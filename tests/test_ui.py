"""The web console without a browser: accounts (`autocall users`), login, sessions, CSRF,
roles, the login limit, the console's commands against the API's semantics, escaping, the
stitched "listen" audio, the Vietnamese formats, and the store's console reads on both
backends. The browser tests are in test_ui_browser.py."""

import functools
import io
import json
import re
import time
import wave

import pytest
import requests

from api.services import services
from api.ui import auth, i18n, listen
from api.ui.live import eta_seconds
from daemon import cli, ivr, passwords, statefile
from daemon.store import console, operators
from daemon.store.schema import open_database
from tests.api_fixtures import REPO, SEED_DNC, ApiProcess, customer, customer_states, post, rows, seed_import


@functools.cache
def stored(password: str) -> str:
    return passwords.hash_password(password)  # about 0.2 s: once per password per test run


def add_account(db, name: str, role: str, password: str = "good-password-1"):
    with db.connection_context(), db.atomic():
        operators.add_user(db, name, role, stored(password), now=time.time())


def csrf_of(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def log_in(client, name: str, password: str = "good-password-1", next_page: str = "/ui/"):
    token = csrf_of(client.get("/ui/login"))
    return client.post("/ui/login", data={"csrf": token, "username": name, "password": password, "next": next_page})


@pytest.fixture
def ana(client, db):
    """`client` logged in as ana, an operator; returns her CSRF token."""
    add_account(db, "ana", operators.OPERATOR)
    assert log_in(client, "ana").status_code == 303
    return csrf_of(client.get("/ui/"))


@pytest.fixture
def queue(client):
    assert post(client, "/queue", seed_import()).status_code == 200
    return "Autocall-Q1"


def queue_state(db, code="Autocall-Q1"):
    return rows(db, "SELECT state FROM queue WHERE code = ? AND state != 'deleted'", code)[0][0]


def audit(db) -> list[tuple]:
    return rows(db, "SELECT who, action, target, detail FROM ui_audit ORDER BY id")


# --- accounts -------------------------------------------------------------------------------


def run_cli(monkeypatch, capsys, *argv, stdin=""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_users_are_added_listed_changed_and_removed_and_a_password_is_never_an_argument(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUTOCALL_DB", str(tmp_path / "a.sqlite3"))
    monkeypatch.delenv("AUTOCALL_CONFIG", raising=False)
    # Found by the careless-operator review: with no database there (a wrong --config, or none),
    # the account went into a new empty file the console never reads, and the command said done.
    code, _, err = run_cli(monkeypatch, capsys, "users", "add", "ana", "--role", "operator", stdin="ana-password-1\n")
    assert code == 2 and f"no database at {tmp_path / 'a.sqlite3'}" in err and "--config" in err
    assert not (tmp_path / "a.sqlite3").exists()
    open_database(tmp_path / "a.sqlite3").close()  # the services' first start makes it
    assert run_cli(monkeypatch, capsys, "users", "add", "ana", "--role", "operator", stdin="ana-password-1\n")[0] == 0
    assert run_cli(monkeypatch, capsys, "users", "add", "vu", "--role", "viewer", stdin="vu-password-12\n")[0] == 0
    code, out, _ = run_cli(monkeypatch, capsys, "users", "list")
    assert code == 0 and re.search(r"^ana +operator", out, re.M) and re.search(r"^vu +viewer", out, re.M)
    assert "ana-password-1" not in out

    # Refused, each with its reason, and nothing changed.
    code, _, err = run_cli(monkeypatch, capsys, "users", "add", "ana", "--role", "viewer", stdin="other-password-1\n")
    assert code == 1 and "exists already" in err
    code, _, err = run_cli(monkeypatch, capsys, "users", "add", "bo", "--role", "viewer", stdin="short\n")
    assert code == 2 and "at least 10 characters" in err
    with pytest.raises(SystemExit) as exit_:
        run_cli(monkeypatch, capsys, "users", "add", "bo", "--role", "viewer", "--password", "secret-password")
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        run_cli(monkeypatch, capsys, "users", "add", "bad name", "--role", "viewer")
    code, _, err = run_cli(monkeypatch, capsys, "users", "remove", "nobody")
    assert code == 1 and "no account nobody" in err

    db = open_database(tmp_path / "a.sqlite3")
    [(hash_,)] = rows(db, "SELECT password_hash FROM ui_user WHERE name = 'ana'")
    assert hash_.startswith("scrypt$") and passwords.verify_password("ana-password-1", hash_)
    assert run_cli(monkeypatch, capsys, "users", "password", "ana", stdin="ana-password-2\n")[0] == 0
    assert run_cli(monkeypatch, capsys, "users", "role", "ana", "viewer")[0] == 0
    assert run_cli(monkeypatch, capsys, "users", "remove", "vu")[0] == 0
    [(hash_, role)] = rows(db, "SELECT password_hash, role FROM ui_user")
    assert passwords.verify_password("ana-password-2", hash_) and role == "viewer"
    assert [action for _, action, _, _ in audit(db)] == [
        "user.add",
        "user.add",
        "user.password",
        "user.role",
        "user.remove",
    ]
    db.close()


def test_a_password_hash_verifies_only_its_own_password():
    stored_ = stored("good-password-1")
    assert passwords.verify_password("good-password-1", stored_)
    assert not passwords.verify_password("good-password-2", stored_)
    assert not passwords.verify_password("good-password-1", None)  # no such account
    assert not passwords.verify_password("good-password-1", "md5$abc")
    assert stored("good-password-1") != passwords.hash_password("good-password-1")  # salted


# --- login, sessions, CSRF, roles ----------------------------------------------------------


def test_login_opens_a_strict_session_and_logout_ends_it(client, db):
    add_account(db, "ana", operators.OPERATOR)
    assert client.get("/ui/").status_code == 303  # to the login page
    done = log_in(client, "ana")
    assert done.status_code == 303 and done.headers["Location"] == "/ui/"
    [cookie] = [c for c in done.headers.getlist("Set-Cookie") if c.startswith(auth.COOKIE + "=")]
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/ui/"):
        assert attribute in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert rows(db, "SELECT token_hash FROM ui_session") == [(operators.token_hash(token),)]  # the token is not stored
    page = client.get("/ui/")
    assert page.status_code == 200 and "ana" in page.get_data(as_text=True)

    assert client.post("/ui/logout", data={"csrf": csrf_of(page)}).status_code == 303
    assert rows(db, "SELECT COUNT(*) FROM ui_session") == [(0,)]
    assert client.get("/ui/").status_code == 303
    client.set_cookie(auth.COOKIE, token, path="/ui/")  # the old cookie, sent again: no way in
    assert client.get("/ui/").status_code == 303
    assert [action for _, action, _, _ in audit(db)] == ["login", "logout"]


def test_a_removed_account_or_a_new_password_ends_its_sessions_at_once(client, db, ana):
    assert client.get("/ui/").status_code == 200
    with db.connection_context(), db.atomic():
        operators.change_user(db, "ana", password_hash=stored("another-password"), now=time.time())
    assert client.get("/ui/").status_code == 303
    assert log_in(client, "ana", "another-password").status_code == 303
    with db.connection_context(), db.atomic():
        operators.remove_user(db, "ana")
    assert client.get("/ui/").status_code == 303
    assert client.get("/ui/live/queues.json").status_code == 401


def test_an_idle_session_ends(client, db, ana):
    with db.connection_context():
        db.execute_sql("UPDATE ui_session SET seen_at = seen_at - ?", (auth.IDLE + 1,))
    assert client.get("/ui/").status_code == 303
    assert rows(db, "SELECT COUNT(*) FROM ui_session") == [(0,)]


@pytest.mark.parametrize("name, password", [("ana", "wrong-password"), ("nobody", "good-password-1"), ("", "")])
def test_a_wrong_login_is_refused_with_one_sentence_for_every_reason(client, db, name, password):
    add_account(db, "ana", operators.OPERATOR)
    refused = log_in(client, name, password)
    assert refused.status_code == 401
    assert "Sai tên đăng nhập hoặc mật khẩu." in refused.get_data(as_text=True)
    assert rows(db, "SELECT COUNT(*) FROM ui_session") == [(0,)]


def test_after_five_failures_a_name_is_refused_even_with_its_right_password(client, db):
    add_account(db, "ana", operators.OPERATOR)
    add_account(db, "vu", operators.VIEWER)
    for _ in range(auth.LIMIT_FAILURES):
        assert log_in(client, "ana", "guess-password").status_code == 401
    limited = log_in(client, "ana")
    assert limited.status_code == 429 and "Quá nhiều lần đăng nhập sai" in limited.get_data(as_text=True)
    assert log_in(client, "vu").status_code == 303  # another name is not held back


def test_the_login_limit_forgets_failures_after_its_window():
    now = [1000.0]
    limit = auth.LoginLimit(clock=lambda: now[0])
    for _ in range(auth.LIMIT_FAILURES):
        limit.attempt("ana")
    assert limit.wait("ana") == pytest.approx(auth.LIMIT_WINDOW)
    now[0] += auth.LIMIT_WINDOW + 1
    assert limit.wait("ana") == 0


def test_every_form_needs_its_csrf_token(client, db, ana, queue):
    for data in ({"code": queue}, {"code": queue, "csrf": ""}, {"code": queue, "csrf": ana[:-1] + "x"}):
        refused = client.post("/ui/queue/stop", data=data)
        assert refused.status_code == 400
        assert "Biểu mẫu đã hết hạn" in refused.get_data(as_text=True)
    assert queue_state(db) == "running"
    assert client.post("/ui/logout", data={}).status_code == 400
    # The login form too: without the token of its own cookie, no password is even checked.
    client.delete_cookie(auth.LOGIN_COOKIE, path="/ui/")
    refused = client.post("/ui/login", data={"csrf": "made-up", "username": "ana", "password": "good-password-1"})
    assert refused.status_code == 400
    assert audit(db) == [("ana", "login", None, None)]


def test_a_viewer_sees_every_page_but_can_neither_stop_start_nor_dnc(client, db, queue):
    add_account(db, "vu", operators.VIEWER)
    log_in(client, "vu")
    page = client.get(f"/ui/queue?code={queue}")
    assert page.status_code == 200 and 'id="stop-queue"' not in page.get_data(as_text=True)
    token = csrf_of(page)
    for path, data in (("stop", {}), ("start", {}), ("dnc", {"ids": "TEL4VN_Test"})):
        refused = client.post(f"/ui/queue/{path}", data={"csrf": token, "code": queue, **data})
        assert refused.status_code == 403 and "chỉ được xem" in refused.get_data(as_text=True)
    assert queue_state(db) == "running" and customer_states(db) == {"TEL4VN_Test": "pending"}
    assert [action for _, action, _, _ in audit(db)] == ["login"]


def test_a_stop_start_and_dnc_from_the_console_are_the_apis_and_are_audited(client, db, ana, queue):
    more = seed_import() | {"customers": [customer("KH_A"), customer("KH_B", "0982596022")]}
    post(client, "/queue", more)
    done = client.post("/ui/queue/stop", data={"csrf": ana, "code": queue})
    assert done.status_code == 303 and "done=stopped" in done.headers["Location"]
    assert queue_state(db) == "stopped"
    assert client.post("/ui/queue/start", data={"csrf": ana, "code": queue}).status_code == 303
    assert queue_state(db) == "running"
    # Blank lines and repeats dropped; one not imported yet; one typed composed, which also
    # blocks its decomposed form (the audit says what was typed).
    ids = "KH_A\n\n  KH_B  \nKH_LATER\nKH_A\nNguy\u1ec5n\n"
    assert client.post("/ui/queue/dnc", data={"csrf": ana, "code": queue, "ids": ids}).status_code == 303
    assert customer_states(db) == {"TEL4VN_Test": "pending", "KH_A": "dnc", "KH_B": "dnc"}
    # As POST /queue/dnc: the id not yet imported is remembered, and its import refused.
    refused = post(client, "/queue", seed_import() | {"customers": [customer("KH_LATER")]}).get_json()
    assert refused["data"]["fail"] == ["KH_LATER"]
    assert audit(db)[1:] == [
        ("ana", "queue.stop", queue, None),
        ("ana", "queue.start", queue, None),
        ("ana", "queue.dnc", queue, '["KH_A", "KH_B", "KH_LATER", "Nguy\u1ec5n"]'),
    ]
    decomposed = post(client, "/queue", seed_import() | {"customers": [customer("Nguye\u0302\u0303n")]}).get_json()
    assert decomposed["errors"] == [{"id": "Nguye\u0302\u0303n", "reason": "on this queue's DNC list"}]


@pytest.mark.parametrize(
    "path, data, status",
    [
        ("stop", {"code": "nope"}, 404),
        ("dnc", {"code": "Autocall-Q1", "ids": "  \n"}, 400),
        ("dnc", {"code": "Autocall-Q1", "ids": "\n".join(f"K{i}" for i in range(1001))}, 400),
        ("dnc", {"code": "Autocall-Q1", "ids": "bad\x00id"}, 400),
        ("dnc", {"code": "nope", "ids": "K1"}, 404),
    ],
)
def test_a_bad_console_command_is_refused_and_changes_nothing(client, db, ana, queue, path, data, status):
    assert client.post(f"/ui/queue/{path}", data={"csrf": ana, **data}).status_code == status
    assert queue_state(db) == "running" and customer_states(db) == {"TEL4VN_Test": "pending"}
    assert rows(db, "SELECT COUNT(*) FROM dnc") == [(0,)]
    assert len(audit(db)) == 1  # the login


def test_after_login_only_a_console_page_is_a_destination(client, db):
    add_account(db, "ana", operators.OPERATOR)
    for target in ("https://evil.example/", "//evil.example/ui/", "/v2/autocall/queue"):
        assert log_in(client, "ana", next_page=target).headers["Location"] == "/ui/"
    assert log_in(client, "ana", next_page="/ui/system").headers["Location"] == "/ui/system"


# --- pages ----------------------------------------------------------------------------------


def test_customer_text_is_escaped_and_every_page_forbids_inline_script(client, db, ana):
    evil = '"><script>alert(1)</script>'
    body = seed_import() | {"customers": [customer(evil, note="<img src=x onerror=alert(2)>")]}
    assert post(client, "/queue", body).get_json()["data"]["success"] == [evil]
    for path in ("/ui/queue?code=Autocall-Q1", "/ui/customer?queue=Autocall-Q1&id=" + requests.utils.quote(evil)):
        page = client.get(path)
        text = page.get_data(as_text=True)
        assert page.status_code == 200
        assert "<script>alert" not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert page.headers["Cache-Control"] == "no-store"


def test_every_page_renders_in_both_languages(client, db, ana, queue):
    for lang, word in (("vi", "Hàng đợi"), ("en", "Queues")):
        client.get(f"/ui/lang/{lang}")
        for path in (
            "/ui/",
            f"/ui/queue?code={queue}",
            f"/ui/queue?code={queue}&state=pending&q=TEL&page=1",
            f"/ui/customer?queue={queue}&id=TEL4VN_Test",
            "/ui/templates",
            f"/ui/templates?queue={queue}&id=TEL4VN_Test",
            "/ui/system",
            "/ui/audit",
        ):
            page = client.get(path)
            assert page.status_code == 200, (path, page.get_data(as_text=True)[:500])
            assert word in page.get_data(as_text=True)
    assert client.get(f"/ui/queue?code={queue}&state=nonsense").status_code == 400
    assert client.get("/ui/queue?code=nope").status_code == 404
    assert client.get(f"/ui/customer?queue={queue}&id=nobody").status_code == 404
    assert client.get("/ui/lang/fr").status_code == 404


def test_a_database_that_cannot_answer_is_a_page_that_says_why(client, app, ana, monkeypatch):
    from api.db import DatabaseUnavailable

    def unavailable(*args, **kwargs):
        raise DatabaseUnavailable("the disk holding the database is full", retry_after=30)

    monkeypatch.setattr(services(app).workers, "read", unavailable)
    page = client.get("/ui/system")
    assert page.status_code == 503 and page.headers["Retry-After"] == "30"
    text = page.get_data(as_text=True)
    assert "the disk holding the database is full" in text and 'http-equiv="refresh"' in text


def test_the_live_json_carries_the_queues_numbers(client, db, ana, queue):
    [row] = client.get("/ui/live/queues.json").get_json()["queues"]
    assert row["code"] == queue and row["state"] == "running" and row["total"] == 1 and row["pending"] == 1
    assert row["concurrent_call"] == 5 and len(row["spark"]) == 30


def test_the_csv_link_is_the_apis_export(client, ana, queue):
    export = client.get(f"/ui/queue/attempts.csv?code={queue}")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert export.get_data(as_text=True).startswith("customer_id,number,uuid")


def test_listen_is_the_no_key_path_of_the_customers_rendered_call_in_one_wav(client, ana, queue):
    heard = client.get(f"/ui/templates/IVR-1/listen.wav?queue={queue}&id=TEL4VN_Test")
    assert heard.status_code == 200 and heard.mimetype == "audio/wav"
    loader = ivr.TemplateLoader(REPO / "ivr_templates", REPO / "ivr_templates" / "sounds")
    script = loader.get("IVR-1").render(seed_import()["customers"][0])
    parts = listen.no_key_path(script)
    menu = script.steps["menu"]
    # greeting, info, the menu's prompt + wait + wrong-key prompt per try, goodbye
    assert parts == [
        *script.steps["greeting"].files,
        *script.steps["info"].files,
        *[*menu.files, listen.Silence(menu.timeout_ms), menu.invalid_file] * menu.tries,
        *script.steps["goodbye"].files,
    ]
    frames = 0
    for part in parts:
        if isinstance(part, listen.Silence):
            frames += 8000 * part.ms // 1000
        else:
            with wave.open(part) as w:
                frames += w.getnframes()
    with wave.open(io.BytesIO(heard.data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() == frames
    assert client.get("/ui/templates/NOPE/listen.wav").status_code == 404


def test_a_sound_file_of_another_format_is_named_not_stitched(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    for path, rate in ((a, 8000), (b, 16000)):
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
            w.writeframes(b"\0\0" * 100)
    with pytest.raises(listen.Unstitchable, match=r"b\.wav: 16000 Hz.*first file is 8000 Hz"):
        listen.stitch([str(a), str(b)])
    with pytest.raises(listen.Unstitchable, match="cannot be read"):
        listen.stitch([str(tmp_path / "missing.wav")])


@pytest.mark.parametrize(
    "value, text",
    [(5000000, "5.000.000 ₫"), (3211100.0, "3.211.100 ₫"), (0, "0 ₫"), ("abc", "abc"), (None, "")],
)
def test_money_is_written_the_vietnamese_way(value, text):
    assert i18n.money(value) == text


def test_dates_and_times_are_written_the_vietnamese_way_in_the_configured_zone():
    from zoneinfo import ZoneInfo

    assert i18n.date("2021-07-13") == "13/07/2021"
    assert i18n.date("13/07/2021") == "13/07/2021"
    assert i18n.when(1626159600.0, ZoneInfo("Asia/Ho_Chi_Minh")) == "13/07/2021 14:00:00"
    assert i18n.number(1234567) == "1.234.567" and i18n.duration(3725) == "1 h 02 min"
    assert i18n.field("upcoming_amount", 5000000) == "5.000.000 ₫"
    assert i18n.field("due_date", "2021-07-13") == "13/07/2021"


def test_every_label_has_both_languages():
    assert all(len(pair) == 2 and all(pair) for pair in i18n.LABELS.values())


def test_the_eta_is_the_customers_left_at_the_recent_rate():
    spark = [0] * 25 + [6] * 5  # 6 calls a minute for the last 5 minutes, none before
    assert eta_seconds("running", 30, 10, 20, spark) == pytest.approx(30 * 2 / 6 * 60)
    assert eta_seconds("running", 0, 10, 20, spark) == 0
    assert eta_seconds("stopped", 30, 10, 20, spark) is None
    assert eta_seconds("running", 30, 0, 0, [0] * 30) is None


# --- the store's console reads, on both backends ------------------------------------------


def test_the_customer_search_matches_id_prefixes_and_numbers_literally(store_db):
    from daemon.config import QueueDefaults
    from daemon.store.commands import import_customers
    from daemon.store.records import ImportRequest, NewCustomer

    people = [
        NewCustomer("KH_1", ["0901000001"], {}),
        NewCustomer("KH%2", ["0901000002"], {}),
        NewCustomer("XKH3", ["0902000003"], {}),
    ]
    import_customers(store_db, ImportRequest("Q", "IVR-1", {}, people), QueueDefaults())

    def found(search, state=None):
        page = console.customer_page(store_db, "Q", state=state, search=search, page=1, per_page=10)
        return page["total"], [c["ext_id"] for c in page["customers"]]

    assert found(None) == (3, ["KH_1", "KH%2", "XKH3"])
    assert found("KH") == (2, ["KH_1", "KH%2"]) == found("kh")
    assert found("KH%") == (1, ["KH%2"])  # % and _ are letters here, not wildcards
    assert found("KH_") == (1, ["KH_1"])
    assert found("0902") == (1, ["XKH3"])
    assert found("KH", state="dnc") == (0, [])
    assert console.customer(store_db, "Q", "KH%2")["mobiles"] == ["0901000002"]
    assert console.customer(store_db, "Q", "nobody") is None


def test_accounts_sessions_and_the_audit_log_on_both_backends(store_db):
    with store_db.atomic():
        ana = operators.add_user(store_db, "ana", operators.OPERATOR, "h", now=1.0)
        with pytest.raises(operators.UserExists):
            operators.add_user(store_db, "ana", operators.VIEWER, "h", now=2.0)
        operators.open_session(store_db, ana, "tok", "csrf", now=3.0)
        for i in range(3):
            operators.record(store_db, "ana", "queue.stop", target=f"Q{i}", now=4.0 + i)
    assert operators.session(store_db, "tok") == operators.Session(
        operators.token_hash("tok"), "ana", "operator", "csrf", 3.0, 3.0
    )
    assert operators.session(store_db, "other") is None
    assert operators.password_hash_of(store_db, ana) == "h" and operators.password_hash_of(store_db, ana + 1) is None
    lines, total = operators.audit_page(store_db, limit=2, offset=0)
    assert total == 3 and [line["target"] for line in lines] == ["Q2", "Q1"]
    assert console.capped_today(store_db, day_start=0, cap=5) == 0
    with store_db.atomic():
        operators.change_user(store_db, "ana", role=operators.VIEWER, now=5.0)
    assert operators.session(store_db, "tok") is None  # a change of role ends the sessions
    assert operators.users(store_db)[0]["role"] == "viewer"


# --- the real server ------------------------------------------------------------------------


def test_the_server_reads_console_forms_without_a_token_and_only_small_ones(tmp_path):
    api = ApiProcess(tmp_path)
    try:
        login = requests.get(api.url + "/ui/login", timeout=10)
        assert login.status_code == 200 and login.headers["Content-Security-Policy"].startswith("default-src 'none'")
        refused = requests.post(api.url + "/ui/login", data={"csrf": "x"}, timeout=10)
        assert refused.status_code == 400  # read and answered by the console, not the server's 401
        big = requests.post(api.url + "/ui/login", data={"csrf": "x" * 300_000}, timeout=10)
        assert big.status_code == 413
        # The API's own commands still need their token before any body is read.
        assert requests.post(api.url + "/v2/autocall/queue/dnc", json=SEED_DNC, timeout=10).status_code == 401
        assert requests.get(api.url + "/ui/static/vendor/uplot/LICENSE", timeout=10).status_code == 200
    finally:
        api.stop()


def test_the_system_page_of_a_state_file_that_tells_nothing_says_so(client, app, ana):
    db_path = services(app).config.db_path
    statefile.path_for(db_path).write_bytes(b"")  # made on a disk already full
    client.get("/ui/lang/en")
    text = client.get("/ui/system").get_data(as_text=True)
    assert f"State unknown: {statefile.path_for(db_path)} is empty" in text
    assert "No autocall-daemon holds the database: is it running?" in text
    assert "Not heard from" not in text


def test_the_system_page_says_a_dialer_that_stopped_is_stopped(client, app, ana):
    state = statefile.StateFile(services(app).config.db_path)
    state.write({"pid": 4242, "at": time.time() - 5, "status": "stopped", "stopped": True, "calls": 0})
    state.close()
    text = client.get("/ui/system").get_data(as_text=True)
    assert re.search(r"stopped \ds ago \(pid 4242\)", text) and "0 calls" not in text


def test_the_audit_of_a_console_dnc_names_every_id_whole_and_apart(client, db, ana, queue):
    """Found by the console review: 1,000 ids were cut to the first 2,000 characters (the last
    a fragment that read as another id), and one id holding ", " read as two."""
    ids = [f"KH_{i:06d}" for i in range(999)] + ["KH_X, KH_Y"]
    assert client.post("/ui/queue/dnc", data={"csrf": ana, "code": queue, "ids": "\n".join(ids)}).status_code == 303
    [(_, action, _, detail)] = [row for row in audit(db) if row[1] == "queue.dnc"]
    assert json.loads(detail) == ids
