"""The web console's test rig: a real headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium) against a real `autocall-api` process, a real
`autocall-daemon` process and the simulator, on one SQLite file; accounts made with the real
`autocall users add`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.api_fixtures import AUTH, REPO, ApiProcess
from tests.daemon_fixtures import DaemonProcess, start_simulator

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORDS = {"ana": "ana-password-0123", "vu": "vu-password-0123"}  # ana operates, vu views


def add_user(env: dict, name: str, role: str, password: str) -> subprocess.CompletedProcess:
    """`autocall users add NAME --role ROLE`, the password on standard input."""
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", "users", "add", name, "--role", role],
        input=password + "\n",
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


class Console:
    """The three processes of one test, and what the test needs of them."""

    def __init__(self, tmp_path: Path, scenario: dict, time_scale: float):
        self.tmp_path = tmp_path
        self.sim = start_simulator({"gateways": ["carrier"], **scenario}, time_scale)
        self.daemon = DaemonProcess(tmp_path, self.sim)
        # One config file for both, as the systemd units have: the API shows the dialer's window.
        self.api = ApiProcess(tmp_path, AUTOCALL_CONFIG=str(self.daemon.config))
        self.url = self.api.url + "/ui/"
        for name, role in (("ana", "operator"), ("vu", "viewer")):
            done = add_user(self.api.env, name, role, PASSWORDS[name])
            assert done.returncode == 0, done.stderr

    def post(self, path: str, body: dict) -> requests.Response:
        return requests.post(f"{self.api.url}/v2/autocall{path}", json=body, headers=AUTH, timeout=30)

    def originates(self) -> list[float]:
        """The wall times of every originate the simulator has seen (ended calls and live ones)."""
        times = [r["wall_time"] for r in self.sim.records if r["event"] == "originate"]
        return times + [self.sim.clock.to_wall(channel.created) for channel in list(self.sim.channels.values())]

    def stop(self):
        self.daemon.stop_quietly()
        self.api.stop()
        self.sim.stop()


@pytest.fixture
def console(tmp_path):
    """console(scenario, time_scale) -> Console; everything stopped after the test."""
    made = []

    def start(scenario: dict, time_scale: float = 0.1) -> Console:
        made.append(Console(tmp_path, scenario, time_scale))
        return made[-1]

    yield start
    for c in made:
        c.stop()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for a test module (it starts in about a second)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: apt-get install chromium chromium-driver (make .venv/.system-packages)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1360,1000",
        "--lang=vi",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def screenshots(tmp_path):
    """shoot(driver, name): a PNG of the page in tmp_path/screenshots (the test's artifacts;
    AUTOCALL_UI_SCREENSHOTS=DIR copies them there too, e.g. for docs/)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    keep = os.environ.get("AUTOCALL_UI_SCREENSHOTS")

    def shoot(driver, name: str) -> Path:
        path = folder / f"{name}.png"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1360, min(max(height + 40, 600), 1400))  # a tall screen, not a whole long table
        assert driver.save_screenshot(str(path))
        if keep:
            shutil.copy(path, Path(keep) / path.name)
        return path

    return shoot


def login(driver, base_url: str, name: str):
    driver.get(base_url + "login")
    driver.find_element("id", "username").send_keys(name)
    driver.find_element("id", "password").send_keys(PASSWORDS[name])
    driver.find_element("css selector", "form.login button[type=submit]").click()
    wait_for(lambda: driver.find_elements("css selector", "form[action$='/ui/logout']"), 10)


def logout(driver):
    driver.find_element("css selector", "form[action$='/ui/logout'] button").click()
    wait_for(lambda: driver.find_elements("id", "username"), 10)


def wait_for(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def session_of(base: str, name: str) -> tuple[dict, str]:
    """A console session over plain HTTP: (its cookies, its CSRF token)."""
    page = requests.get(base + "login", timeout=10)
    login_csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    done = requests.post(
        base + "login",
        data={"csrf": login_csrf, "username": name, "password": PASSWORDS[name]},
        cookies=page.cookies.get_dict(),
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code == 303, done.text
    cookies = {"autocall_ui": done.cookies["autocall_ui"]}
    queues = requests.get(base, cookies=cookies, timeout=10)
    return cookies, re.search(r'name="csrf" value="([^"]+)"', queues.text).group(1)
