"""autocall-simulator as a real process: CLI, scenario file, record file, SIGTERM like capture 08b."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.sim_fixtures import login

pytestmark = pytest.mark.timeout(30)
SCENARIO = os.path.join(os.path.dirname(__file__), 'data', 'sim_scenario.toml')


@pytest.fixture
def process(tmp_path):
    record = tmp_path / 'record.jsonl'
    proc = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'simulator',
            '--listen',
            '127.0.0.1:0',
            '--password',
            'pw',
            '--scenario',
            SCENARIO,
            '--time-scale',
            '0.01',
            '--record',
            str(record),
            '--heartbeat',
            '0',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith('listening '), proc.stderr.read()
    host, port = line.split()[1].rsplit(':', 1)
    yield proc, (host, int(port)), record
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


def test_process_serves_the_scenario_and_records_each_originate(process):
    proc, address, record = process
    client = login(address, password='pw')
    client.command('bgapi originate {origination_uuid=p-1}sofia/gateway/gw1/0900000486 &park()')
    assert client.read_until(lambda m: client.events('CHANNEL_HANGUP_COMPLETE'), 5)
    assert client.events('CHANNEL_HANGUP_COMPLETE')[0]['Hangup-Cause'] == 'USER_BUSY'
    assert client.read_until(lambda m: record.exists() and record.read_text().strip(), 2)
    entry = json.loads(record.read_text().splitlines()[0])
    assert (entry['uuid'], entry['outcome'], entry['cause']) == ('p-1', 'busy', 'USER_BUSY')


def test_sigterm_hangs_up_calls_says_shutting_down_and_exits(process):
    proc, address, _record = process
    client = login(address, password='pw')
    client.command('bgapi originate {origination_uuid=p-2}sofia/gateway/gw1/0901 &park()')
    assert client.read_until(lambda m: client.events('CHANNEL_PARK'), 5)
    proc.send_signal(signal.SIGTERM)
    assert client.read_until(lambda m: client.eof, 5)
    assert client.events('SHUTDOWN')[0]['Event-Info'] == 'System Shutting Down'
    assert client.events('CHANNEL_HANGUP_COMPLETE')[0]['Hangup-Cause'] == 'SYSTEM_SHUTDOWN'
    assert client.messages[-1].endswith(b'\n\nThe system is being shut down.\n')
    assert proc.wait(5) == 0


def test_bad_scenario_file_is_reported_and_exits_2(tmp_path):
    bad = tmp_path / 'bad.toml'
    bad.write_text('[default]\noutcome = "maybe"\n')
    result = subprocess.run(
        [sys.executable, '-m', 'simulator', '--listen', '127.0.0.1:0', '--scenario', str(bad)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "default.outcome: 'maybe' is not one of" in result.stderr


def test_api_shutdown_over_esl_ends_the_process_like_sigterm(process):
    proc, address, _record = process
    client = login(address, password='pw')
    assert client.command('api shutdown').endswith(b'\n\n+OK\n')
    assert client.read_until(lambda m: client.eof, 5)
    assert client.messages[-1].endswith(b'\n\nThe system is being shut down.\n')
    assert proc.wait(5) == 0
