"""Found by the hostile-client review: a second Transfer-Encoding line hid a request in the body.

The check read only the first Transfer-Encoding line (`chunked`, allowed) while gevent frames
by every line joined (`chunked,identity`, not chunked, so no body): the bytes meant as the body
ran as a second request on the connection, and a hidden POST /v2/autocall/queue/stop did stop
its queue. Any Transfer-Encoding but one `chunked` across all its lines is now 400, and the
connection closed after it."""

import pytest

from tests.api_fixtures import TOKEN
from tests.test_api_http import api, connect, json_error  # noqa: F401  (fixture)

INNER = b"POST /v2/autocall/queue/stop HTTP/1.1\r\nHost: autocall\r\nAuthorization: Bearer %s\r\n" % TOKEN.encode()
INNER += b'Content-Type: application/json\r\nContent-Length: 30\r\n\r\n{"queue_code": "Autocall-Q1"}\n'


@pytest.mark.parametrize(
    "codings",
    [[b"chunked", b"identity"], [b"chunked", b"chunked"], [b"chunked", b"gzip"], [b"chunked", b""]],
    ids=["chunked-identity", "chunked-twice", "chunked-gzip", "chunked-empty"],
)
def test_a_second_transfer_encoding_line_is_refused_not_read_as_a_second_request(api, codings):  # noqa: F811
    server = api()
    lines = b"".join(b"Transfer-Encoding: %s\r\n" % coding for coding in codings)
    with connect(server) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: autocall\r\n" + lines + b"\r\n" + INNER)
        assert json_error(sock)[0] == 400  # one answer, and the connection closed after it
