"""What an operator sees when something is wrong: through the real entry points, one line
naming the problem and the exit status systemd acts on (2 = fix the configuration, 75 = try
again later), and the files and log lines a running service leaves."""

import codecs
import datetime as dt
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from daemon import config
from daemon.config import load
from daemon.dialer import STALL_LIMIT, Dialer
from daemon.pacing import CallingWindow
from tests.api_fixtures import TOKEN, ApiProcess, free_port
from tests.daemon_fixtures import DaemonProcess, start_simulator, wait_until

REPO = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def run_entry(module: str, tmp_path: Path, *args, timeout=60, **env) -> subprocess.CompletedProcess:
    """Run an entry point to its exit, in `tmp_path` (so a stray relative file would land there)."""
    environ = {
        "PATH": os.environ["PATH"],
        "AUTOCALL_DB": str(tmp_path / "db" / "autocall.sqlite3"),
        "AUTOCALL_API_TOKENS": TOKEN,
        "AUTOCALL_API_LISTEN": f"127.0.0.1:{free_port()}",  # not 8080: another program may hold it
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(done: subprocess.CompletedProcess, prefix: str) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith(prefix), done.stderr
    return line


# --- the database file ---


@pytest.mark.parametrize("module,prefix", [("api.server", "autocall-api: "), ("daemon.main", "autocall-daemon: ")])
def test_a_database_directory_that_cannot_be_made_is_one_line_and_exit_2(tmp_path, module, prefix):
    (tmp_path / "taken").write_text("a file where the directory should be")
    done = run_entry(module, tmp_path, AUTOCALL_DB=str(tmp_path / "taken" / "autocall.sqlite3"))
    assert done.returncode == 2
    assert one_line(done, prefix) == (
        f"{prefix}database.path: cannot create the directory {tmp_path / 'taken'}: a file of that name is in the way"
    )


def test_a_blank_database_path_is_refused_and_creates_no_file(tmp_path):
    done = run_entry("api.server", tmp_path, AUTOCALL_DB=" ")
    assert done.returncode == 2
    assert (
        one_line(done, "autocall-api: ") == "autocall-api: database.path (from AUTOCALL_DB): expected a path, got ' '"
    )
    assert not (tmp_path / " ").exists()


def assert_database_files_0640_after_api_start(folder, prepare=lambda: None):
    """Start the API under a login shell's umask (it would give 0644), after `prepare()`, and
    check the database and its -wal and -shm files are 0640."""
    old = os.umask(0o022)
    try:
        prepare()
        server = ApiProcess(folder)
    finally:
        os.umask(old)
    try:
        assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
        for name in ("autocall.sqlite3", "autocall.sqlite3-wal", "autocall.sqlite3-shm"):
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o640, name
    finally:
        server.stop()


def test_outside_systemd_the_database_and_its_wal_are_created_0640(tmp_path):
    assert_database_files_0640_after_api_start(tmp_path)


# --- the API's settings ---


def test_a_short_token_is_refused(tmp_path):
    done = run_entry("api.server", tmp_path, AUTOCALL_API_TOKENS="abcde")
    assert done.returncode == 2
    assert "api.tokens (from AUTOCALL_API_TOKENS): a token of 5 characters is too easy to guess" in one_line(
        done, "autocall-api: "
    )


def test_a_listen_address_that_is_not_this_hosts_is_exit_2(tmp_path):
    done = run_entry("api.server", tmp_path, AUTOCALL_API_LISTEN="192.0.2.1:8080")  # TEST-NET-1
    assert done.returncode == 2
    assert one_line(done, "autocall-api: ") == "autocall-api: api.listen: 192.0.2.1 is not an address of this host"


def test_a_listen_port_in_use_is_exit_75_for_systemd_to_retry(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_entry("api.server", tmp_path, AUTOCALL_API_LISTEN=f"127.0.0.1:{port}")
    assert done.returncode == 75
    assert (
        one_line(done, "autocall-api: ")
        == f"autocall-api: api.listen: 127.0.0.1:{port} is already in use by another process"
    )


def test_more_connections_than_open_files_allow_is_exit_2(tmp_path):
    path = tmp_path / "autocall.toml"
    path.write_text("[api]\nmax_connections = 1000\n")

    def limit():
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    done = subprocess.run(
        [sys.executable, "-m", "api.server", "--config", str(path)],
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            "AUTOCALL_API_TOKENS": TOKEN,
            "AUTOCALL_DB": str(tmp_path / "a.sqlite3"),
            "AUTOCALL_API_LISTEN": f"127.0.0.1:{free_port()}",
        },
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "api.max_connections: 1000 connections need about 1144 open files but this process may open 256" in one_line(
        done, "autocall-api: "
    )


# --- the calling window and the daily cap ---


def write_config(tmp_path, text) -> Path:
    path = tmp_path / "autocall.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_window_that_starts_when_it_ends_is_refused_by_the_daemon(tmp_path):
    path = write_config(tmp_path, '[dialer]\nwindow_start = "08:00"\nwindow_end = "08:00"\n')
    done = run_entry("daemon.main", tmp_path, "--config", str(path))
    assert done.returncode == 2
    assert one_line(done, "autocall-daemon: ") == (
        f"autocall-daemon: config file {path}: "
        "dialer.window_start and dialer.window_end are both 08:00: the window would never open; "
        'to call around the clock use window_start = "00:00", window_end = "24:00"'
    )


def test_window_end_24_00_means_until_midnight(tmp_path):
    c = load(write_config(tmp_path, '[dialer]\nwindow_start = "00:00"\nwindow_end = "24:00"\n'), environ={})
    window = CallingWindow(c.dialer.window_start, c.dialer.window_end, TZ)
    for hour, minute in ((0, 0), (12, 0), (23, 59)):
        assert window.is_open(dt.datetime(2026, 12, 2, hour, minute, tzinfo=TZ).timestamp())


def test_a_window_end_written_the_old_way_still_loads(tmp_path):
    # Before "24:00" was accepted, configs (the demo's among them) spelled midnight like this.
    c = load(write_config(tmp_path, '[dialer]\nwindow_end = "23:59:59.999999"\n'), environ={})
    assert c.dialer.window_end == dt.time(23, 59, 59, 999999)


@pytest.mark.parametrize("value", ['"24:01"', '"25:00"', '"7:00"', '"07:00+07:00"', '"noon"'])
def test_a_time_of_day_error_says_the_expected_form(tmp_path, value):
    path = write_config(tmp_path, f"[dialer]\nwindow_end = {value}\n")
    with pytest.raises(config.ConfigError) as e:
        load(path, environ={})
    shown = value.replace(chr(34), chr(39))
    assert str(e.value) == (
        f'config file {path}: dialer.window_end: expected a time of day "HH:MM" from 00:00 to 24:00, got {shown}'
    )


def test_a_misspelt_section_or_key_is_named_with_its_file_and_the_nearest_known_one(tmp_path):
    # Found by the careless-operator review: "autocall: dailer: unknown section", with neither
    # the file nor what was meant.
    path = write_config(tmp_path, "[dailer]\ncps = 5\n")
    with pytest.raises(
        config.ConfigError, match=f"^config file {path}: dailer: unknown section \\(did you mean dialer\\?\\)$"
    ):
        load(path, environ={})
    path = write_config(tmp_path, "[dialer]\nchanel_limit = 5\n")
    with pytest.raises(
        config.ConfigError, match="dialer.chanel_limit: unknown key \\(did you mean channel_limit\\?\\)$"
    ):
        load(path, environ={})


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    # Windows Notepad's "UTF-8" puts EF BB BF first, which tomllib calls an invalid statement.
    path = tmp_path / "autocall.toml"
    path.write_bytes(codecs.BOM_UTF8 + '[dialer]\ncps = 7  # gọi mỗi giây\n'.encode())
    assert load(path, environ={}).dialer.cps == 7


def test_the_example_config_says_daily_cap_0_turns_the_cap_off():
    text = (REPO / "docs" / "autocall.example.toml").read_text()
    block = text[text.index("daily_cap") - 300 : text.index("daily_cap")]
    assert "0 turns the cap off" in block
    assert load(None, environ={}).dialer.daily_cap == 5


# --- the event socket ---


@pytest.mark.timeout(60)
def test_a_wrong_esl_password_is_named_and_after_three_refusals_is_exit_2(tmp_path):
    sim = start_simulator({"gateways": ["carrier"]})
    sim.password = "the-real-one"
    try:
        path = write_config(tmp_path, f'[esl]\naddress = "127.0.0.1:{sim.address[1]}"\npassword = "wrong"\n')
        done = run_entry("daemon.main", tmp_path, "--config", str(path), timeout=50)
    finally:
        sim.stop()
    assert done.returncode == 2, done.stderr
    assert "not reachable" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert sum("FreeSWITCH refused the ESL password" in line and "check esl.password" in line for line in lines) == 2
    assert lines[-1].endswith(
        "autocall-daemon stopped: esl.password: FreeSWITCH refused it 3 times in a row; "
        "set esl.password (AUTOCALL_ESL_PASSWORD) to the password in event_socket.conf.xml"
    )


@pytest.mark.timeout(60)
def test_sighup_says_an_esl_address_change_needs_a_restart(tmp_path):
    import signal

    sim = start_simulator({"gateways": ["carrier"]})
    daemon = DaemonProcess(tmp_path, sim)
    try:
        daemon.start()
        text = daemon.config.read_text()
        daemon.config.write_text(text.replace(f"127.0.0.1:{sim.address[1]}", "127.0.0.1:9"))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP: configuration reloaded" in daemon.read_log(), 10)
        line = next(line for line in daemon.read_log().splitlines() if "SIGHUP" in line)
        assert "WARNING" in line and line.endswith(
            "SIGHUP: configuration reloaded, except esl.address: still the start-up value until "
            "`systemctl restart autocall-daemon`"
        )
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
        sim.stop()


def test_restart_only_changes_lists_what_sighup_cannot_apply(tmp_path):
    before = load(write_config(tmp_path, '[dialer]\ncps = 5\n'), environ={})
    after = load(
        write_config(
            tmp_path,
            '[dialer]\ncps = 7\n[esl]\naddress = "10.0.0.2:8021"\npassword = "x"\n[templates]\nvariant = "south"\n',
        ),
        environ={},
    )
    assert config.restart_only_changes(before, before) == []
    assert config.restart_only_changes(before, after) == ["esl.address", "esl.password", "templates.variant"]


# --- the watchdog's question ---


def test_the_dialer_is_wedged_only_when_its_loop_stops_coming_round():
    dialer = Dialer(load(None, environ={}), None, None, None)
    start = time.monotonic()
    dialer.last_tick = start
    assert not dialer.wedged(now=start + STALL_LIMIT - 1)  # e.g. waiting 30 s to retry FreeSWITCH
    assert dialer.wedged(now=start + STALL_LIMIT + 1)
    dialer.stop()
    assert not dialer.wedged(now=start + STALL_LIMIT + 1)  # draining: TimeoutStopSec's business
