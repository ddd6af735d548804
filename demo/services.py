"""The demo's three processes (simulator, API, daemon) and the HTTP calls it makes to the API."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from daemon.errors import AutocallError
from demo.scenario import config_toml


class DemoFailed(AutocallError):
    """The demo cannot go on; the message says what happened."""


class Interrupted(AutocallError):
    """Ctrl-C or SIGTERM reached the demo."""


# --- the three processes --------------------------------------------------------------------


class Service:
    """One child process of the demo, its log file, and how to stop it."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict):
        self.name, self.log_path = name, log_path
        with open(log_path, "wb") as log:
            # Its own session: Ctrl-C reaches only the demo, which then stops the services in order.
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match:
        """The first log line matching `pattern`; DemoFailed if the process dies or it never comes."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            match = regex.search(self.log_path.read_text(encoding="utf-8", errors="replace"))
            if match:
                return match
            if not self.alive():
                raise DemoFailed(self.death_notice())
            time.sleep(0.05)
        raise DemoFailed(f"{self.name} did not log /{pattern}/ within {timeout:g} s\n{self.tail()}")

    def death_notice(self) -> str:
        return f"{self.name} exited with status {self.proc.returncode}; the end of {self.log_path}:\n{self.tail()}"

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return "\n".join("    " + line for line in text)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, and SIGKILL only if it would not go; returns its exit status."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_services(workdir: Path, args, token: str, out) -> tuple[list[Service], str]:
    """Simulator and API up, config written; returns the services and the API's base URL."""
    env = child_env(workdir)
    python = sys.executable
    services = []
    try:
        sim = Service(
            "autocall-simulator",
            [
                python,
                "-m",
                "simulator",
                "--listen",
                "127.0.0.1:0",
                "--scenario",
                str(workdir / "scenario.toml"),
                "--time-scale",
                str(args.time_scale),
                "--record",
                str(workdir / "simulator-record.jsonl"),
            ],
            workdir / "simulator.log",
            env,
        )
        services.append(sim)
        esl_port = int(sim.wait_for_line(r"listening [\d.]+:(\d+)", 20).group(1))
        api_port = free_port()
        (workdir / "autocall.toml").write_text(
            config_toml(esl_port=esl_port, api_port=api_port, token=token, recall_delay=args.recall_delay),
            encoding="utf-8",
        )
        api = Service("autocall-api", [python, "-m", "api.server"], workdir / "api.log", env)
        services.append(api)
        api.wait_for_line(r"autocall-api listening on", 20)
    except BaseException:
        stop_services(services, out)
        raise
    print(
        f"autocall-simulator (FreeSWITCH stand-in) on 127.0.0.1:{esl_port}, time scale {args.time_scale:g}"
        f" ({1 / args.time_scale:g}x faster than life)",
        file=out,
    )
    print(f"autocall-api on http://127.0.0.1:{api_port}; this run's bearer token: {token}", file=out)
    return services, f"http://127.0.0.1:{api_port}"


def child_env(workdir: Path) -> dict:
    """Our environment minus any AUTOCALL_* of the caller's, pointed at the demo's config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOCALL_")}
    env["AUTOCALL_CONFIG"] = str(workdir / "autocall.toml")
    return env


def start_daemon(workdir: Path) -> Service:
    daemon = Service(
        "autocall-daemon", [sys.executable, "-m", "daemon.main"], workdir / "daemon.log", child_env(workdir)
    )
    daemon.wait_for_line(r"connected to FreeSWITCH", 20)
    return daemon


def stop_services(services: list[Service], out):
    """Stop in reverse order of start (the dialer before the switch it calls through)."""
    for service in reversed(services):
        status_code = service.stop()
        if status_code not in (0, -signal.SIGTERM):
            print(f"{service.name} exited with status {status_code}; see {service.log_path}", file=out)


def free_port() -> int:
    """A port free right now on the loopback (the config file needs a number, not 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- HTTP -------------------------------------------------------------------------------------


def post(base: str, token: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def download(base: str, token: str, path: str, target: Path):
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response, open(target, "wb") as f:
        shutil.copyfileobj(response, f)
