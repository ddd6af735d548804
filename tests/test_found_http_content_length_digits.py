"""Found by the hostile-client review: a Content-Length was read by Python's int().

int() takes a sign, "_" between digits and whitespace around them that HTTP does not (such as
a vertical tab or a no-break space), so `+3000` or `3_000` framed a body here where a proxy in
front would refuse the request or frame it otherwise. RFC 9110 allows only ASCII digits
(leading zeros included); anything else is now 400, as docs/api.md says of a Content-Length
that is not a number."""

import json

import pytest

from tests.test_api_http import api, connect, import_request, json_error, read_response, seed_body  # noqa: F401

BODY = seed_body(3000)


def request(length: bytes) -> bytes:
    return import_request(BODY, "Content-Length: LENGTH").replace(b"LENGTH", length)


@pytest.mark.parametrize(
    "length",
    [b"+3000", b"3_000", b"3000\x0b", b"\xa03000", "٣٠٠٠".encode(), b"3000 3000"],
    ids=["plus", "underscore", "vertical-tab", "no-break-space", "arabic-indic", "two-numbers"],
)
def test_a_content_length_of_anything_but_ascii_digits_is_refused(api, length):  # noqa: F811
    server = api()
    with connect(server) as sock:
        sock.sendall(request(length))
        status, answer = json_error(sock)
    assert (status, answer["errors"]) == (400, [{"reason": "Content-Length must be a whole number of bytes"}])


@pytest.mark.parametrize("length", [b"3000", b"003000", b" \t3000\t "], ids=["plain", "leading-zeros", "spaces-around"])
def test_ascii_digits_with_leading_zeros_or_spaces_around_still_frame_the_body(api, length):  # noqa: F811
    server = api()
    with connect(server) as sock:
        sock.sendall(request(length))
        status, _, answer, _ = read_response(sock)
    assert (status, json.loads(answer)["data"]["success"]) == (200, ["TEL4VN_Test"])
