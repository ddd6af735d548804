"""Found by uireview: while another process held SQLite's write lock, the console's pages,
which only read, answered 503 once a session was a minute old.

Every request of a session last seen over TOUCH_EVERY (60 s) ago first wrote its `seen_at`,
on the writer thread, and that write's DatabaseUnavailable became the page: with the lock
held (a long import, an open transaction in the sqlite3 shell) a supervisor could not watch
the queues, though every read would have answered (WAL readers do not wait for the writer).
The note of the session's last request is now written in the background (one at a time per
session; when it cannot be, the next request tries again), and an expired session whose row
cannot be deleted yet is still refused.
Real `autocall-api`, real SQLite file, the lock held by another process."""

import sqlite3
import time

import requests

from tests.api_fixtures import ApiProcess
from tests.db_faults import write_lock
from tests.ui_fixtures import PASSWORDS, add_user, session_of, wait_for


def age_sessions(db_path, seconds: float):
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE ui_session SET seen_at = seen_at - ?, created_at = created_at - ?", (seconds, seconds))
    conn.close()


def seen_at(db_path) -> float:
    conn = sqlite3.connect(db_path)
    [(at,)] = conn.execute("SELECT seen_at FROM ui_session").fetchall()
    conn.close()
    return at


def test_pages_that_only_read_answer_while_the_write_lock_is_held(tmp_path):
    from api.ui import auth

    api = ApiProcess(tmp_path, api_settings={"lock_timeout": 3.0})
    try:
        assert add_user(api.env, "vu", "viewer", PASSWORDS["vu"]).returncode == 0
        cookies, _ = session_of(api.url + "/ui/", "vu")
        age_sessions(api.db_path, auth.TOUCH_EVERY + 5)
        with write_lock(api.db_path):
            for path in ("", "system", "audit", "live/queues.json"):
                page = requests.get(api.url + "/ui/" + path, cookies=cookies, allow_redirects=False, timeout=30)
                assert page.status_code == 200, (path, page.status_code, page.text[-300:])
                assert page.elapsed.total_seconds() < 1.5, path  # not held up by the write lock's timeout
        wait_for(lambda: time.time() - seen_at(api.db_path) < auth.TOUCH_EVERY, 10)  # noted once the lock went
        age_sessions(api.db_path, auth.IDLE + 1)  # expired: refused, even when its row cannot be deleted yet
        with write_lock(api.db_path):
            page = requests.get(api.url + "/ui/", cookies=cookies, allow_redirects=False, timeout=30)
            assert page.status_code == 303 and page.headers["Location"].startswith("/ui/login")
    finally:
        api.stop()
