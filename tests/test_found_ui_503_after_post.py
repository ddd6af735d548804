"""Found by uireview: the 503 page that answers an operator's Stop (or DNC, or logout) while
the database cannot take the write reloaded itself into a raw JSON 405.

The page says why and reloads itself every 10 seconds (docs/ui.md), which is right for a page
that was read; but a browser reloads a POST's answer with a GET of the same URL, and
`GET /ui/queue/stop` is the API's JSON "method not allowed". The reload is now only on the
answer to a GET; a form's answer says why and links back. Real `autocall-api`, real SQLite
file, the write lock held by another process."""

import re

import requests

from tests.api_fixtures import AUTH, ApiProcess, seed_import
from tests.db_faults import write_lock
from tests.ui_fixtures import PASSWORDS, add_user, session_of


def test_only_a_page_that_was_read_reloads_itself_when_the_database_is_busy(tmp_path):
    api = ApiProcess(tmp_path, api_settings={"lock_timeout": 0.3})
    try:
        assert add_user(api.env, "ana", "operator", PASSWORDS["ana"]).returncode == 0
        assert requests.post(api.url + "/v2/autocall/queue", json=seed_import(), headers=AUTH, timeout=10).ok
        base = api.url + "/ui/"
        cookies, csrf = session_of(base, "ana")
        with write_lock(api.db_path):
            stop = requests.post(
                base + "queue/stop", data={"csrf": csrf, "code": "Autocall-Q1"}, cookies=cookies, timeout=30
            )
            assert stop.status_code == 503 and "the database is busy" in stop.text
            assert 'http-equiv="refresh"' not in stop.text
            assert re.search(r'href="/ui/queue\?code=Autocall-Q1"', stop.text)  # back to the queue it was for
    finally:
        api.stop()
