"""Found by uireview, in its own fix of test_found_ui_login_limit_parallel.py (never on main):
logins refused because the database could not answer counted as failed guesses.

Once attempts were counted before their password is checked (so that attempts sent at once
are limited), an attempt that ended in the 503 page ("the database is busy …") stayed counted:
five tries with the right password while another process held the write lock, and the sixth
was refused with 429 for the rest of the 15-minute window. A database that cannot answer
judges no password: such an attempt is not counted. Real `autocall-api`, real SQLite file,
the lock held by another process (tests/db_faults.py)."""

import re

import requests

from tests.api_fixtures import ApiProcess
from tests.db_faults import write_lock
from tests.ui_fixtures import PASSWORDS, add_user


def test_logins_refused_by_a_busy_database_do_not_count_as_failures(tmp_path):
    from api.ui import auth

    api = ApiProcess(tmp_path, api_settings={"lock_timeout": 0.3})
    try:
        assert add_user(api.env, "ana", "operator", PASSWORDS["ana"]).returncode == 0
        page = requests.get(api.url + "/ui/login", timeout=10)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)

        def log_in():
            return requests.post(
                api.url + "/ui/login",
                data={"csrf": csrf, "username": "ana", "password": PASSWORDS["ana"]},
                cookies=page.cookies.get_dict(),
                allow_redirects=False,
                timeout=30,
            )

        with write_lock(api.db_path):
            for _ in range(auth.LIMIT_FAILURES + 1):
                refused = log_in()
                assert refused.status_code == 503 and "the database is busy" in refused.text
        assert log_in().status_code == 303
    finally:
        api.stop()
