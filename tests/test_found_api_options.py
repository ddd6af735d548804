"""Found by the hostile-client review: OPTIONS answered an empty text/html 200.

Flask answers OPTIONS for every route itself, with an empty body that is not JSON, where
docs/api.md says every response body is JSON with `code` and `content`. The API does no
CORS and no client of it sends OPTIONS, so OPTIONS is now a wrong method like any other:
405 JSON, and that 405, like every 405, lists the methods the path takes in `Allow`."""

import pytest

from tests.api_fixtures import AUTH


@pytest.mark.parametrize(
    "path,headers,allow",
    [
        ("/v2/autocall/queue/stop", AUTH, {"GET", "HEAD", "POST"}),  # "stop" may be a queue code too
        ("/healthz", {}, {"GET", "HEAD"}),
        ("/ui/", {}, {"GET", "HEAD"}),
    ],
    ids=["command", "healthz", "console"],
)
def test_options_is_a_json_405_that_lists_the_allowed_methods(client, path, headers, allow):
    r = client.open(path, method="OPTIONS", headers=headers)
    assert (r.status_code, r.get_json()) == (405, {"code": 405, "content": "method not allowed"})
    assert set(r.headers["Allow"].split(", ")) == allow


def test_another_wrong_method_lists_the_allowed_ones_too(client):
    r = client.delete("/v2/autocall/queue", headers=AUTH)
    assert (r.status_code, r.headers["Allow"]) == (405, "POST")
