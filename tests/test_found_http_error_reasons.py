"""Found by the hostile-client review: a 400 the server made itself gave the wrong reason.

gevent reads the HTTP version's digits with int(), so `GET /healthz HTTP/1.x` came back
"Content-Length must be a whole number of bytes", and `HTTP/1.+1` was taken as 1.1; a HEAD with
a Content-Length got the same Content-Length sentence. Each now says what is wrong."""

import pytest

from tests.test_api_http import api, connect, json_error  # noqa: F401  (fixture)


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b"GET /healthz HTTP/1.x\r\n\r\n", "unsupported HTTP version 'HTTP/1.x'; send HTTP/1.1"),
        (b"GET /healthz HTTP/1.+1\r\n\r\n", "unsupported HTTP version 'HTTP/1.+1'; send HTTP/1.1"),
        (b"GET /healthz HTTP/2.0\r\n\r\n", "unsupported HTTP version 'HTTP/2.0'; send HTTP/1.1"),
        (
            b"HEAD /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "a HEAD request has no body, so no Content-Length but 0",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nContent-Length: %s\r\n\r\n" % (b"0" * 5000 + b"5"),
            "Content-Length must be a whole number of bytes",
        ),
    ],
    ids=["version-letter", "version-sign", "version-2", "head-with-length", "length-of-5001-digits"],
)
def test_a_request_gevent_cannot_parse_gets_a_reason_that_names_its_fault(api, raw, reason):  # noqa: F811
    server = api()
    with connect(server) as sock:
        sock.sendall(raw)
        status, answer = json_error(sock)
    assert (status, answer["errors"]) == (400, [{"reason": reason}])
