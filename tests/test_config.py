"""Configuration: file, environment overrides, and one-line errors that name the key."""

import dataclasses
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon import config
from daemon.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path, text) -> Path:
    path = tmp_path / "autocall.toml"
    path.write_text(text)
    return path


def test_no_file_gives_the_documented_defaults():
    c = config.load(None, environ={})
    assert (str(c.api.listen), c.api.tokens, c.esl.password) == ("127.0.0.1:8080", (), "ClueCon")
    assert (c.dialer.window_start, c.dialer.window_end, c.dialer.daily_cap) == (dt.time(7), dt.time(21), 5)
    assert c.dialer.timezone == "Asia/Ho_Chi_Minh"
    assert c.templates.dir == REPO / "ivr_templates"


def test_the_shipped_example_config_loads_and_equals_the_defaults_it_documents():
    example = config.load(REPO / "docs" / "autocall.example.toml", environ={})
    defaults = config.load(None, environ={})
    # The example only sets a token and paths; everything else matches the built-in defaults.
    assert example.dialer == defaults.dialer and example.esl == defaults.esl
    assert dataclasses.replace(example.api, tokens=()) == defaults.api
    assert example.queue_defaults == defaults.queue_defaults
    assert example.db_busy_timeout == defaults.db_busy_timeout
    assert example.metrics == defaults.metrics
    assert example.api.tokens


def test_file_values_are_read_and_relative_paths_follow_the_file(tmp_path):
    path = write(
        tmp_path,
        """
[database]
path = "data/autocall.sqlite3"
[api]
listen = "0.0.0.0:9000"
tokens = ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]
[dialer]
cps = 25
window_start = "08:30"
dial_string = "sofia/gateway/viettel/{number}"
[queue_defaults]
concurrent_call = 12
""",
    )
    c = config.load(path, environ={})
    assert c.db_path == tmp_path / "data" / "autocall.sqlite3"
    assert (c.api.listen.host, c.api.listen.port) == ("0.0.0.0", 9000)
    assert c.api.tokens == ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb")
    assert (c.dialer.cps, c.dialer.window_start) == (25.0, dt.time(8, 30))
    assert c.queue_defaults.concurrent_call == 12


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[api]\nlisten = "127.0.0.1:1"\ntokens = ["from-the-file-000"]\n')
    c = config.load(
        path,
        environ={
            "AUTOCALL_DB": "/srv/a.sqlite3",
            "AUTOCALL_API_LISTEN": "127.0.0.2:8081",
            "AUTOCALL_API_TOKENS": "tok-one-0000000001, tok-two-0000000002",
            "AUTOCALL_TEMPLATES": "/srv/t",
            "AUTOCALL_SOUNDS": "/srv/s",
            "AUTOCALL_ESL": "10.0.0.1:8022",
            "AUTOCALL_ESL_PASSWORD": "s3cret",
        },
    )
    assert c.db_path == Path("/srv/a.sqlite3")
    assert str(c.api.listen) == "127.0.0.2:8081"
    assert c.api.tokens == ("tok-one-0000000001", "tok-two-0000000002")
    assert (c.templates.dir, c.templates.sounds) == (Path("/srv/t"), Path("/srv/s"))
    assert (str(c.esl.address), c.esl.password) == ("10.0.0.1:8022", "s3cret")


def test_autocall_config_names_the_file(tmp_path):
    path = write(tmp_path, '[dialer]\ndaily_cap = 3\n')
    assert config.load(None, environ={"AUTOCALL_CONFIG": str(path)}).dialer.daily_cap == 3


@pytest.mark.parametrize(
    "text,key",
    [
        ('[api]\nlisten = "nowhere"', "api.listen"),
        ('[api]\nlisten = "host:99999"', "api.listen"),
        ('[api]\ntokens = [1, 2]', "api.tokens"),
        ('[api]\ntokens = ["has space in it"]', "api.tokens"),
        ('[dialer]\ncps = "fast"', "dialer.cps"),
        ('[dialer]\ncps = 0', "dialer.cps"),
        ('[dialer]\nchannel_limit = true', "dialer.channel_limit"),
        ('[dialer]\ntimezone = "Mars/Olympus"', "dialer.timezone"),
        ('[dialer]\nwindow_start = "25:00"', "dialer.window_start"),
        ('[dialer]\ndial_string = "sofia/gateway/x/"', "dialer.dial_string"),
        ('[dialer]\ndial_string = "sofia/{number},x=${y}"', "dialer.dial_string"),
        ('[dialer]\ncaller_id = "abc"', "dialer.caller_id"),
        ('[dialer]\nnode = "pbx 1"', "dialer.node"),
        ('[dialer]\nnode = ""', "dialer.node"),
        ('[database]\nurl = "postgresql://u:pw@h/db"', "database.url"),
        ('[templates]\nvariant = "west"', "templates.variant"),
        ('[esl]\npassword = ""', "esl.password"),
        ('[dialer]\nspeed = 3', "dialer.speed"),
        ('[dialr]\ncps = 3', "dialr"),
        ('api = 3', "api"),
        ('[api\n', "config file"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, text), environ={})
    assert str(e.value).startswith(key) or key in str(e.value)
    assert "\n" not in str(e.value)


def test_the_node_is_the_host_name_unless_named_and_only_a_restart_changes_it(tmp_path):
    import socket

    assert config.load(None, environ={}).dialer.node == socket.gethostname()
    named = config.load(write(tmp_path, '[dialer]\nnode = "pbx1"'), environ={})
    assert named.dialer.node == "pbx1"
    assert config.load(None, environ={"AUTOCALL_NODE": "pbx2.dc-a"}).dialer.node == "pbx2.dc-a"
    assert config.restart_only_changes(named, config.load(None, environ={"AUTOCALL_NODE": "pbx2"})) == ["dialer.node"]


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="No such file"):
        config.load(tmp_path / "absent.toml", environ={})


@pytest.mark.parametrize("kind", ["fifo", "folder", "huge"])
@pytest.mark.timeout(10)
def test_a_config_path_that_is_no_small_file_is_refused_without_reading_it(tmp_path, kind):
    # A FIFO there blocked a SIGHUP reload, and so the dialer's loop, in open().
    path = tmp_path / "autocall.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"#" * (2 << 20))
    reason = "bytes; at most 1,048,576 are read" if kind == "huge" else "not a regular file"
    with pytest.raises(ConfigError, match=f"config file {path}: .*{reason}"):
        config.load(path, environ={})


def test_config_is_immutable():
    c = config.load(None, environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.api = None


def test_api_refuses_to_start_without_a_token(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "AUTOCALL_DB": str(tmp_path / "a.sqlite3")}
    done = subprocess.run(
        [sys.executable, "-m", "api.server"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "api.tokens" in done.stderr and "AUTOCALL_API_TOKENS" in done.stderr
    assert not (tmp_path / "a.sqlite3").exists()


def test_api_with_a_bad_config_value_exits_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "AUTOCALL_API_LISTEN": "bogus"}
    done = subprocess.run(
        [sys.executable, "-m", "api.server"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "autocall-api: api.listen (from AUTOCALL_API_LISTEN): expected host:port, got 'bogus'"


def test_under_journald_log_lines_carry_their_syslog_priority(capsys):
    import logging

    from daemon import logs

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup("INFO", environ={"JOURNAL_STREAM": "8:123"})
        logging.getLogger("autocall.test").warning("gateway down")
        logging.getLogger("autocall.test").info("call done")
    finally:
        root.handlers[:], root.level = saved
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "<4>autocall.test: gateway down",
        "<6>autocall.test: call done",
    ]


def test_every_logger_of_the_product_is_in_the_autocall_tree():
    import re

    from daemon.config import REPO_ROOT

    named = re.compile(r"getLogger\((?P<arg>[^)]*)\)")
    for path in sorted([*REPO_ROOT.glob("daemon/**/*.py"), *REPO_ROOT.glob("api/**/*.py")]):
        for match in named.finditer(path.read_text(encoding="utf-8")):
            assert re.fullmatch(r"""(["'])autocall(\.[a-z_.]+)?\1""", match["arg"]), (path, match["arg"])
