"""Found by attack9: requests framed two ways were served by one of them (request smuggling).

With both Content-Length and Transfer-Encoding: chunked, or two different Content-Lengths, the
server picked one framing and served the rest of the bytes as a second request. A proxy or load
balancer in front that picks the other framing (RFC 9112 §6.3 says such a message must be
refused or its connection closed) would pass a request it never saw — with another client's
connection and whatever it authorised. Both are now refused with 400 JSON and the connection closed,
and so is chunked in an HTTP/1.0 request, which has no such framing (a review found it served,
2026-12-03)."""

import pytest

from tests.test_api_http import api, connect, json_error  # noqa: F401  (fixture)

INNER = b"GET /v2/autocall/queue/smuggled HTTP/1.1\r\nHost: autocall\r\n\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /healthz HTTP/1.1\r\nHost: autocall\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        % (5 + len(INNER))
        + INNER,
        b"POST /healthz HTTP/1.1\r\nHost: autocall\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(INNER)
        + INNER,
        # HTTP/1.0 has no chunked framing: a 1.0 proxy in front reads the body to the connection's end
        b"POST /healthz HTTP/1.0\r\nHost: autocall\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + INNER,
    ],
    ids=["content-length-and-chunked", "two-content-lengths", "chunked-in-http-1.0"],
)
def test_a_request_framed_two_ways_is_refused_not_split_in_two(api, raw):  # noqa: F811
    server = api()
    with connect(server) as sock:
        sock.sendall(raw)
        assert json_error(sock)[0] == 400  # one answer, and the connection closed after it
