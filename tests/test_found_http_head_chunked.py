"""Found by the hostile-client review of 2026-12-03: a HEAD of a streamed answer (attempts.csv)
broke its kept-alive connection.

The CSV has no length up front, so gevent frames it chunked, and it ended the chunks with
`0\\r\\n\\r\\n` even for HEAD, whose answer has no body at all. Those five bytes were then read
as the start of the next answer on the connection: curl called it HTTP/0.9, and a proxy that
reuses its upstream connections could pair answers with the wrong requests."""

import requests

from tests.api_fixtures import AUTH, TOKEN, seed_import
from tests.test_api_http import api, connect, read_response  # noqa: F401  (fixture)


def test_a_head_of_the_csv_leaves_the_connection_ready_for_the_next_request(api):  # noqa: F811
    server = api()
    imported = requests.post(f"{server.url}/v2/autocall/queue", json=seed_import(), headers=AUTH, timeout=10)
    assert imported.status_code == 200, imported.text
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    with connect(server) as sock:
        sock.sendall(
            f"HEAD /v2/autocall/queue/Autocall-Q1/attempts.csv HTTP/1.1\r\nHost: autocall\r\n{auth}\r\n".encode()
        )
        status, headers, body, closed = read_response(sock)
        assert (status, body, closed) == (200, b"", False), headers
        assert headers["content-type"].startswith("text/csv")
        sock.sendall(f"GET /v2/autocall/queue/Autocall-Q1 HTTP/1.1\r\nHost: autocall\r\n{auth}\r\n".encode())
        status, _, body, _ = read_response(sock)
        assert status == 200 and body.startswith(b"{"), body[:200]
