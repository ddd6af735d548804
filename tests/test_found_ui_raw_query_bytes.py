"""Found by uireview: a query string holding a raw byte that is not UTF-8 was a 500 with a
traceback in the log, for anyone, on the console and on the API alike.

Werkzeug decodes `request.args` as strict UTF-8, so `GET /ui/lang/en?next=/ui/\\xff` (no
login needed) or `GET /v2/autocall/queue/Q/customers?state=\\xff` (with the token) raised
UnicodeDecodeError out of the view. A raw byte in a URL is the same URL as its %XX escape
(RFC 3986), which Werkzeug reads without complaint, so such bytes are now
percent-encoded before the application reads the query."""

from tests.api_fixtures import AUTH
from tests.test_api_http import api, connect, read_response  # noqa: F401  (fixture)


def get(server, target: bytes, headers: bytes = b"") -> tuple[int, dict, bytes]:
    with connect(server) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: autocall\r\nConnection: close\r\n" + headers + b"\r\n")
        status, head, body, _ = read_response(sock)
    return status, head, body


def test_a_raw_byte_in_a_query_is_read_as_its_escape(api):  # noqa: F811
    server = api()  # the fixture asserts that the log holds no traceback
    status, head, _ = get(server, b"/ui/lang/en?next=/ui/\xff")
    assert status == 303 and head["location"] == "/ui/%FF"  # as ?next=/ui/%FF gives
    token = f"Authorization: {AUTH['Authorization']}\r\n".encode()
    status, head, body = get(server, b"/v2/autocall/queue/Q/customers?state=\xff", token)
    assert status in (400, 404) and head["content-type"] == "application/json", (status, body)
    status, _, body = get(server, "/ui/login?next=/ui/queue?code=Huế".encode())  # raw UTF-8 still reads as UTF-8
    assert status == 200 and 'value="/ui/queue?code=Huế"'.encode() in body
