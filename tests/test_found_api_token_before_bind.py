"""Found by attack9 (first seen as a flaky tests/test_config.py run while another process held
127.0.0.1:8080): autocall-api with no bearer token bound its port before it looked at the
tokens. With the port taken it said "api.listen: ... is already in use" and exited 75, so
systemd restarted it forever over an error that only the configuration can fix, and the
operator was sent to look for the wrong thing. The configuration is judged first: exit 2."""

import socket
import subprocess
import sys

from tests.api_fixtures import REPO


def test_no_token_is_reported_even_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "PATH": "/usr/bin:/bin",
            "AUTOCALL_DB": str(tmp_path / "a.sqlite3"),
            "AUTOCALL_API_LISTEN": f"127.0.0.1:{port}",
        }
        done = subprocess.run(
            [sys.executable, "-m", "api.server"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2, done.stderr
    assert "api.tokens" in done.stderr and "already in use" not in done.stderr
