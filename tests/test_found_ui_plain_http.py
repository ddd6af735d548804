"""Found by uireview: a console opened over plain HTTP on the host's name (the careless
`http://pbx-host:8080/ui/` that docs/ui.md warns against) answered every login with "the
form has expired, reload the page", which no reload could ever fix.

The cookies are `Secure`, so a browser keeps none over plain HTTP except to localhost: the
login form's CSRF cookie never came back, and the double-submit check answered 400 "Biểu mẫu
đã hết hạn hoặc không hợp lệ; vui lòng tải lại trang.", the same sentence, forever. Now the
login page says, before anything is typed, that the console must be opened over HTTPS
(`window.isSecureContext`, in the page's script), and a login that arrives with no login
cookie at all is answered with that reason. Real Chromium, with `pbx.test` resolved to the
loopback address so that it is not "localhost" to the browser, against a real autocall-api."""

import pytest

from tests.api_fixtures import ApiProcess, rows
from tests.ui_fixtures import CHROMEDRIVER, CHROMIUM, PASSWORDS, add_user, wait_for

HTTPS_NEEDED = "HTTPS"


@pytest.fixture
def chromium_at_pbx_test():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=vi"):
        options.add_argument(arg)
    options.add_argument("--host-resolver-rules=MAP pbx.test 127.0.0.1")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_a_console_opened_over_plain_http_says_it_needs_https(tmp_path, chromium_at_pbx_test):
    driver = chromium_at_pbx_test
    api = ApiProcess(tmp_path)
    try:
        assert add_user(api.env, "ana", "operator", PASSWORDS["ana"]).returncode == 0
        driver.get(f"http://pbx.test:{api.port}/ui/login")
        warning = driver.find_element("id", "insecure")
        assert warning.is_displayed() and HTTPS_NEEDED in warning.text
        driver.find_element("id", "username").send_keys("ana")
        driver.find_element("id", "password").send_keys(PASSWORDS["ana"])
        driver.find_element("css selector", "form.login button[type=submit]").click()
        error = wait_for(lambda: driver.find_elements("id", "login-error"), 10)[0]
        assert HTTPS_NEEDED in error.text and "hết hạn" not in error.text
        # Over loopback (a secure context to the browser) there is no warning, and the login works.
        driver.get(f"http://127.0.0.1:{api.port}/ui/login")
        assert not driver.find_element("id", "insecure").is_displayed()
    finally:
        api.stop()


def test_a_login_without_the_login_cookie_says_why_and_opens_nothing(client, db):
    from tests.test_ui import add_account, csrf_of

    add_account(db, "ana", "operator")
    token = csrf_of(client.get("/ui/login"))
    client.delete_cookie("autocall_ui_login", path="/ui/")
    answer = client.post("/ui/login", data={"csrf": token, "username": "ana", "password": "good-password-1"})
    assert answer.status_code == 400 and HTTPS_NEEDED in answer.get_data(as_text=True)
    assert rows(db, "SELECT COUNT(*) FROM ui_session") == [(0,)]
