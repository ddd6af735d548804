"""Found by attack9: the whole body was read into memory before anyone checked the token.

"Bodies read whole under the limit" ran before the application's bearer-token check, so any
client that could connect made autocall-api hold up to max_body_bytes (64 MB) per connection:
10 connections without a token, each sending 49 MB and never the last byte, took it from 31 MB
to 510 MB RSS (about 13 GB at the default cap of 200). `Expect: 100-continue` even invited the
body. A request with a body and no valid token is now answered 401 before its body is read."""

import json

from tests.api_fixtures import AUTH
from tests.test_api_http import api, connect, import_request, json_error, read_response, seed_body  # noqa: F401


def test_a_body_without_a_token_is_refused_before_it_is_read(api):  # noqa: F811
    server = api()
    with connect(server) as sock:
        sock.sendall(
            b"POST /v2/autocall/queue HTTP/1.1\r\nHost: autocall\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n"
        )
        status, answer = json_error(sock)  # no "100 Continue": the answer, then the close
    assert (status, answer["content"]) == (401, "unauthorized")


def test_a_wrong_token_with_a_chunked_body_is_refused_too(api):  # noqa: F811
    server = api()
    with connect(server) as sock:
        sock.sendall(
            b"POST /v2/autocall/queue HTTP/1.1\r\nHost: autocall\r\nAuthorization: Bearer not-the-token-at-all\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        assert json_error(sock)[0] == 401


def test_with_the_token_the_body_is_read_as_before(api):  # noqa: F811
    server = api()
    body = seed_body(3000)
    with connect(server) as sock:
        sock.sendall(import_request(body, f"Content-Length: {len(body)}"))
        status, _, answer, _ = read_response(sock)
    assert (status, json.loads(answer)["data"]["success"]) == (200, ["TEL4VN_Test"])
    assert AUTH  # import_request carries it
