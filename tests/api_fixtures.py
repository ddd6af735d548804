"""Fixtures and helpers shared by the API tests: a fresh SQLite file and app per test."""

import copy
import dataclasses
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from api.app import create_app
from api.services import services
from daemon import config as config_mod
from daemon.store.schema import execute

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO = Path(__file__).resolve().parent.parent

# The seed's sample import body, word for word.
SEED_IMPORT = {
    "queue_code": "Autocall-Q1",
    "template": "IVR-1",
    "concurrent_call": 5,
    "max_recall_count": 3,
    "min_recall_duration": 3,
    "customers": [
        {
            "id": "TEL4VN_Test",
            "mobiles": ["0982596021"],
            "contract_number": "HD123456",
            "upcoming_due_date": "2021-07-13",
            "upcoming_amount": 5000000,
            "due_date": "2021-07-13",
            "dpd": 5,
            "number_of_ovd_inst": 6,
            "total_ovd_amount": 3211100,
        }
    ],
}
SEED_DNC = {"queue_code": "Autocall-Q1", "customers": [{"id": "KH_01"}, {"id": "KH_02"}, {"id": "KH_03"}]}


def seed_import():
    return copy.deepcopy(SEED_IMPORT)


def customer(ext_id, mobile="0982596021", **fields):
    return {
        "id": ext_id,
        "mobiles": [mobile],
        "contract_number": "HD123456",
        "upcoming_due_date": "2021-07-13",
        "upcoming_amount": 5000000,
        **fields,
    }


def make_config(tmp_path: Path, **api_overrides) -> config_mod.Config:
    base = config_mod.load(
        None,
        environ={
            "AUTOCALL_DB": str(tmp_path / "autocall.sqlite3"),
            "AUTOCALL_API_TOKENS": TOKEN,
            "AUTOCALL_TEMPLATES": os.environ.get("AUTOCALL_TEMPLATES", ""),
        },
    )
    return dataclasses.replace(base, api=dataclasses.replace(base.api, **api_overrides))


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path)


@pytest.fixture
def app(config):
    app = create_app(config)
    yield app
    services(app).workers.close()  # its threads, and with them their SQLite connections


@pytest.fixture
def db(app):
    return services(app).db


@pytest.fixture
def client(app):
    return app.test_client()


def post(client, path, body, headers=AUTH):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(f"/v2/autocall{path}", data=data, headers=headers, content_type="application/json")


def rows(db, sql, *params):
    with db.connection_context():
        return execute(db, sql, params).fetchall()


def customer_states(db, code="Autocall-Q1") -> dict:
    return dict(
        rows(
            db,
            "SELECT c.ext_id, c.state FROM customer c JOIN queue q ON q.id = c.queue_id"
            " WHERE q.code = ? AND q.state != 'deleted'",
            code,
        )
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _file_limit(n: int):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))

    return apply


_config_names = itertools.count()


class ApiProcess:
    """`autocall-api` as a real process on a loopback port the kernel picks as it binds.

    The port is read from the server's own "listening on" line, so a port that another test's
    server holds can never be mistaken for this one (a port picked before the start could be).
    """

    def __init__(self, tmp_path: Path, *, api_settings: dict | None = None, open_files: int | None = None, **env):
        """`api_settings` become the [api] table of a config file; `open_files` caps RLIMIT_NOFILE."""
        self.db_path = tmp_path / "autocall.sqlite3"
        self.env = {
            **os.environ,
            "AUTOCALL_DB": str(self.db_path),
            "AUTOCALL_API_TOKENS": TOKEN,
            "AUTOCALL_API_LISTEN": "127.0.0.1:0",
            **env,
        }
        if api_settings:
            path = tmp_path / f"api-{next(_config_names)}.toml"
            path.write_text("[api]\n" + "".join(f"{k} = {v!r}\n" for k, v in api_settings.items()))
            self.env["AUTOCALL_CONFIG"] = str(path)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.server"],
            env=self.env,
            cwd=REPO,
            preexec_fn=_file_limit(open_files) if open_files else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._early_output: list[str] = []
        self.port = self._wait_listening()
        self.url = f"http://127.0.0.1:{self.port}"

    def _wait_listening(self, timeout=20) -> int:
        """The port of the server's "autocall-api listening on HOST:PORT" line."""
        timer = threading.Timer(timeout, self.proc.kill)  # a server that never says it is listening
        timer.start()
        try:
            for line in self.proc.stdout:
                self._early_output.append(line)
                if line.startswith("autocall-api listening on "):
                    return int(line.rsplit(":", 1)[1])
        finally:
            timer.cancel()
        self.proc.wait()
        raise RuntimeError(f"autocall-api exited before it was listening: {''.join(self._early_output)}")

    def stop(self) -> str:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=15)
        return "".join(self._early_output) + out
