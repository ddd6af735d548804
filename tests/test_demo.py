"""`make demo`: the generated data and scenario, and the whole demo run as a process."""

import csv
import datetime as dt
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.config import REPO_ROOT
from daemon.store.states import FINAL_STATES
from demo import customers as demo_customers
from demo import run, services
from demo import scenario as demo_scenario
from simulator import scenario as scenario_module

TODAY = dt.date(2026, 11, 27)
DEMO = [sys.executable, '-m', 'demo']


def generate(tmp_path, customers=40, seed=7):
    args = run.parse_args(['--workdir', str(tmp_path), '--customers', str(customers), '--seed', str(seed)])
    return run.prepare(tmp_path, args, TODAY)


def test_generated_customers_are_reproducible_for_a_seed(tmp_path):
    first = demo_customers.make_customers(50, random.Random(3), TODAY)
    again = demo_customers.make_customers(50, random.Random(3), TODAY)
    other = demo_customers.make_customers(50, random.Random(4), TODAY)
    assert first == again
    assert first != other


def test_generated_customers_have_one_to_three_unique_valid_mobiles_and_loan_fields():
    customers = demo_customers.make_customers(200, random.Random(1), TODAY)
    numbers = [n for c in customers for n in c.fields['mobiles']]
    assert len(numbers) == len(set(numbers))
    assert {len(c.fields['mobiles']) for c in customers} == {1, 2, 3}
    assert all(len(n) == 10 and n[:3] in demo_customers.MOBILE_PREFIXES for n in numbers)
    assert len({c.fields['id'] for c in customers}) == 200
    for c in customers:
        assert c.fields['contract_number'].startswith('HD')
        assert dt.date.fromisoformat(c.fields['upcoming_due_date']) > TODAY
        assert dt.date.fromisoformat(c.fields['due_date']) == TODAY - dt.timedelta(days=c.fields['dpd'])
        assert c.fields['upcoming_amount'] % 1000 == 0


def test_generated_customers_split_over_both_demo_queues():
    customers = demo_customers.make_customers(10, random.Random(1), TODAY)
    assert [c.queue for c in customers] == ['DEMO-TRUOC-HAN'] * 6 + ['DEMO-QUA-HAN'] * 4


def test_the_scenario_gives_every_number_the_callee_the_customer_was_generated_with(tmp_path):
    customers = generate(tmp_path)
    scenario = scenario_module.load(str(tmp_path / 'scenario.toml'))
    expected_outcome = {'busy': 'busy', 'no_answer': 'no_answer', 'declined': 'decline', 'dead_number': 'unallocated'}
    for c in customers:
        for number, behaviour in c.callees:
            assert scenario.behaviour_for(number).outcome == expected_outcome.get(behaviour, 'answer')
    seed_callee = scenario.behaviour_for('0982596021')
    assert [digits for _, digits in seed_callee.keys] == ['9']
    assert scenario.knows_gateway(demo_customers.GATEWAY)


def test_a_key_is_pressed_while_the_customers_menu_is_playing(tmp_path):
    timing = demo_scenario.CallTiming(REPO_ROOT / 'ivr_templates', REPO_ROOT / 'ivr_templates' / 'sounds')
    fields = demo_customers.SEED_IMPORT['customers'][0]
    menu_at, replay = timing.menu('IVR-1', fields)
    assert 15 < menu_at < 30 and 10 < replay < menu_at  # greeting + info, then info alone
    rule = demo_scenario.callee_rule('0900000001', 'repeat_then_promise', menu_at, replay, random.Random(0))
    (first_at, first), (second_at, second) = rule['keys']
    assert (first, second) == ('1', '9')
    assert menu_at < first_at < menu_at + 8  # inside the 8 s menu prompt
    assert first_at + replay < second_at < first_at + replay + 8


def test_the_demo_config_opens_the_window_around_the_clock_and_names_the_scenarios_gateway(tmp_path):
    from daemon import config

    path = tmp_path / 'autocall.toml'
    path.write_text(demo_scenario.config_toml(esl_port=8021, api_port=8080, token='t' * 20, recall_delay=5.0))
    loaded = config.load(path, environ={})
    assert loaded.dialer.window_start == dt.time(0, 0)
    assert loaded.dialer.window_end > dt.time(23, 59, 59)
    assert loaded.dialer.daily_cap == 0
    assert loaded.dialer.dial_string == f'sofia/gateway/{demo_customers.GATEWAY}/{{number}}'
    assert loaded.db_path == tmp_path / 'autocall.sqlite3'


def test_a_service_that_dies_is_named_with_the_end_of_its_log(tmp_path):
    service = services.Service(
        'autocall-broken',
        [sys.executable, '-c', 'print("cannot bind"); raise SystemExit(3)'],
        tmp_path / 'broken.log',
        {},
    )
    with pytest.raises(services.DemoFailed) as failure:
        service.wait_for_line('never printed', timeout=10)
    assert 'autocall-broken exited with status 3' in str(failure.value)
    assert 'cannot bind' in str(failure.value)


@pytest.mark.timeout(90)
def test_the_demo_calls_every_customer_to_a_final_state_and_writes_the_csvs(tmp_path):
    result = subprocess.run(
        [
            *DEMO,
            '--workdir',
            str(tmp_path),
            '--customers',
            '40',
            '--time-scale',
            '0.02',
            '--recall-delay',
            '1',
            '--timeout',
            '60',
        ],
        capture_output=True,
        text=True,
        timeout=80,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    db = sqlite3.connect(tmp_path / 'autocall.sqlite3')
    states = dict(
        db.execute(
            "SELECT c.state, COUNT(*) FROM customer c JOIN queue q ON q.id = c.queue_id"
            " WHERE q.state != 'deleted' GROUP BY c.state"
        ).fetchall()
    )
    assert set(states) <= set(FINAL_STATES)
    assert sum(states.values()) == 41  # the seed's sample customer + 40 generated
    seed_state = db.execute(
        "SELECT c.state, c.result FROM customer c JOIN queue q ON q.id = c.queue_id"
        " WHERE q.state != 'deleted' AND c.ext_id = 'TEL4VN_Test'"
    ).fetchone()
    assert seed_state == ('success', 'promise_to_pay')
    for code in ('Autocall-Q1', 'DEMO-TRUOC-HAN', 'DEMO-QUA-HAN'):
        csv_path = tmp_path / f'attempts-{code}.csv'
        assert str(csv_path) in result.stdout
        rows = list(csv.DictReader(csv_path.open(encoding='utf-8')))
        calls = db.execute(
            "SELECT COUNT(*) FROM attempt a JOIN queue q ON q.id = a.queue_id"
            " WHERE q.code = ? AND q.state != 'deleted'",
            (code,),
        ).fetchone()[0]
        assert len(rows) == calls > 0
    assert 'HTTP 404  {"code": 404, "content": "queue not found"}' in result.stdout
    assert 'Customers by IVR result' in result.stdout
    assert_every_service_stopped_cleanly(tmp_path)


@pytest.mark.timeout(90)
def test_ctrl_c_stops_every_process_and_exits_130(tmp_path):
    proc = subprocess.Popen(
        [*DEMO, '--workdir', str(tmp_path), '--customers', '200', '--time-scale', '0.05'],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    for line in proc.stdout:
        if line.startswith('[') and 'DEMO-QUA-HAN' in line:  # the live view is running
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, rest
    assert 'interrupted: every process was stopped' in rest
    assert_every_service_stopped_cleanly(tmp_path)


def assert_every_service_stopped_cleanly(workdir: Path):
    """Each log ends with its program's own words for a SIGTERM stop."""
    deadline = time.monotonic() + 5
    logs = {
        'daemon.log': 'autocall-daemon stopped',
        'simulator.log': 'shutting down',
        'api.log': 'stopping: finishing requests in progress',
    }
    while time.monotonic() < deadline:
        missing = [name for name, words in logs.items() if words not in (workdir / name).read_text()]
        if not missing:
            return
        time.sleep(0.1)
    pytest.fail(f'no clean stop in {missing}: ' + json.dumps({n: (workdir / n).read_text()[-500:] for n in missing}))
