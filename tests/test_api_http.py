"""The HTTP layer (api/http.py) over real sockets to a real `autocall-api`: deadlines for slow
clients, the connection cap, bodies read whole under the limit, JSON for every error the
server makes itself, TCP_NODELAY, and queue codes that hold a "/"."""

import json
import socket
import time
from urllib.parse import quote

import gevent
import pytest
import requests

from api.app import create_app
from api.http import ApiHandler, ApiServer
from api.http_errors import import_too_large
from tests.api_fixtures import AUTH, TOKEN, ApiProcess, make_config, seed_import

HALF_SENT = b"POST /v2/autocall/queue HTTP/1.1\r\nHost: autocall\r\nContent-Type: application/json\r\n"


def connect(server, timeout=10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock) -> tuple[int, dict, bytes, bool]:
    """(status, headers, body, closed after it) of one response read off `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    closed = headers.get("connection", "").lower() == "close"
    return status, headers, body, closed


def json_error(sock) -> tuple[int, dict]:
    """An error response: JSON with code == the HTTP status, and the connection closed after it."""
    status, headers, body, closed = read_response(sock)
    assert headers["content-type"] == "application/json", (status, headers, body)
    answer = json.loads(body)
    assert answer["code"] == status and isinstance(answer["content"], str)
    assert closed and sock.recv(1) == b""
    return status, answer


def healthz_status(server, timeout=5.0) -> int:
    with connect(server, timeout) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: autocall\r\n\r\n")
        return read_response(sock)[0]


@pytest.fixture
def api(tmp_path):
    servers = []

    def start(**api_settings):
        open_files = api_settings.pop("open_files", None)
        servers.append(ApiProcess(tmp_path, api_settings=api_settings, open_files=open_files))
        return servers[-1]

    yield start
    for server in servers:
        log = server.stop()
        assert "Traceback" not in log, log


# --- slow clients ---


def test_a_client_that_never_finishes_its_headers_gets_408_and_is_closed(api):
    server = api(header_timeout=0.5)
    with connect(server) as sock:
        sock.sendall(HALF_SENT)
        assert json_error(sock) == (
            408,
            {"code": 408, "content": "request timeout", "errors": [{"reason": "the request did not arrive in time"}]},
        )


def test_a_client_that_connects_and_sends_nothing_gets_408(api):
    server = api(header_timeout=0.5)
    with connect(server) as sock:
        assert json_error(sock)[0] == 408


def test_a_body_that_stops_arriving_gets_408(api):
    server = api(body_timeout=0.5)
    with connect(server) as sock:
        sock.sendall(
            HALF_SENT + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n".encode() + b'{"queue_code": '
        )
        assert json_error(sock)[0] == 408


def test_an_idle_kept_alive_connection_is_closed_after_keepalive_timeout(api):
    server = api(keepalive_timeout=0.5)
    with connect(server) as sock:
        for _ in range(2):  # kept alive between requests that follow each other
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: autocall\r\n\r\n")
            assert read_response(sock)[:1] == (200,)
        assert sock.recv(1) == b""  # then closed once idle, without an answer


def test_300_half_sent_requests_with_256_files_are_cut_off_and_healthz_keeps_answering(api):
    # The case: 300 slow clients against a process that may open 256 files.
    server = api(header_timeout=4.0, max_connections=100, open_files=256)
    clients = []
    try:
        for _ in range(300):
            sock = connect(server)
            sock.sendall(HALF_SENT)
            clients.append(sock)
        assert healthz_status(server) == 503  # over the cap: told so at once, not left waiting
        answers = [json_error(sock)[0] for sock in clients]
        assert answers.count(503) >= 200 and answers.count(408) >= 90  # the slow ones cut off
        assert set(answers) == {408, 503}
    finally:
        for sock in clients:
            sock.close()
    assert healthz_status(server) == 200


def test_over_the_connection_cap_a_client_gets_503_json_with_retry_after(api):
    server = api(max_connections=3, header_timeout=30.0)
    held = [connect(server) for _ in range(3)]
    try:
        for sock in held:
            sock.sendall(HALF_SENT)
        with connect(server) as sock:  # accepted after the held ones: a listen queue is FIFO
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: autocall\r\n\r\n")
            status, headers, body, closed = read_response(sock)
        assert (status, json.loads(body), headers["retry-after"], closed) == (
            503,
            {"code": 503, "content": "server busy", "errors": [{"reason": "too many connections; try again"}]},
            "1",
            True,
        )
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: healthz_status(server) == 200)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        gevent.sleep(0.05)


def test_a_client_that_stops_reading_the_response_is_dropped(tmp_path):
    def endless(environ, start_response):  # far more than the socket buffers hold
        start_response("200 OK", [("Content-Type", "text/csv")])
        return (b"x" * 65536 for _ in range(4096))

    config = make_config(tmp_path, body_timeout=0.5)
    server = ApiServer(("127.0.0.1", 0), endless, config.api, log=None)
    server.start()
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.server_port))
            sock.sendall(b"GET /v2/autocall/queue/Q/attempts.csv HTTP/1.1\r\nHost: autocall\r\n\r\n")
            wait_for(lambda: server.active == 1)
            wait_for(lambda: server.active == 0)  # never read from: dropped after body_timeout
    finally:
        server.stop()


# --- bodies and malformed requests: JSON answers, never a reset or plain text ---


def chunked(body: bytes, size=500) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def import_request(body: bytes, *headers: str) -> bytes:
    head = [
        "POST /v2/autocall/queue HTTP/1.1",
        "Host: autocall",
        f"Authorization: Bearer {TOKEN}",
        "Content-Type: application/json",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def seed_body(size: int) -> bytes:
    """The seed's import, padded with spaces to `size` bytes: valid JSON of exactly that length."""
    text = json.dumps(seed_import()).encode()
    return text + b" " * (size - len(text))


def test_a_chunked_body_over_the_limit_is_refused_not_cut(api):
    server = api(max_body_bytes=2048)
    with connect(server) as sock:  # the import answers in the seed's shape (DESIGN §2)
        sock.sendall(import_request(chunked(seed_body(4000)), "Transfer-Encoding: chunked"))
        assert json_error(sock) == (400, import_too_large(2048))
    with connect(server) as sock:  # every other path: 413
        sock.sendall(
            import_request(chunked(seed_body(4000)), "Transfer-Encoding: chunked").replace(
                b"POST /v2/autocall/queue ", b"POST /v2/autocall/queue/dnc "
            )
        )
        assert json_error(sock)[:1] == (413,)


def test_json_up_to_the_limit_followed_by_garbage_is_refused(api):
    # Before, the body was cut at the limit and the valid JSON in front was imported.
    server = api(max_body_bytes=2048)
    with connect(server) as sock:
        sock.sendall(import_request(chunked(seed_body(2048) + b"garbage" * 100), "Transfer-Encoding: chunked"))
        assert json_error(sock) == (400, import_too_large(2048))
    assert requests.get(f"{server.url}/v2/autocall/queue/Autocall-Q1", headers=AUTH, timeout=5).status_code == 404


def test_a_chunked_body_within_the_limit_imports(api):
    server = api(max_body_bytes=4096)
    with connect(server) as sock:
        sock.sendall(import_request(chunked(seed_body(3000)), "Transfer-Encoding: chunked"))
        status, _, body, _ = read_response(sock)
    assert (status, json.loads(body)["data"]["success"]) == (200, ["TEL4VN_Test"])


def test_expect_100_continue_gets_continue_then_the_answer(api):
    server = api()
    body = seed_body(3000)
    with connect(server) as sock:
        sock.sendall(import_request(b"", f"Content-Length: {len(body)}", "Expect: 100-continue"))
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):  # byte by byte: nothing past it is taken
            interim += sock.recv(1) or b"<EOF>\r\n\r\n"
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, answer, _ = read_response(sock)
        assert status == 200, answer


def test_a_content_length_over_the_limit_is_refused_before_the_body_is_sent(api):
    server = api(max_body_bytes=2048)
    with connect(server) as sock:
        sock.sendall(import_request(b"", "Content-Length: 100000000", "Expect: 100-continue"))
        assert json_error(sock) == (400, import_too_large(2048))
    with connect(server) as sock:
        request = import_request(b"", "Content-Length: 100000000", "Expect: 100-continue")
        sock.sendall(request.replace(b"POST /v2/autocall/queue ", b"POST /v2/autocall/queue/stop "))
        assert json_error(sock)[:1] == (413,)


@pytest.mark.parametrize(
    "raw,status",
    [
        (import_request(b"{}", "Content-Length: -1"), 400),
        (import_request(b"{}", "Content-Length: two"), 400),
        (import_request(b"{}", "Transfer-Encoding: gzip"), 400),
        (import_request(b"{}", "Transfer-Encoding: chunked") + b"zz\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: autocall\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: autocall\r\n\r\n", 414),
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /healthz HTTP/7.0\r\n\r\n", 400),
    ],
    ids=[
        "length-negative",
        "length-text",
        "gzip-coding",
        "bad-chunk",
        "header-line-70k",
        "120-headers",
        "request-line-9k",
        "no-request-line",
        "http-7",
    ],
)
def test_a_malformed_request_gets_a_json_answer(api, raw, status):
    server = api()
    with connect(server) as sock:
        sock.sendall(raw)
        assert json_error(sock)[0] == status


# --- TCP_NODELAY and one send per small response ---


class _RecordingHandler(ApiHandler):
    seen = []

    def handle_one_response(self):
        self.seen.append(("nodelay", self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        super().handle_one_response()

    def _sendall(self, data):
        self.seen.append(("send", data.count(b"\r\n\r\n")))
        super()._sendall(data)


def test_responses_go_out_with_tcp_nodelay_and_in_one_send(tmp_path):
    config = make_config(tmp_path)
    server = ApiServer(("127.0.0.1", 0), create_app(config), config.api, log=None)
    server.handler_class = _RecordingHandler
    server.start()
    try:
        with requests.Session() as session:  # one kept-alive connection
            for _ in range(2):
                assert session.get(f"http://127.0.0.1:{server.server_port}/healthz", timeout=5).status_code == 200
    finally:
        server.stop()
    # NODELAY set on the connection; headers and body in one send, for each kept-alive request.
    assert _RecordingHandler.seen == [("nodelay", 1), ("send", 1)] * 2


# --- queue codes holding "/" (and "%") read back percent-encoded ---


@pytest.mark.parametrize("code", ["Autocall/Q1", "/leading", "ends/customers", "50%", "a%2Fb"])
def test_a_queue_code_with_a_slash_or_percent_reads_back_percent_encoded(api, code):
    server = api()
    body = seed_import()
    body["queue_code"] = code
    assert requests.post(f"{server.url}/v2/autocall/queue", json=body, headers=AUTH, timeout=10).status_code == 200
    base = f"{server.url}/v2/autocall/queue/{quote(code, safe='')}"
    r = requests.get(base, headers=AUTH, timeout=5, allow_redirects=False)
    assert (r.status_code, r.json()["data"]["queue_code"]) == (200, code)
    r = requests.get(base + "/customers", headers=AUTH, timeout=5)
    assert [c["id"] for c in r.json()["data"]["customers"]] == ["TEL4VN_Test"]
    r = requests.get(base + "/attempts.csv", headers=AUTH, timeout=5)
    assert (r.status_code, r.text.splitlines()[0].split(",")[0]) == (200, "customer_id")


def test_the_seed_code_reads_back_as_before(api):
    server = api()
    requests.post(f"{server.url}/v2/autocall/queue", json=seed_import(), headers=AUTH, timeout=10)
    r = requests.get(f"{server.url}/v2/autocall/queue/Autocall-Q1", headers=AUTH, timeout=5)
    assert r.json()["data"]["queue_code"] == "Autocall-Q1"
