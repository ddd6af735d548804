"""sd_notify against real AF_UNIX datagram sockets, as systemd would listen, and the daemon
speaking it as systemd starts it (Type=notify, WatchdogSec=)."""

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from daemon import sdnotify
from simulator import Simulator
from simulator.scenario import from_dict

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def path_listener(tmp_path):
    """A datagram socket bound to a file, as systemd's /run/systemd/notify."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        yield path, sock


@pytest.fixture
def abstract_listener():
    """A datagram socket in the abstract namespace; systemd spells it "@name"."""
    name = f"autocall-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        yield "@" + name, sock


def test_states_reach_a_path_socket_as_one_datagram(path_listener):
    address, sock = path_listener
    assert sdnotify.notify("READY=1", "STATUS=connected to FreeSWITCH", environ={"NOTIFY_SOCKET": address})
    assert sock.recv(4096) == b"READY=1\nSTATUS=connected to FreeSWITCH"


def test_states_reach_an_abstract_socket_named_with_at(abstract_listener):
    address, sock = abstract_listener
    assert sdnotify.notify("WATCHDOG=1", environ={"NOTIFY_SOCKET": address})
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_reads_notify_socket_from_the_process_environment(path_listener, monkeypatch):
    address, sock = path_listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert sdnotify.notify("STOPPING=1")
    assert sock.recv(4096) == b"STOPPING=1"


def test_a_newline_in_a_status_cannot_forge_another_state(path_listener):
    address, sock = path_listener
    assert sdnotify.notify("STATUS=esl lost\nREADY=1", environ={"NOTIFY_SOCKET": address})
    assert sock.recv(4096) == b"STATUS=esl lost READY=1"


def test_utf8_status_is_sent_as_utf8(path_listener):
    address, sock = path_listener
    assert sdnotify.notify("STATUS=đang gọi 3 cuộc", environ={"NOTIFY_SOCKET": address})
    assert sock.recv(4096).decode() == "STATUS=đang gọi 3 cuộc"


def test_without_notify_socket_nothing_is_sent():
    assert sdnotify.notify("READY=1", environ={}) is False
    assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": ""}) is False


def test_a_missing_socket_file_is_logged_not_raised(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="autocall.sdnotify")
    address = str(tmp_path / "gone")
    assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": address}) is False
    assert "no listener" in caplog.text


def test_a_socket_file_nobody_listens_on_is_not_an_error(tmp_path):
    address = str(tmp_path / "stale")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.close()  # the file stays, the listener is gone: what a restarted systemd leaves
    assert os.path.exists(address)
    assert sdnotify.notify("WATCHDOG=1", environ={"NOTIFY_SOCKET": address}) is False


def test_an_abstract_name_nobody_listens_on_is_not_an_error():
    address = f"@autocall-test-{uuid.uuid4().hex}"
    assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": address}) is False


def test_a_state_without_equals_sign_is_a_programming_error(path_listener):
    address, _ = path_listener
    with pytest.raises(ValueError, match="KEY=value"):
        sdnotify.notify("READY", environ={"NOTIFY_SOCKET": address})


def test_watchdog_period_is_half_the_interval_systemd_asked_for():
    assert sdnotify.watchdog_period({"WATCHDOG_USEC": "90000000"}) == 45.0


def test_watchdog_period_is_none_when_not_asked():
    assert sdnotify.watchdog_period({}) is None


@pytest.mark.parametrize("usec", ["0", "", "abc", "-5", "1.5"])
def test_watchdog_period_is_none_for_a_meaningless_interval(usec):
    assert sdnotify.watchdog_period({"WATCHDOG_USEC": usec}) is None


def test_watchdog_period_applies_when_watchdog_pid_is_this_process():
    environ = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
    assert sdnotify.watchdog_period(environ) == 10.0


def test_watchdog_period_is_none_when_watchdog_pid_is_another_process():
    environ = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert sdnotify.watchdog_period(environ) is None


def test_watchdog_period_takes_the_pid_to_compare_with():
    environ = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "4242"}
    assert sdnotify.watchdog_period(environ, pid=4242) == 10.0
    assert sdnotify.watchdog_period(environ, pid=4243) is None


# --- the daemon as systemd runs it (Type=notify, WatchdogSec=) against the simulator ---

REPO = Path(__file__).resolve().parent.parent


def _states(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().splitlines())


def _next_states(sock, timeout: float) -> dict[str, str]:
    sock.settimeout(timeout)
    return _states(sock.recv(4096))


def _wait_for(sock, predicate, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "timed out waiting for a notification"
        states = _next_states(sock, left)
        if predicate(states):
            return states


def _daemon_command() -> list[str]:
    script = Path(sys.executable).with_name("autocall-daemon")
    return [str(script)] if script.exists() else [sys.executable, "-m", "daemon.main"]


@pytest.fixture
def simulator():
    sim = Simulator(
        from_dict({"gateways": ["carrier"]}),
        listen=("127.0.0.1", 0),
        time_scale=0.02,
        heartbeat=20.0,
        sound_dir=str(REPO),
    ).start()  # a HEARTBEAT every 0.4 real seconds
    yield sim
    sim.stop()


@pytest.fixture
def start_daemon(tmp_path, path_listener, simulator):
    """Starts autocall-daemon with NOTIFY_SOCKET and WATCHDOG_USEC set, as systemd does.

    Returns (process, the socket systemd would read, the daemon's log file)."""
    address, sock = path_listener
    config = tmp_path / "autocall.toml"
    config.write_text(
        textwrap.dedent(f"""\
        [database]
        path = "{tmp_path / 'autocall.sqlite3'}"
        [esl]
        address = "127.0.0.1:{simulator.address[1]}"
        timeout = 1.0
        heartbeat_timeout = 1.2
    """)
    )
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
    log_path = tmp_path / "daemon.log"
    procs = []

    def start():
        with open(log_path, "wb") as log:
            procs.append(
                subprocess.Popen(
                    _daemon_command() + ["--config", str(config)],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        return procs[-1], sock, log_path

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(60)
def test_daemon_is_ready_only_once_connected_and_feeds_the_watchdog_through_a_freeswitch_outage(
    simulator, start_daemon
):
    simulator.refuse(3.0)  # FreeSWITCH is not up yet when the service starts (long: a loaded machine starts slowly)
    proc, sock, log_path = start_daemon()

    first = _next_states(sock, 20)
    assert first.get("READY") == "1", log_path.read_text()
    log = log_path.read_text()  # READY came after a refused try and the connection, in that order
    assert -1 < log.find("FreeSWITCH not reachable") < log.find("connected to FreeSWITCH"), log

    for _ in range(2):
        assert _next_states(sock, 2).get("WATCHDOG") == "1"

    # FreeSWITCH goes silent, then refuses connections, for many watchdog periods (0.4 s):
    # the dialer waits for it, which is not being stuck, so systemd must not kill it.
    simulator.silence(2.5)
    down = _wait_for(sock, lambda s: "reconnecting" in s.get("STATUS", ""), timeout=5)
    assert down.get("WATCHDOG") == "1"
    simulator.refuse(3.0)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert _next_states(sock, 1).get("WATCHDOG") == "1", log_path.read_text()
    _wait_for(sock, lambda s: "calls in progress" in s.get("STATUS", ""), timeout=15)

    proc.send_signal(signal.SIGTERM)
    _wait_for(sock, lambda s: s.get("STOPPING") == "1", timeout=15)
    assert proc.wait(timeout=15) == 0, log_path.read_text()
