"""The web console in a real headless Chromium, against real autocall-api and autocall-daemon
processes and the FreeSWITCH simulator: an operator logs in, watches a queue's numbers move
while the daemon dials, stops it (no originate follows), adds DNC ids, listens to a rendered
call; a viewer cannot act; customer text is shown, never run. Screenshots of every page are
saved as the test's artifacts (tests/ui_fixtures.py)."""

import time
import wave

import pytest
import requests

from api.ui import listen
from daemon import ivr
from tests.api_fixtures import REPO, customer
from tests.daemon_fixtures import menu_offset, query
from tests.ui_fixtures import login, logout, session_of, wait_for

pytestmark = pytest.mark.timeout(120)

# Calls of about four simulated seconds, ten times faster than real time: 300 customers three at
# a time last long enough to watch, and each call ends in well under a second. Every fourth
# customer is busy, every fourth listens to the menu and presses 9: the charts have something
# to show.
SCENARIO = {
    "default": {"outcome": "answer", "answer_after": 1, "hangup_after": 3},
    "numbers": [{"number": f"0901{i:06}", "outcome": "busy"} for i in range(1, 300, 4)]
    + [
        {"number": f"0901{i:06}", "hangup_after": "never", "keys": [[menu_offset() + 2, "9"]]} for i in range(2, 300, 4)
    ],
}
XSS_ID = '<img src=x onerror="window.pwned=1">'
XSS_NOTE = "<script>window.pwned=2</script>"


# Every visible text element's contrast with the background it sits on (WCAG's formula).
CONTRASTS = """
const lum = (rgb) => {
  const [r, g, b] = rgb.map((c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const rgba = (text) => text.match(/[\\d.]+/g).map(Number);
const background = (el) => {
  for (; el; el = el.parentElement) {
    const c = rgba(getComputedStyle(el).backgroundColor);
    if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
  }
  return [255, 255, 255];
};
const worst = [];
for (const el of document.querySelectorAll('body *')) {
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !el.offsetParent || el.closest('.skip, .live-error[hidden]')) continue;
  const fg = lum(rgba(getComputedStyle(el).color).slice(0, 3)), bg = lum(background(el));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  if (ratio < 4.5) worst.push(el.tagName + ' ' + el.textContent.trim().slice(0, 30) + ' ' + ratio.toFixed(2));
}
return worst;
"""
UNLABELLED = """
return [...document.querySelectorAll('input:not([type=hidden]), select, textarea, audio, button')].filter((el) =>
  !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')
  && !el.textContent.trim()).map((el) => el.outerHTML);
"""


def assert_accessible_basics(driver):
    """Every control has a label, every text reads at 4.5:1 at least, and the keyboard's first
    stop is the link that skips to the content."""
    from selenium.webdriver.common.keys import Keys

    assert driver.execute_script(UNLABELLED) == []
    assert driver.execute_script(CONTRASTS) == []
    driver.find_element("tag name", "body").send_keys(Keys.TAB)
    first = driver.switch_to.active_element
    assert first.get_attribute("class") == "skip" and first.is_displayed()
    first.send_keys(Keys.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") == "main"


def cells(driver, code: str) -> dict:
    """The live cells of queue `code`'s row, as the page shows them now."""
    for row in driver.find_elements("css selector", "tr[data-queue]"):
        if row.get_attribute("data-queue") == code:
            return {el.get_attribute("data-field"): el.text for el in row.find_elements("css selector", "[data-field]")}
    raise AssertionError(f"no row for queue {code!r}")


def test_an_operator_watches_a_queue_dial_stops_it_from_the_browser_and_no_originate_follows(
    console, browser, screenshots
):
    c = console(SCENARIO)
    people = [customer(f"KH{i:03}", f"0901{i:06}") for i in range(300)]
    people.append(customer(XSS_ID, "0912345678", note=XSS_NOTE))
    imported = c.post("/queue", {"queue_code": "Q1", "template": "IVR-1", "concurrent_call": 3, "customers": people})
    assert imported.json()["data"]["fail"] == []
    browser.get(c.url)
    assert browser.current_url.startswith(c.url + "login?next=")
    screenshots(browser, "login")
    login(browser, c.url, "ana")
    before = cells(browser, "Q1")
    assert before["success"] == "0" and before["state_text"] == "đang chạy"

    c.daemon.start()
    # The numbers change on the page by themselves (the page polls), with no reload.
    browser.execute_script("document.body.dataset.marker = 'same page'")
    wait_for(lambda: int(cells(browser, "Q1")["success"]) >= 3, 30)
    assert browser.execute_script("return document.body.dataset.marker") == "same page"
    live = cells(browser, "Q1")
    finished = int(live["success"]) + int(live["failed"])
    assert live["progress_text"] == f"{finished}/301 ({100 * finished // 301}%)"
    progress = browser.find_element("css selector", "tr[data-queue] progress")
    assert progress.get_attribute("value") == str(finished) and progress.get_attribute("max") == "301"
    screenshots(browser, "queues")

    browser.find_element("link text", "Q1").click()
    wait_for(lambda: browser.find_elements("id", "stop-queue"), 10)
    browser.find_element("id", "stop-queue").click()
    wait_for(lambda: "done=stopped" in browser.current_url, 10)
    stopped_wall = time.time()  # the page after the stop came back: the stop is committed
    assert "Đã dừng hàng đợi Q1." in browser.find_element("css selector", "p.done").text
    time.sleep(1.5)
    # No claim after the stop committed, and only claims committed before it (one batch of at
    # most concurrent_call) may still reach the switch.
    assert query(c.daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE started_at > ?", stopped_wall) == [(0,)]
    assert len([t for t in c.originates() if t > stopped_wall]) <= 3, "originates after the stop"
    made = len(c.originates())
    time.sleep(1.0)
    assert len(c.originates()) == made
    assert query(c.daemon.db_path, "SELECT state FROM queue WHERE code = 'Q1'") == [("stopped",)]
    pending = [i for (i,) in query(c.daemon.db_path, "SELECT ext_id FROM customer WHERE state = 'pending'")]
    assert len(pending) > 100

    # DNC two waiting customers from the same page.
    browser.find_element("id", "dnc-ids").send_keys(f"{pending[0]}\n{pending[1]}\n")
    browser.find_element("id", "add-dnc").click()
    wait_for(lambda: "done=dnc" in browser.current_url, 10)
    states = dict(query(c.daemon.db_path, "SELECT ext_id, state FROM customer WHERE ext_id IN (?, ?)", *pending[:2]))
    assert states == {pending[0]: "dnc", pending[1]: "dnc"}
    assert browser.find_element("css selector", "tr[data-queue] [data-field=dnc]").text == "2"
    assert browser.find_elements("id", "stop-queue") == [] and browser.find_elements("id", "start-queue")
    # The calls in progress at the stop finish normally; then the charts have every kind of end.
    wait_for(lambda: query(c.daemon.db_path, "SELECT COUNT(*) FROM customer WHERE result = 'promise_to_pay'")[0][0], 20)
    wait_for(lambda: query(c.daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state != 'done'") == [(0,)], 20)
    browser.refresh()
    charts = browser.find_element("css selector", ".charts").text
    assert "NORMAL_CLEARING" in charts and "USER_BUSY" in charts and "promise_to_pay" in charts
    screenshots(browser, "queue")
    assert_accessible_basics(browser)

    # Customer text is shown as text: the id and the field are on the page, nothing ran.
    search = browser.find_element("id", "search")
    search.send_keys("<img")
    search.submit()
    wait_for(lambda: "q=%3Cimg" in browser.current_url, 10)
    browser.find_element("link text", XSS_ID).click()
    wait_for(lambda: browser.find_elements("id", "customer-id"), 10)
    assert browser.find_element("id", "customer-id").text == XSS_ID
    assert XSS_NOTE in browser.find_element("css selector", "table.fields").text
    assert browser.execute_script("return window.pwned === undefined && document.images.length === 0")
    screenshots(browser, "customer")

    # The audit log has the stop and the DNC, by ana.
    browser.find_element("link text", "Nhật ký thao tác").click()
    audit = browser.find_element("css selector", "table.audit").text
    assert "ana queue.stop Q1" in audit and f'ana queue.dnc Q1 ["{pending[0]}", "{pending[1]}"]' in audit
    screenshots(browser, "audit")
    browser.find_element("link text", "Hệ thống").click()
    assert "calls in progress" in browser.find_element("id", "dialer-state").text
    screenshots(browser, "system")
    logout(browser)


def expected_seconds(fields: dict) -> float:
    """The no-key path of IVR-1 for `fields`, timed from the sound files themselves."""
    loader = ivr.TemplateLoader(REPO / "ivr_templates", REPO / "ivr_templates" / "sounds")
    total = 0.0
    for part in listen.no_key_path(loader.get("IVR-1").render(fields)):
        if isinstance(part, listen.Silence):
            total += part.ms / 1000
        else:
            with wave.open(part) as w:
                total += w.getnframes() / w.getframerate()
    return total


def test_the_listen_button_plays_the_rendered_call_and_a_viewer_cannot_act(console, browser, screenshots):
    c = console(SCENARIO)
    amount = {"upcoming_amount": 12345000, "contract_number": "HD777", "upcoming_due_date": "2026-12-31"}
    c.post("/queue", {"queue_code": "Q2", "template": "IVR-1", "customers": [customer("KH9", **amount)]})
    login(browser, c.url, "vu")
    browser.find_element("link text", "Q2").click()
    wait_for(lambda: browser.find_elements("css selector", "table.customers"), 10)
    assert browser.find_elements("id", "stop-queue") == [] and browser.find_elements("id", "dnc-ids") == []
    browser.find_element("link text", "KH9").click()
    wait_for(lambda: browser.find_elements("id", "customer-id"), 10)
    assert "12.345.000 ₫" in browser.find_element("css selector", "table.fields").text
    assert "31/12/2026" in browser.find_element("css selector", "table.fields").text
    browser.find_element("link text", "Nghe cuộc gọi của khách hàng này").click()
    wait_for(lambda: browser.find_elements("css selector", "audio[data-template='IVR-1']"), 10)
    # Metadata loaded, then played for a moment: the browser decodes the file the server stitched.
    duration, played = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const audio = document.querySelector("audio[data-template='IVR-1']");
        audio.addEventListener('error', () => done('error ' + (audio.error && audio.error.code)));
        const report = () => audio.play().then(
            () => setTimeout(() => { audio.pause(); done([audio.duration, audio.currentTime]); }, 300),
            e => done(String(e)));
        if (audio.readyState >= 1) report(); else audio.addEventListener('loadedmetadata', report, {once: true});"""
    )
    assert played > 0
    assert duration == pytest.approx(expected_seconds(amount), abs=0.05)
    assert "mười hai triệu ba trăm bốn mươi lăm nghìn đồng" in browser.find_element("css selector", ".transcript").text
    screenshots(browser, "templates")
    assert_accessible_basics(browser)
    # English on request, the same page and the same Vietnamese formats.
    browser.find_element("link text", "English").click()
    wait_for(lambda: browser.find_element("tag name", "html").get_attribute("lang") == "en", 10)
    assert browser.find_element("css selector", "audio[data-template='IVR-1']").get_attribute("src").endswith("id=KH9")
    assert "Listen to the call" in browser.page_source and "12.345.000 ₫" in browser.page_source
    browser.find_element("link text", "Tiếng Việt").click()
    wait_for(lambda: browser.find_element("tag name", "html").get_attribute("lang") == "vi", 10)

    # Over plain HTTP to the same server: a viewer's stop, with its own valid session and CSRF
    # token, is refused and changes nothing.
    cookies, csrf = session_of(c.url, "vu")
    refused = requests.post(c.url + "queue/stop", data={"csrf": csrf, "code": "Q2"}, cookies=cookies, timeout=10)
    assert refused.status_code == 403
    # An operator's stop without the session's CSRF token (what a forged form would send) too.
    cookies, csrf = session_of(c.url, "ana")
    for forged in ({}, {"csrf": csrf[::-1]}):
        refused = requests.post(c.url + "queue/stop", data={"code": "Q2", **forged}, cookies=cookies, timeout=10)
        assert refused.status_code == 400
    assert query(c.api.db_path, "SELECT state FROM queue WHERE code = 'Q2'") == [("running",)]
    assert query(c.api.db_path, "SELECT action FROM ui_audit WHERE action LIKE 'queue.%'") == []
    logout(browser)
