"""The files an operator installs (systemd units, env file, FreeSWITCH XML, the install
guide's config) agree with the code and with each other."""

import configparser
import ctypes
import ipaddress
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from api.app import create_app
from daemon import config as config_mod
from daemon.errors import EX_TEMPFAIL, ConfigError
from daemon.store import url as db_url

REPO = Path(__file__).resolve().parent.parent
UNITS = {
    name: REPO / "systemd" / f"{name}.service" for name in ("autocall-daemon", "autocall-api", "autocall-notifier")
}
ENV_EXAMPLE = REPO / "systemd" / "autocall.env.example"
FS_CONF = REPO / "freeswitch_conf"
DEFAULTS = config_mod.Config()
FREESWITCH_HEARTBEAT = 20.0  # seconds between HEARTBEAT events, FreeSWITCH's default


# --- tiny readers for systemd's formats ---


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as (key, value) lists: systemd allows a key to repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"line {number}: continuation lines are not used here"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"line {number}: {line!r} before any [section]"
        key, sep, value = line.partition("=")
        assert sep and key.strip() and " " not in key.strip(), f"line {number}: not key=value: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNITS[name].read_text())


def value(sections, section: str, key: str) -> str:
    """The value systemd uses for a single-valued key: the last one."""
    values = [v for k, v in sections.get(section, []) if k == key]
    assert values, f"[{section}] {key}= missing"
    return values[-1]


def timespan_seconds(text: str) -> float:
    """systemd time span ("60", "90s", "1min 30s") in seconds."""
    scale = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    for number, unit_name in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        total += float(number) * scale[unit_name]
    return total


def parse_env_file(text: str) -> dict[str, str]:
    """EnvironmentFile= syntax as used here: KEY=value lines, # and ; comments."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, val = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f"not KEY=value: {line!r}"
        env[key] = val
    return env


def console_scripts() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict((part.strip() for part in line.split("=", 1)) for line in lines)


def fs_params(path: Path) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in ET.parse(path).getroot().iter("param")}


# --- the units ---


def test_the_unit_reader_keeps_repeated_keys_and_rejects_stray_lines():
    sections = parse_unit("[Service]\nEnvironment=A=1\nEnvironment=B=2\n# note\n")
    assert sections == {"Service": [("Environment", "A=1"), ("Environment", "B=2")]}
    with pytest.raises(AssertionError):
        parse_unit("ExecStart=/bin/true\n")
    assert timespan_seconds("1min 30s") == 90 and timespan_seconds("60") == 60


@pytest.mark.parametrize("name", UNITS)
def test_unit_has_the_sections_and_keys_an_operator_relies_on(name):
    sections = unit(name)
    assert set(sections) == {"Unit", "Service", "Install"}
    for key in (
        "Type",
        "User",
        "ExecStart",
        "EnvironmentFile",
        "Restart",
        "RestartSec",
        "TimeoutStopSec",
        "StateDirectory",
    ):
        value(sections, "Service", key)
    assert value(sections, "Install", "WantedBy") == "multi-user.target"
    assert value(sections, "Service", "Restart") == "on-failure"


def test_the_template_unit_for_several_dialers_is_the_daemon_unit_but_for_its_instance_lines():
    plain = unit("autocall-daemon")
    template = parse_unit((REPO / "systemd" / "autocall-daemon@.service").read_text())
    instance_lines = {
        ("Unit", "Description", "autocall outbound IVR dialer %i"),
        ("Service", "ExecStart", "/opt/autocall/.venv/bin/autocall-daemon --config /etc/autocall/daemon-%i.toml"),
        ("Service", "Environment", "AUTOCALL_NODE=%H-%i"),
        ("Service", "EnvironmentFile", "-/etc/autocall/daemon-%i.env"),
    }
    lines = {section: [(k, v) for k, v in pairs] for section, pairs in template.items()}
    for section, key, text in instance_lines:
        lines[section].remove((key, text))
    replaced = {("Unit", "Description"), ("Service", "ExecStart")}
    assert lines == {
        section: [(k, v) for k, v in pairs if (section, k) not in replaced] for section, pairs in plain.items()
    }
    assert "AUTOCALL_NODE" in config_mod.ENV_KEYS  # the name the unit sets is one the config reads


@pytest.mark.parametrize("name", UNITS)
def test_exec_start_runs_the_console_script_of_the_same_name(name):
    argv = value(unit(name), "Service", "ExecStart").split()
    script = Path(argv[0])
    assert script.parent == Path("/opt/autocall/.venv/bin")
    assert script.name == name
    assert script.name in console_scripts(), f"{name} is not a console script in setup.cfg"
    assert argv[1:] == ["--config", "/etc/autocall/autocall.toml"]


@pytest.mark.parametrize("name", UNITS)
def test_console_script_target_is_a_callable_main(name):
    module_name, _, attr = console_scripts()[name].partition(":")
    module = __import__(module_name, fromlist=[attr])
    assert callable(getattr(module, attr))


def test_both_units_share_user_state_directory_and_env_file():
    shared = ("User", "Group", "StateDirectory", "StateDirectoryMode", "EnvironmentFile", "UMask")
    daemon, api, notifier = unit("autocall-daemon"), unit("autocall-api"), unit("autocall-notifier")
    for key in shared:
        assert value(daemon, "Service", key) == value(api, "Service", key) == value(notifier, "Service", key), key
    assert value(daemon, "Service", "StateDirectory") == "autocall"
    assert value(daemon, "Service", "EnvironmentFile") == "-/etc/autocall/autocall.env"


def test_daemon_is_type_notify_and_only_its_main_process_may_notify():
    sections = unit("autocall-daemon")
    assert value(sections, "Service", "Type") == "notify"
    assert value(sections, "Service", "NotifyAccess") == "main"


def test_daemon_is_given_more_time_to_stop_than_it_drains():
    sections = unit("autocall-daemon")
    assert value(sections, "Service", "KillSignal") == "SIGTERM"
    stop = timespan_seconds(value(sections, "Service", "TimeoutStopSec"))
    assert stop >= DEFAULTS.dialer.drain_timeout + 15


def test_daemon_watchdog_outlasts_the_heartbeat_timeout_and_three_missed_heartbeats():
    watchdog = timespan_seconds(value(unit("autocall-daemon"), "Service", "WatchdogSec"))
    assert watchdog > 3 * FREESWITCH_HEARTBEAT
    assert watchdog > DEFAULTS.esl.heartbeat_timeout


def test_daemon_reloads_with_sighup_and_follows_freeswitch_without_requiring_it():
    sections = unit("autocall-daemon")
    assert value(sections, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert "freeswitch.service" in value(sections, "Unit", "Wants").split()
    assert "freeswitch.service" in value(sections, "Unit", "After").split()
    assert not any(k in ("Requires", "BindsTo") for k, _ in sections["Unit"])


@pytest.mark.parametrize("name", UNITS)
def test_a_bad_config_is_not_restarted_forever(name):
    # Both entry points exit 2 on a ConfigError.
    assert value(unit(name), "Service", "RestartPreventExitStatus") == "2"


@pytest.mark.parametrize("name", UNITS)
def test_exit_75_unavailable_now_is_restarted_for_as_long_as_it_takes(name):
    # 75 (EX_TEMPFAIL): a database locked, read-only, full or failing at start-up, a port in use.
    sections = unit(name)
    assert value(sections, "Service", "Restart") == "on-failure"  # any status but 0 restarts...
    assert str(EX_TEMPFAIL) not in value(sections, "Service", "RestartPreventExitStatus").split()  # ...75 too
    assert not [v for k, v in sections["Service"] if k == "SuccessExitStatus" and str(EX_TEMPFAIL) in v.split()]
    # systemd gives up after StartLimitBurst (5) starts within StartLimitIntervalSec (10 s): the
    # pause between two starts keeps the retries under it, however long the outage lasts.
    assert not [k for k, _ in sections["Unit"] if k.startswith("StartLimit")]
    assert timespan_seconds(value(sections, "Service", "RestartSec")) * 5 > 10


@pytest.mark.parametrize("name", UNITS)
def test_unit_caps_memory_and_tasks(name):
    service = dict(unit(name)["Service"])
    assert service["MemoryMax"].endswith(("M", "G")) and int(service["TasksMax"]) >= 32


def test_api_unit_allows_the_open_files_its_connections_need():
    from api.http import MAX_ACCEPT, MAX_REFUSING
    from api.server import FD_RESERVE

    files = int(value(unit("autocall-api"), "Service", "LimitNOFILE"))
    assert files >= DEFAULTS.api.max_connections + MAX_REFUSING + MAX_ACCEPT + FD_RESERVE


@pytest.mark.parametrize("name", UNITS)
def test_unit_is_sandboxed(name):
    service = dict(unit(name)["Service"])
    expected = {
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter": "@system-service",
        "MemoryDenyWriteExecute": "yes",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
    }
    assert {k: service.get(k) for k in expected} == expected


def test_env_example_lists_every_override_the_config_reads():
    text = ENV_EXAMPLE.read_text()
    mentioned = set(re.findall(r"^#?(AUTOCALL_[A-Z_]+)=", text, flags=re.M))
    webhook_secrets = {"AUTOCALL_WEBHOOK_SECRET", DEFAULTS.notifier.callback_secret_env}  # named in the config
    assert mentioned == set(config_mod.ENV_KEYS) | {db_url.PASSWORD_ENV} | webhook_secrets


def test_env_example_as_shipped_holds_only_the_secrets_and_the_api_will_not_start_on_it():
    env = parse_env_file(ENV_EXAMPLE.read_text())
    assert env == {"AUTOCALL_API_TOKENS": "", "AUTOCALL_ESL_PASSWORD": "", "AUTOCALL_DB_PASSWORD": ""}
    loaded = config_mod.load(None, environ=env)
    assert loaded.esl.password == DEFAULTS.esl.password
    with pytest.raises(ConfigError, match="AUTOCALL_API_TOKENS"):
        create_app(loaded)


def test_env_file_values_override_the_config_file(tmp_path):
    path = tmp_path / "autocall.toml"
    path.write_text(_install_toml())
    env = {"AUTOCALL_API_TOKENS": "tok-one-0123456789,tok-two-0123456789", "AUTOCALL_ESL_PASSWORD": "s3cret"}
    loaded = config_mod.load(path, environ=env)
    assert loaded.api.tokens == ("tok-one-0123456789", "tok-two-0123456789")
    assert loaded.esl.password == "s3cret"


def _stub_tree(tmp_path: Path) -> dict[str, Path]:
    """Copies of the units whose ExecStart points at stub scripts that exist here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    copies = {}
    for name, path in UNITS.items():
        stub = bin_dir / name
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace("/opt/autocall/.venv/bin/", f"{bin_dir}/"))
        copies[name] = copy
    return copies


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path):
    copies = _stub_tree(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, copies.values())], capture_output=True, text=True, timeout=50
    )
    ours = [
        line for line in (done.stdout + done.stderr).splitlines() if any(path.name in line for path in copies.values())
    ]
    assert done.returncode == 0 and ours == [], done.stdout + done.stderr


# --- MemoryDenyWriteExecute=yes: prove the stack runs without writable+executable memory ---

MDWE_PROBE = textwrap.dedent("""
    import ctypes, mmap, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        sys.exit(f"prctl: errno {ctypes.get_errno()}")
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        sys.exit("a writable+executable mapping was allowed: MDWE is not in force")
    except OSError:
        pass
    import daemon.main, api.server  # every entry point, each patches with gevent first
    import gevent, peewee, flask, urllib.request
    from gevent.pywsgi import WSGIServer
    app = flask.Flask("probe")
    app.get("/")(lambda: "ok")
    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    assert urllib.request.urlopen(f"http://127.0.0.1:{server.address[1]}/", timeout=5).read() == b"ok"
    db = peewee.SqliteDatabase(sys.argv[1], pragmas={"journal_mode": "wal"})
    assert db.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
    assert gevent.get_hub().threadpool.apply(lambda: 6 * 7) == 42
    assert ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)() == 7
    print("ok")
""")


def _kernel_has_mdwe() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    # PR_GET_MDWE (66) answers >= 0 on kernels that know the feature (6.3+).
    return libc.prctl(66, 0, 0, 0, 0) >= 0


@pytest.mark.timeout(60)
@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _kernel_has_mdwe(), reason="kernel without PR_SET_MDWE (Linux 6.3+)"
)
def test_the_stack_runs_with_memory_deny_write_execute(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", MDWE_PROBE, str(tmp_path / "probe.sqlite3")],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=REPO,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# --- FreeSWITCH ---


def test_every_freeswitch_xml_file_parses():
    files = sorted(FS_CONF.rglob("*.xml"))
    assert len(files) >= 2
    for path in files:
        ET.parse(path)


def test_event_socket_listens_on_loopback_only_where_the_dialer_connects():
    params = fs_params(FS_CONF / "autoload_configs" / "event_socket.conf.xml")
    assert ipaddress.ip_address(params["listen-ip"]).is_loopback
    assert params["apply-inbound-acl"] == "loopback.auto"
    assert int(params["listen-port"]) == DEFAULTS.esl.address.port
    assert ipaddress.ip_address(DEFAULTS.esl.address.host).is_loopback
    # Out of the box the two agree; the guides tell the operator to change both.
    assert params["password"] == DEFAULTS.esl.password


def test_event_socket_file_is_the_one_freeswitch_reads():
    root = ET.parse(FS_CONF / "autoload_configs" / "event_socket.conf.xml").getroot()
    assert root.tag == "configuration" and root.get("name") == "event_socket.conf"


def test_example_gateway_is_the_one_the_default_dial_string_names():
    kind, profile_or_gateway, name, _ = DEFAULTS.dialer.dial_string.split("/", 3)
    assert (kind, profile_or_gateway) == ("sofia", "gateway")
    path = FS_CONF / "sip_profiles" / "external" / f"{name}.xml"
    root = ET.parse(path).getroot()
    assert root.tag == "include"
    gateways = root.findall("gateway")
    assert [g.get("name") for g in gateways] == [name]
    params = {p.get("name"): p.get("value") for p in gateways[0].iter("param")}
    assert {"proxy", "username", "password", "register"} <= set(params)


# --- the install guide ---


def _install_toml() -> str:
    text = (REPO / "docs" / "install.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "docs/install.md should hold exactly one toml block"
    return blocks[0]


def test_install_guide_config_loads_and_keeps_the_database_in_the_state_directory(tmp_path):
    path = tmp_path / "autocall.toml"
    path.write_text(_install_toml())
    loaded = config_mod.load(path, environ={})
    state_dir = Path("/var/lib") / value(unit("autocall-daemon"), "Service", "StateDirectory")
    assert loaded.db_path.parent == state_dir
    assert loaded.templates.dir.is_absolute() and loaded.templates.sounds.is_absolute()
    assert loaded.dialer.dial_string == DEFAULTS.dialer.dial_string
    assert ipaddress.ip_address(loaded.esl.address.host).is_loopback
    assert loaded.api.tokens == (), "tokens belong in autocall.env, not in the toml"
