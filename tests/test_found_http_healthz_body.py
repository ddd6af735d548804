"""Found by the hostile-client review: /healthz read any body without a token.

The HTTP layer refuses a body without a valid token before reading it, except for /healthz,
whatever its method: `POST /healthz` with `Content-Length: 60000000` from 16 connections took
autocall-api to 1.2 GB RSS while it read and held each body. Only a bodiless GET or HEAD of
/healthz needs no token now; a body needs one there too, and without it is answered 401
before it is read."""

import pytest

from tests.test_api_http import api, connect, json_error  # noqa: F401  (fixture)


@pytest.mark.parametrize(
    "head",
    [
        b"POST /healthz HTTP/1.1\r\nHost: autocall\r\nContent-Length: 60000000\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: autocall\r\nContent-Length: 60000000\r\n\r\n",
        b"POST /healthz HTTP/1.1\r\nHost: autocall\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ids=["post-content-length", "get-content-length", "post-chunked"],
)
def test_a_body_to_healthz_without_a_token_is_refused_before_it_is_read(api, head):  # noqa: F811
    server = api(body_timeout=1.0)  # had it waited for the body, the answer would be 408
    with connect(server) as sock:
        sock.sendall(head)  # the headers only: the answer comes without a byte of body
        status, answer = json_error(sock)
    assert (status, answer["content"]) == (401, "unauthorized")


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_a_bodiless_healthz_still_needs_no_token(api, method):  # noqa: F811
    server = api()
    with connect(server) as sock:
        sock.sendall(method + b" /healthz HTTP/1.1\r\nHost: autocall\r\nConnection: close\r\n\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 200 ")
