"""Found by attack9: a queue code "." or ".." was imported (200) but could never be read back:
every HTTP client and proxy removes such a path segment (RFC 3986 remove_dot_segments), so
GET /v2/autocall/queue/.. became GET /v2/autocall/ (404), and the import's own customers and
attempts were out of reach. Such codes are refused at import, with the reason."""

import pytest
import requests

from tests.api_fixtures import AUTH, seed_import
from tests.test_api_http import api  # noqa: F401  (fixture)


@pytest.mark.parametrize("code", [".", ".."])
def test_a_dot_segment_queue_code_is_refused_at_import(api, code):  # noqa: F811
    server = api()
    body = seed_import()
    body["queue_code"] = code
    r = requests.post(f"{server.url}/v2/autocall/queue", json=body, headers=AUTH, timeout=10)
    assert r.status_code == 400, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["queue_code"]


def test_codes_that_only_contain_dots_still_import_and_read_back(api):  # noqa: F811
    server = api()
    body = seed_import()
    body["queue_code"] = "Q.1..x"
    assert requests.post(f"{server.url}/v2/autocall/queue", json=body, headers=AUTH, timeout=10).status_code == 200
    r = requests.get(f"{server.url}/v2/autocall/queue/Q.1..x", headers=AUTH, timeout=5)
    assert (r.status_code, r.json()["data"]["queue_code"]) == (200, "Q.1..x")
