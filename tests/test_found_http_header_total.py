"""Found by attack9: no limit on a request's header lines in all. gevent limits each line
(64 KiB) and their number (100), so one request may carry 6.4 MB of headers, held in memory
until the request completes: 100 such connections, trickling within header_timeout, took
autocall-api from 29 MB to 650 MB (1.3 GB at the default cap of 200). Now the header lines
together must stay under MAX_HEADER_BYTES, else 431 JSON."""

from api.http import MAX_HEADER_BYTES
from tests.api_fixtures import TOKEN
from tests.test_api_http import api, connect, json_error, read_response  # noqa: F401  (fixture)


def test_headers_over_the_total_limit_get_431_json(api):  # noqa: F811
    server = api()
    raw = (
        b"GET /healthz HTTP/1.1\r\nHost: autocall\r\n"
        + b"".join(b"X-%d: " % i + b"a" * 8000 + b"\r\n" for i in range(98))
        + b"\r\n"
    )
    assert len(raw) < 100 * 65536  # each line, and their number, within gevent's own limits
    with connect(server) as sock:
        sock.sendall(raw)
        assert json_error(sock)[0] == 431


def test_ordinary_headers_are_well_within_the_limit(api):  # noqa: F811
    server = api()
    raw = (
        b"GET /healthz HTTP/1.1\r\nHost: autocall\r\nAuthorization: Bearer "
        + b"t" * 2000
        + b"\r\n"
        + b"".join(b"X-Forwarded-%d: 203.0.113.7\r\n" % i for i in range(60))
        + b"\r\n"
    )
    assert len(raw) < MAX_HEADER_BYTES
    with connect(server) as sock:
        sock.sendall(raw)
        assert read_response(sock)[0] == 200


def test_a_refusal_reaches_a_client_still_sending_its_chunked_body(api):  # noqa: F811
    # The server stops reading at the limit; closing then with the rest unread sent a RST,
    # and the client saw "connection reset" instead of the answer.
    server = api(max_body_bytes=2048)
    piece = b"%x\r\n%s\r\n" % (60000, b" " * 60000)
    with connect(server) as sock:
        sock.sendall(
            b"POST /v2/autocall/queue HTTP/1.1\r\nHost: autocall\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for _ in range(40):
                sock.sendall(piece)
        except OSError:
            pass  # the server may stop reading; the answer must still be there
        assert json_error(sock)[0] == 400  # the import's too-large answer (import fail), not a reset
