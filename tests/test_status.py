"""`autocall status`: the live view read from a real SQLite file, as a function and as a process."""

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import uuid

import peewee
import pytest

from daemon import status
from daemon.config import QueueDefaults
from daemon.store.customers import delete_queue, import_customers
from daemon.store.queue_state import set_running
from daemon.store.records import ImportRequest, NewCustomer
from daemon.store.schema import open_database

AUTOCALL = os.path.join(os.path.dirname(sys.executable), 'autocall')
NOW = 1_800_000_000.0
UTC = dt.UTC

pytestmark = pytest.mark.timeout(60)


def autocall(*args, env=None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith('AUTOCALL_')}
    environment.update(env or {})
    return subprocess.run([AUTOCALL, *args], capture_output=True, text=True, env=environment, timeout=30)


def add_queue(db, code, n, *, concurrent_call=5):
    request = ImportRequest(
        code,
        'IVR-1',
        {'concurrent_call': concurrent_call},
        [NewCustomer(f'KH{i:04d}', [f'09{i:08d}'], {}) for i in range(n)],
    )
    import_customers(db, request, QueueDefaults(), now=lambda: NOW - 3600)


def set_customer(db, queue_id, ext_id, **values):
    assignments = ', '.join(f'{name} = ?' for name in values)
    db.execute_sql(
        f'UPDATE customer SET {assignments} WHERE queue_id = ? AND ext_id = ?', (*values.values(), queue_id, ext_id)
    )


def add_attempt(db, customer_ext, queue_id, *, started, ended=None, **values):
    customer_id, mobiles = db.execute_sql(
        'SELECT id, mobiles FROM customer WHERE queue_id = ? AND ext_id = ?', (queue_id, customer_ext)
    ).fetchone()
    row = (
        dict(
            customer_id=customer_id,
            queue_id=queue_id,
            round=0,
            number=json.loads(mobiles)[0],
            uuid=str(uuid.uuid4()),
            job_uuid=str(uuid.uuid4()),
            state='done' if ended is not None else 'dialing',
            started_at=started,
            ended_at=ended,
        )
        | {'keys': ''}
        | values
    )
    db.execute_sql(f"INSERT INTO attempt ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


@pytest.fixture
def db_path(tmp_path):
    """A database with queue Q-A (10 customers in every state) and a stopped, empty-ish Q-B."""
    path = tmp_path / 'autocall.sqlite3'
    db = open_database(path)
    add_queue(db, 'Q-A', 10, concurrent_call=7)
    add_queue(db, 'Q-B', 2)
    set_running(db, 'Q-B', False)
    qa = 1
    for ext, state in (
        ('KH0000', 'success'),
        ('KH0001', 'success'),
        ('KH0002', 'failed'),
        ('KH0003', 'dnc'),
        ('KH0004', 'calling'),
        ('KH0005', 'calling'),
    ):
        set_customer(db, qa, ext, state=state)
    set_customer(db, qa, 'KH0006', next_call_at=NOW + 300)  # waits for a recall
    set_customer(db, qa, 'KH0007', next_call_at=NOW + 5)
    add_attempt(
        db,
        'KH0000',
        qa,
        started=NOW - 600,
        ended=NOW - 590,
        hangup_cause='NORMAL_CLEARING',
        talk_seconds=42.0,
        keys='9',
        outcome='success',
        result='promise_to_pay',
    )
    add_attempt(
        db,
        'KH0001',
        qa,
        started=NOW - 30,
        ended=NOW - 10,
        hangup_cause='NORMAL_CLEARING',
        talk_seconds=18.0,
        keys='',
        outcome='success',
    )
    add_attempt(
        db, 'KH0002', qa, started=NOW - 20, ended=NOW - 19, hangup_cause='USER_BUSY', talk_seconds=0.0, outcome='retry'
    )
    add_attempt(db, 'KH0004', qa, started=NOW - 5)
    add_attempt(db, 'KH0005', qa, started=NOW - 4)
    db.close()
    return path


def read(db_path, **kwargs):
    conn = status.open_readonly(db_path)
    try:
        return {q.code: q for q in status.read(conn, now=NOW, **kwargs)}
    finally:
        conn.close()


def test_read_counts_every_customer_state_and_attempt(db_path):
    qa = read(db_path)['Q-A']
    assert qa.counts == {'pending': 4, 'calling': 2, 'success': 2, 'failed': 1, 'dnc': 1, 'deleted': 0}
    assert (qa.total, qa.finished, qa.done) == (10, 4, False)
    assert qa.dialed == 5
    assert qa.calls_last_minute == 4


def test_read_splits_waiting_customers_into_due_now_and_recall_later(db_path):
    qa = read(db_path)['Q-A']
    assert (qa.due_now, qa.due_later) == (2, 2)


def test_read_lists_finished_calls_newest_first(db_path):
    recent = read(db_path)['Q-A'].recent
    assert [(o.customer, o.cause, o.outcome) for o in recent] == [
        ('KH0001', 'NORMAL_CLEARING', 'success'),
        ('KH0002', 'USER_BUSY', 'retry'),
        ('KH0000', 'NORMAL_CLEARING', 'success'),
    ]
    assert recent[2].result == 'promise_to_pay'


def test_read_shows_stopped_queues_and_hides_deleted_ones(db_path):
    db = open_database(db_path)
    add_queue(db, 'Q-C', 1)
    set_running(db, 'Q-C', False)
    delete_queue(db, 'Q-C')
    db.close()
    queues = read(db_path)
    assert list(queues) == ['Q-A', 'Q-B']
    assert queues['Q-B'].state == 'stopped'


def test_read_of_one_queue_returns_only_it(db_path):
    assert list(read(db_path, queue='Q-B')) == ['Q-B']
    assert read(db_path, queue='nope') == {}


def test_the_connection_cannot_write(db_path):
    db = status.open_readonly(db_path)
    with pytest.raises(peewee.OperationalError, match='readonly'):
        db.execute_sql("UPDATE queue SET state = 'stopped'")
    db.close()


def test_open_readonly_of_a_file_that_is_not_autocall_names_the_problem(tmp_path):
    other = tmp_path / 'other.sqlite3'
    sqlite3.connect(other).execute('CREATE TABLE t (a)').connection.close()
    with pytest.raises(status.StatusError, match='not an autocall database'):
        status.open_readonly(other)
    (tmp_path / 'junk').write_bytes(b'not sqlite at all' * 100)
    with pytest.raises(status.StatusError, match='cannot read it as an SQLite database'):
        status.open_readonly(tmp_path / 'junk')


def test_render_shows_state_progress_counts_and_last_calls(db_path):
    text = status.render(list(read(db_path).values()), now=NOW, tz=UTC)
    block_a = text.split("queue 'Q-B'")[0]
    assert "queue 'Q-A'  template 'IVR-1'  running" in block_a
    assert '4/10  40%' in block_a
    assert 'dialed 5  in call 2/7  calls/min 4' in block_a
    assert 'succeeded 2  failed 1  dnc 1  deleted 0' in block_a
    assert 'waiting 4: due now 2, recall later 2' in block_a
    assert "07:50:10 'KH0000' '0900000000' NORMAL_CLEARING talk 42s keys 9 success → promise_to_pay" in block_a
    assert "queue 'Q-B'  template 'IVR-1'  stopped" in text


def test_render_gives_the_reason_the_dialer_stopped_a_queue(db_path):
    db = open_database(db_path)
    db.execute_sql(
        "UPDATE queue SET state = 'stopped', stop_reason = 'gateway carrier9 does not exist' WHERE code = 'Q-A'"
    )
    db.close()
    text = status.render(list(read(db_path).values()), now=NOW, tz=UTC)
    assert "queue 'Q-A'  template 'IVR-1'  stopped — gateway carrier9 does not exist" in text


def test_render_of_no_queue_says_so():
    assert 'no live queue' in status.render([], now=NOW, tz=UTC)


def test_progress_bar_fills_in_proportion_and_survives_an_empty_queue():
    assert status.progress_bar(5, 10, width=10) == '[#####.....] 5/10  50%'
    assert status.progress_bar(0, 0, width=4) == '[....] 0/0   0%'


def test_watch_clears_a_terminal_and_appends_otherwise():
    views = iter(['one\n', 'two\n'])

    class Out(list):
        def write(self, text):
            self.append(text)

        def flush(self):
            pass

    tty, pipe = Out(), Out()
    status.watch(lambda: next(views), tty, interval=1, clear=True, sleep=lambda s: None, rounds=1)
    status.watch(lambda: next(views), pipe, interval=1, clear=False, sleep=lambda s: None, rounds=1)
    assert tty == [status.CLEAR_SCREEN + 'one\n']
    assert pipe == ['two\n\n']


def test_watch_stops_quietly_on_ctrl_c():
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        raise KeyboardInterrupt

    class Out:
        def write(self, text):
            pass

        def flush(self):
            pass

    status.watch(lambda: 'view\n', Out(), interval=3, clear=False, sleep=sleep)
    assert slept == [3]


def test_cli_status_prints_the_numbers(db_path):
    result = autocall('status', '--db', str(db_path))
    assert result.returncode == 0, result.stderr
    assert "queue 'Q-A'  template 'IVR-1'  running" in result.stdout
    assert 'succeeded 2  failed 1  dnc 1  deleted 0' in result.stdout
    assert "queue 'Q-B'" in result.stdout


def test_cli_status_finds_the_database_through_the_environment_like_the_services(db_path):
    result = autocall('status', '--queue', 'Q-B', env={'AUTOCALL_DB': str(db_path)})
    assert result.returncode == 0, result.stderr
    assert "queue 'Q-B'" in result.stdout and "queue 'Q-A'" not in result.stdout


def test_cli_status_reads_the_database_path_from_a_config_file(db_path, tmp_path):
    config = tmp_path / 'autocall.toml'
    config.write_text(f'[database]\npath = "{db_path.name}"\n', encoding='utf-8')
    result = autocall('status', '--config', str(config))
    assert result.returncode == 0, result.stderr
    assert "queue 'Q-A'" in result.stdout


def test_cli_status_of_a_missing_database_is_a_clear_error_with_exit_2(tmp_path):
    missing = tmp_path / 'nope.sqlite3'
    result = autocall('status', '--db', str(missing))
    assert result.returncode == 2
    assert result.stderr.strip() == f'autocall: no database at {missing}'
    assert not missing.exists()


def test_cli_status_of_an_unknown_queue_exits_1(db_path):
    result = autocall('status', '--db', str(db_path), '--queue', 'Q-404')
    assert result.returncode == 1
    assert "no live queue 'Q-404'" in result.stderr


def test_cli_status_watch_redraws_until_interrupted(db_path):
    proc = subprocess.Popen(
        [AUTOCALL, 'status', '--db', str(db_path), '--watch', '0.05'], stdout=subprocess.PIPE, text=True
    )
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("queue 'Q-A'")
        if seen == 3:
            break
    proc.send_signal(2)
    rest, _ = proc.communicate(timeout=10)
    assert seen == 3
    assert proc.returncode == 0
    assert status.CLEAR_SCREEN not in rest


def test_cli_status_does_not_write_the_database(db_path):
    before = db_path.read_bytes()
    assert autocall('status', '--db', str(db_path)).returncode == 0
    assert db_path.read_bytes() == before
