"""A webhook receiver as a process of its own, for the notifier's tests.

    python tests/webhook_receiver.py --record FILE --mode FILE

Listens on a free loopback port (prints `listening PORT`), appends every request it reads
whole to --record as one JSON line (headers, body, the answer it gave), and answers as the
--mode file says at that moment: `ok` (204), `500`, `slow` (waits 5 s, then 200), `close`
(reads the request, then closes the connection without a word), `half` (sends half a
status line, then closes), `garbage` (answers a line that is not HTTP). A test switches modes by rewriting the file, and
takes the receiver down by killing the process.
"""

import argparse
import http.server
import json
import socketserver
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", required=True)
    parser.add_argument("--mode", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                mode = open(args.mode).read().strip() or "ok"
            except OSError:
                mode = "ok"
            with open(args.record, "a") as f:
                f.write(json.dumps({"headers": dict(self.headers), "body": body.decode(), "mode": mode}) + "\n")
            if mode == "close":
                self.close_connection = True
                return
            if mode == "garbage":  # no HTTP at all: http.client's own error, not an OSError
                self.wfile.write(b"HELLO\r\n\r\n")
                self.close_connection = True
                return
            if mode == "half":
                self.wfile.write(b"HTTP/1.1 20")
                self.close_connection = True
                return
            if mode == "slow":
                time.sleep(5)
            self.send_response(500 if mode == "500" else 204 if mode == "ok" else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", args.port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
