"""The two backends: how the config names one, how each is opened, and the guarantees the
store's transactions rely on (writers one at a time, a read snapshot that stands still, a
read-only view that cannot write), proven on a real SQLite file and a real PostgreSQL server."""

import dataclasses
import threading
from pathlib import Path

import peewee as pw
import pytest

from daemon import cli
from daemon import config as config_mod
from daemon.config import QueueDefaults
from daemon.errors import EX_CONFIG, EX_TEMPFAIL, ConfigError, exit_code
from daemon.ledger import Ledger
from daemon.store import commands, customers, dnc, nodes, queue_state, reports, schedule, schema
from daemon.store import url as db_url
from daemon.store.records import ImportRequest, NewCustomer
from daemon.store.schema import execute
from tests.api_fixtures import free_port
from tests.pg_fixtures import close

NOW = 1_800_000_000.0


def add(db, *ext_ids, code="Q"):
    request = ImportRequest(code, "IVR-1", {}, [NewCustomer(x, ["0901000001"], {}) for x in ext_ids])
    return customers.import_customers(db, request, QueueDefaults(), now=lambda: NOW)


def add_raw(db, queue_id: int, code: str, people: dict[str, str]):
    """Queue `code` with `people` ({ext_id: state}) by plain INSERTs, as an older schema's import left them."""
    execute(
        db,
        "INSERT INTO queue (id, code, template, concurrent_call, max_recall_count, min_recall_duration, state,"
        " created_at, updated_at) VALUES (?, ?, 'IVR-1', 5, 3, 3, 'running', 0, 0)",
        (queue_id, code),
    )
    for ext_id, state in people.items():
        execute(
            db,
            "INSERT INTO customer (queue_id, ext_id, mobiles, fields, state, round, number_index, dead_numbers,"
            " next_call_at, created_at, updated_at) VALUES (?, ?, '[]', '{}', ?, 0, 0, '[]', 0, 0, 0)",
            (queue_id, ext_id, state),
        )


def count(db, table="customer") -> int:
    return execute(db, f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# --- naming the database ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("sqlite:///var/lib/autocall/autocall.sqlite3", Path("/var/lib/autocall/autocall.sqlite3")),
        ("sqlite:data/autocall.sqlite3", Path("/etc/autocall/data/autocall.sqlite3")),
    ],
)
def test_a_sqlite_url_names_a_file(value, expected):
    location = db_url.parse(value, base=Path("/etc/autocall"))
    assert (location.backend, location.path, str(location)) == ("sqlite", expected, str(expected))


def test_a_postgresql_url_is_kept_as_libpq_reads_it_and_prints_without_the_password():
    location = db_url.parse("postgres://dialer@db1:5433/autocall?sslmode=require", base=Path("/"), password="s3cret")
    assert location.backend == "postgresql"
    assert str(location) == location.dsn == "postgresql://dialer@db1:5433/autocall?sslmode=require"
    assert "s3cret" not in repr(location)


@pytest.mark.parametrize(
    "value, reason",
    [
        ("postgresql://dialer:s3cret@db1/autocall", "holds a password"),
        ("postgresql://dialer@db1/autocall?password=s3cret", "holds a password"),
        ("postgresql://dialer@db1", "names no database"),
        ("postgresql://dialer@db1:port/autocall", "not a valid"),
        ("sqlite://host/file", "sqlite:///absolute/path"),
        ("mysql://db1/autocall", "expected a sqlite: or postgresql:// URL"),
    ],
)
def test_a_bad_url_is_refused_with_the_reason_and_never_the_password(tmp_path, value, reason):
    (tmp_path / "a.toml").write_text(f'[database]\nurl = "{value}"\n')
    with pytest.raises(ConfigError, match=reason) as error:
        config_mod.load(tmp_path / "a.toml", environ={})
    assert str(error.value).startswith(f"config file {tmp_path / 'a.toml'}: database.url: ")
    assert "s3cret" not in str(error.value)


def test_the_config_takes_the_url_from_the_file_or_autocall_db_and_the_password_from_the_environment(tmp_path):
    (tmp_path / "a.toml").write_text('[database]\nurl = "postgresql://dialer@db1/autocall"\n')
    loaded = config_mod.load(tmp_path / "a.toml", environ={"AUTOCALL_DB_PASSWORD": "s3cret"})
    assert (str(loaded.database), loaded.database.password, loaded.db_path) == (
        "postgresql://dialer@db1/autocall",
        "s3cret",
        None,
    )
    # AUTOCALL_DB takes the place of the file's choice, whichever form either has.
    env = {"AUTOCALL_DB": str(tmp_path / "x.sqlite3")}
    assert config_mod.load(tmp_path / "a.toml", environ=env).db_path == tmp_path / "x.sqlite3"
    (tmp_path / "b.toml").write_text('[database]\npath = "a.sqlite3"\n')
    env = {"AUTOCALL_DB": "postgresql://dialer@db2/autocall"}
    assert str(config_mod.load(tmp_path / "b.toml", environ=env).database) == env["AUTOCALL_DB"]
    assert config_mod.load(tmp_path / "b.toml", environ={}).database == db_url.DatabaseUrl.sqlite(
        tmp_path / "a.sqlite3"
    )


def test_path_and_url_together_are_refused(tmp_path):
    (tmp_path / "a.toml").write_text('[database]\npath = "a.sqlite3"\nurl = "sqlite:b.sqlite3"\n')
    with pytest.raises(ConfigError, match="give one of them"):
        config_mod.load(tmp_path / "a.toml", environ={})


# --- opening ------------------------------------------------------------------------------


def test_a_wrong_password_is_a_configuration_error_that_does_not_show_it(pg_cluster):
    location = dataclasses.replace(pg_cluster.fresh(), password="wrong-password-x9")
    with pytest.raises(schema.StoreError) as error:
        schema.open_database(location)
    assert "password authentication failed" in str(error.value)
    assert "wrong-password-x9" not in str(error.value) and pg_cluster.password not in str(error.value)
    assert exit_code(error.value) == EX_CONFIG


def test_a_server_that_is_not_there_is_unavailable_not_misconfigured():
    location = db_url.DatabaseUrl("postgresql", dsn=f"postgresql://autocall@127.0.0.1:{free_port()}/autocall")
    with pytest.raises(schema.StoreUnavailable) as error:
        schema.open_database(location)
    assert exit_code(error.value) == EX_TEMPFAIL


def test_a_database_of_a_newer_schema_is_refused(store_db, store_url):
    schema.dialect_of(store_db).set_schema_version(store_db, schema.SCHEMA_VERSION + 1)
    close(store_db)
    with pytest.raises(schema.StoreError, match="upgrade autocall"):
        schema.open_database(store_url)


def test_opening_again_migrates_nothing_and_keeps_the_rows(store_db, store_url):
    add(store_db, "A")
    again = schema.open_database(store_url)
    try:
        assert schema.dialect_of(again).schema_version(again) == schema.SCHEMA_VERSION
        assert count(again) == 1
    finally:
        close(again)


def test_a_schema_2_database_gains_the_attempt_node_column_and_keeps_its_calls(store_url):
    old = schema._backend(store_url).connect(store_url, busy_timeout=5.0)  # nothing migrated yet
    for migration in schema.MIGRATIONS[:2]:
        migration(old)
    execute(old, "ALTER TABLE attempt DROP COLUMN node")  # _v1 made it from today's model
    schema.dialect_of(old).set_schema_version(old, 2)
    add_raw(old, 1, "Q", {"A": "pending"})
    execute(
        old,
        "INSERT INTO attempt (customer_id, queue_id, round, number, uuid, job_uuid, state, started_at, keys)"
        " SELECT id, queue_id, 0, '0901000001', 'u1', 'j1', 'dialing', 0, '' FROM customer",
    )
    close(old)
    db = schema.open_database(store_url)
    try:
        assert execute(db, "SELECT uuid, node FROM attempt").fetchall() == [("u1", None)]
        assert [c.uuid for c in reports.open_attempts(db, "pbx1")] == ["u1"]
    finally:
        close(db)


def test_on_postgresql_the_claim_passes_over_a_customer_another_transaction_holds(pg_cluster):
    location = pg_cluster.fresh()
    db = schema.open_database(location, busy_timeout=2.0)
    add(db, "A", "B")
    import psycopg

    # A plain connection, outside the store's write lock: what another node's claim will be.
    with psycopg.connect(location.dsn, password=location.password) as other:
        other.execute("SELECT id FROM customer WHERE ext_id = 'A' FOR UPDATE")
        [queue] = reports.running_queues(db)
        with db.atomic():
            claims = customers.claim_many(db, queue, 2, now=NOW + 1, day_start=0, next_day=NOW + 86400, daily_cap=5)
        assert [c.ext_id for c in claims] == ["B"]
    close(db)


def test_on_postgresql_the_change_count_moves_once_per_committed_transaction_and_only_then(pg_cluster):
    """What an idle dialer's look at its queues rests on (Dialect.change_token): another
    connection sees the count move when a write to customer or queue commits, not before; a
    transaction of many statements (a copy of a million rows) moves it once; a savepoint
    rolled back takes its move with it; a heartbeat does not move it."""
    location = pg_cluster.fresh()
    db = schema.open_database(location, busy_timeout=2.0)
    dialect = schema.dialect_of(db)
    watcher = schema.open_database(location, busy_timeout=2.0)
    try:
        add(db, "A")
        start = dialect.change_token(watcher)
        with db.atomic():
            for _ in range(1000):
                execute(db, "UPDATE customer SET next_call_at = next_call_at + 1")
            assert dialect.change_token(watcher) == start  # not committed yet
        assert dialect.change_token(watcher) == start + 1
        with db.atomic():
            with pytest.raises(RuntimeError), db.atomic():
                execute(db, "UPDATE queue SET concurrent_call = 3")
                raise RuntimeError("rolled back to the savepoint")
            execute(db, "UPDATE customer SET next_call_at = next_call_at + 1")
        assert dialect.change_token(watcher) == start + 2
        with db.atomic():
            nodes.beat(db, "n1", grace=60, recall_delay=60)
            execute(db, "SELECT COUNT(*) FROM customer")
        assert dialect.change_token(watcher) == start + 2
    finally:
        close(watcher)
        close(db)


def test_on_postgresql_a_write_left_open_outside_autocall_holds_up_no_claim_of_another_customer(pg_cluster):
    """The change count's one row is taken at COMMIT only: psql left in a transaction that
    wrote one customer does not make every writer wait on the row (the claim passes over
    that customer, as before the count)."""
    location = pg_cluster.fresh()
    db = schema.open_database(location, busy_timeout=1.0)
    people = [NewCustomer("A1", ["0901000001"], {}), NewCustomer("A2", ["0901000002"], {})]
    customers.import_customers(db, ImportRequest("Q", "IVR-1", {}, people), QueueDefaults(), now=lambda: NOW)
    import psycopg

    try:
        with psycopg.connect(location.dsn, password=location.password) as psql:
            psql.execute("UPDATE customer SET fields = fields WHERE ext_id = 'A1'")  # and left open
            ledger = Ledger(db)
            [queue] = ledger.running_queues()
            claims = ledger.claim_many(queue, 2, now=NOW + 1, day_start=0, next_day=NOW + 86400, daily_cap=5)
            assert [c.ext_id for c in claims] == ["A2"]
            psql.rollback()
    finally:
        close(db)


def test_on_postgresql_a_look_at_the_queues_that_failed_is_not_taken_for_one_that_read_them(pg_cluster):
    """A DBA's VACUUM FULL holds `customer` past the lock timeout: the look fails after the
    count was read, and the next look must still read the queues (Q2 was imported before)."""
    location = pg_cluster.fresh()
    db, api = schema.open_database(location, busy_timeout=0.3), schema.open_database(location)
    import psycopg

    try:
        ledger = Ledger(db, node="n1")
        add(api, "A1")
        assert [q.code for q in ledger.changed_running_queues()] == ["Q"]
        add(api, "B1", code="Q2")
        with psycopg.connect(location.dsn, password=location.password) as dba:
            dba.execute("LOCK TABLE customer IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(schema.StoreBusy):
                ledger.changed_running_queues()
            dba.rollback()
        assert [q.code for q in ledger.changed_running_queues()] == ["Q", "Q2"]
    finally:
        close(db)
        close(api)


def test_on_postgresql_a_session_whose_search_path_lacks_the_schema_still_writes_customers(pg_cluster):
    """pg_dump's output sets search_path to '' and names every table with its schema: the
    change triggers must not need the schema on the path."""
    location = pg_cluster.fresh()
    db = schema.open_database(location)
    add(db, "A1")
    name = execute(db, "SELECT current_schema()").fetchone()[0]
    start = schema.dialect_of(db).change_token(db)
    import psycopg

    try:
        with psycopg.connect(location.dsn, password=location.password, autocommit=True) as psql:
            psql.execute("SELECT pg_catalog.set_config('search_path', '', false)")
            psql.execute(f"UPDATE {name}.customer SET next_call_at = next_call_at + 1 WHERE ext_id = 'A1'")
            psql.execute(f"DELETE FROM {name}.customer WHERE ext_id = 'A1'")  # and the count's trigger too
        assert schema.dialect_of(db).change_token(db) == start + 2
    finally:
        close(db)


def test_a_claimed_batch_is_looked_at_again_before_dialing_and_keeps_only_who_may_still_be_called(store_db):
    for code, ids in (("Q", "ABC"), ("R", "E")):
        people = [NewCustomer(x, [f"09010000{ord(x)}"], {}) for x in ids]
        customers.import_customers(store_db, ImportRequest(code, "IVR-1", {}, people), QueueDefaults(), now=lambda: NOW)
    with store_db.atomic():
        claims = [
            claim
            for queue in reports.running_queues(store_db)
            for claim in customers.claim_many(store_db, queue, 3, now=NOW + 1, day_start=0, next_day=NOW, daily_cap=0)
        ]
    attempt = {c.ext_id: c.attempt_id for c in claims}
    assert len(attempt) == 4 and customers.still_to_dial(store_db, claims) == set(attempt.values())
    commands.block(store_db, "Q", ["B"])
    dnc.block_numbers(store_db, [f"09010000{ord('C')}"])
    assert customers.still_to_dial(store_db, claims) == {attempt["A"], attempt["E"]}
    queue_state.set_running(store_db, "Q", False)
    assert customers.still_to_dial(store_db, claims) == {attempt["E"]}
    commands.delete_queue(store_db, "Q")
    assert customers.still_to_dial(store_db, claims) == {attempt["E"]}
    assert customers.still_to_dial(store_db, []) == set()


def test_concurrent_call_holds_across_dialers_sharing_the_database(store_db):
    people = [NewCustomer(x, [f"09010000{ord(x)}"], {}) for x in "ABCDE"]
    request = ImportRequest("Q", "IVR-1", {"concurrent_call": 3}, people)
    customers.import_customers(store_db, request, QueueDefaults(), now=lambda: NOW)
    [queue] = reports.running_queues(store_db)

    def claim(node, limit):
        with store_db.atomic():
            return customers.claim_many(
                store_db, queue, limit, now=NOW + 1, day_start=0, next_day=NOW, daily_cap=0, node=node
            )

    assert len(claim("pbx1", 2)) == 2
    assert len(claim("pbx2", 32)) == 1  # its own room is 32; the queue's is 3, two of them taken
    assert claim("pbx2", 32) == []
    with store_db.atomic():  # pbx1's first call given back: one place free again
        customers.abandon(store_db, reports.open_attempts(store_db, "pbx1")[0], cause="X", now=NOW + 2)
    assert len(claim("pbx2", 32)) == 1


def test_channels_no_open_attempt_has_are_told_from_any_nodes_open_calls(store_db):
    # What reconciliation kills (daemon/reconcile.py): a channel whose attempt is closed, or unknown.
    people = [NewCustomer(x, [f"09010000{ord(x)}"], {}) for x in "ABC"]
    customers.import_customers(store_db, ImportRequest("Q", "IVR-1", {}, people), QueueDefaults(), now=lambda: NOW)
    [queue] = reports.running_queues(store_db)
    with store_db.atomic():
        one = customers.claim_many(store_db, queue, 2, now=NOW + 1, day_start=0, next_day=NOW, daily_cap=0, node="pbx1")
        two = customers.claim_many(store_db, queue, 1, now=NOW + 1, day_start=0, next_day=NOW, daily_cap=0, node="pbx2")
    with store_db.atomic():
        customers.abandon(store_db, one[0], cause="X", now=NOW + 2)
    uuids = [one[0].uuid, one[1].uuid, two[0].uuid, "not-ours"] + [f"u{i}" for i in range(600)]  # past one chunk
    assert reports.unowned(store_db, uuids) == {one[0].uuid, "not-ours", *(f"u{i}" for i in range(600))}


def test_a_dnc_list_and_an_import_past_postgresqls_65535_parameters_go_through_in_one_chunk(pg_cluster):
    location = pg_cluster.fresh()
    db = schema.open_database(location)
    add(db, "K0")
    ids = [f"K{i}" for i in range(70_000)]
    assert customers.block(db, "Q", ids, chunk=70_000) is True
    request = ImportRequest("Q", "IVR-1", {}, [NewCustomer(x, ["0901000001"], {}) for x in ids])
    result = customers.import_customers(db, request, QueueDefaults(), chunk=70_000, now=lambda: NOW)
    assert (len(result.success), len(result.rejected)) == (0, 70_000)
    assert execute(db, "SELECT state, COUNT(*) FROM customer GROUP BY state").fetchall() == [("dnc", 1)]
    close(db)


def test_on_postgresql_a_large_import_leaves_the_planner_knowing_the_customer_table(pg_cluster):
    location = pg_cluster.fresh()
    db = schema.open_database(location)
    add(db, *[f"K{i}" for i in range(commands.BULK)])
    reltuples = "SELECT reltuples FROM pg_class WHERE oid = to_regclass('customer')"
    assert execute(db, reltuples).fetchone()[0] == commands.BULK  # not -1: "never analysed"
    close(db)


# --- the guarantees the transactions rely on ----------------------------------------------


def test_writers_take_turns_and_one_that_waits_too_long_gives_up_cleanly(store_db, store_url):
    add(store_db, "A")
    other = schema.open_database(store_url, busy_timeout=0.3)
    held, release = threading.Event(), threading.Event()

    def hold_the_write_lock():
        with store_db.atomic():
            execute(store_db, "UPDATE customer SET round = 1")
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        held.wait(10)
        with pytest.raises(pw.OperationalError):  # another table: only a lock on every write stops it
            with other.atomic():
                execute(other, "INSERT INTO dnc_number (number, created_at) VALUES ('0909000001', 0)")
    finally:
        release.set()
        holder.join()
    with other.atomic():  # the same connection, usable again once the lock is free
        execute(other, "INSERT INTO dnc_number (number, created_at) VALUES ('0909000002', 0)")
    assert execute(store_db, "SELECT number FROM dnc_number").fetchall() == [("0909000002",)]
    assert execute(store_db, "SELECT round FROM customer").fetchone() == (1,)
    close(other)


def test_a_read_snapshot_does_not_see_what_commits_meanwhile(store_db, store_url):
    add(store_db, "A")
    writer = schema.open_database(store_url)
    try:
        with schema.read_snapshot(store_db):
            assert count(store_db) == 1
            add(writer, "B")
            assert count(store_db) == 1
        assert count(store_db) == 2
    finally:
        close(writer)


def test_the_read_only_view_reads_the_queues_and_cannot_write(store_db, store_url):
    add(store_db, "A")
    view = schema.open_readonly(store_url)
    try:
        assert [s.counts["pending"] for s in reports.queue_statuses(view, now=NOW)] == [1]
        with pytest.raises(pw.DatabaseError):
            execute(view, "UPDATE customer SET round = 5")
        assert execute(store_db, "SELECT round FROM customer").fetchone() == (0,)
    finally:
        close(view)


def test_the_read_only_view_refuses_a_database_without_the_schema(store_url):
    if store_url.backend == "sqlite":
        store_url.path.write_bytes(b"")
    with pytest.raises(schema.StoreError, match="not an autocall database"):
        schema.open_readonly(store_url)


def test_autocall_status_reads_either_backend_from_db(store_db, store_url, monkeypatch, capsys):
    add(store_db, "A", code="Autocall-Q1")
    monkeypatch.setenv(db_url.PASSWORD_ENV, store_url.password or "")
    where = str(store_url.path) if store_url.backend == "sqlite" else store_url.dsn
    assert cli.main(["status", "--db", where]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Autocall-Q1" in out and "waiting 1" in out


def test_a_node_silent_past_the_grace_has_its_open_calls_closed_once_by_another_node(store_db):
    people = [NewCustomer(x, [f"09010000{ord(x)}"], {}) for x in "ABC"]
    customers.import_customers(
        store_db, ImportRequest("Q", "IVR-1", {"concurrent_call": 5}, people), QueueDefaults(), now=lambda: NOW
    )
    [queue] = reports.running_queues(store_db)
    with store_db.atomic():
        nodes.beat(store_db, "pbx1", grace=100, recall_delay=0)
        mine = customers.claim_many(store_db, queue, 2, now=NOW, day_start=0, next_day=NOW, daily_cap=0, node="pbx1")
        unnamed = customers.claim_many(store_db, queue, 1, now=NOW, day_start=0, next_day=NOW, daily_cap=0)
        customers.mark_answered(store_db, mine[0].attempt_id, NOW + 1)

    def beat(name):
        with store_db.atomic():
            return nodes.beat(store_db, name, grace=100, recall_delay=0)

    assert beat("pbx2") == {}  # pbx1 beat just now
    execute(store_db, "UPDATE node SET beat_at = beat_at - 101 WHERE name = 'pbx1'")
    assert beat("pbx1") == {}  # a node never takes itself over; its beat is fresh again
    execute(store_db, "UPDATE node SET beat_at = beat_at - 101 WHERE name = 'pbx1'")
    assert beat("pbx2") == {"pbx1": 2}
    assert beat("pbx2") == {}  # once
    closed = execute(store_db, "SELECT id, hangup_cause, outcome FROM attempt WHERE state = 'done' ORDER BY id")
    assert closed.fetchall() == [(c.attempt_id, "NODE_LOST", "interrupted") for c in mine]
    states = dict(execute(store_db, "SELECT ext_id, state FROM customer").fetchall())
    assert states == {mine[0].ext_id: "pending", mine[1].ext_id: "pending", unnamed[0].ext_id: "calling"}
    assert execute(store_db, "SELECT name FROM node ORDER BY name").fetchall() == [("pbx2",)]


def test_each_running_queue_is_read_with_the_time_its_first_pending_customer_is_due(store_db):
    for code, ids in (("Q", "ABC"), ("R", "D"), ("S", "E")):
        people = [NewCustomer(x, [f"09010000{ord(x)}"], {}) for x in ids]
        customers.import_customers(store_db, ImportRequest(code, "IVR-1", {}, people), QueueDefaults(), now=lambda: NOW)
    execute(store_db, "UPDATE customer SET next_call_at = ? WHERE ext_id = 'B'", (NOW - 50,))
    execute(store_db, "UPDATE customer SET next_call_at = ?, state = 'calling' WHERE ext_id = 'A'", (NOW - 90,))
    execute(store_db, "UPDATE customer SET next_call_at = ? WHERE ext_id = 'C'", (NOW + 10,))
    execute(store_db, "UPDATE customer SET state = 'success' WHERE ext_id = 'D'")
    queue_state.set_running(store_db, "S", False)
    due = {q.code: q.next_due for q in reports.running_queues(store_db)}
    assert due == {"Q": NOW - 50, "R": None}  # A is in a call; R has nobody pending; S is stopped


def test_a_node_beats_with_its_status_line_and_is_read_back_with_its_age(store_db):
    nodes.beat(store_db, "pbx1", grace=60, recall_delay=60, status="12 calls in progress")
    nodes.beat(store_db, "pbx2", grace=60, recall_delay=60)
    execute(store_db, "UPDATE node SET beat_at = beat_at - 100 WHERE name = 'pbx2'")
    [(one, age1, said1), (two, age2, said2)] = nodes.states(store_db)
    assert (one, said1, two, said2) == ("pbx1", "12 calls in progress", "pbx2", None)
    assert 0 <= age1 < 5 and 100 <= age2 < 105


# --- a step of the wall clock seen by several daemons -----------------------------------------


def test_daemons_of_one_host_that_all_see_a_wall_clock_step_move_each_wait_once(store_db):
    db = store_db
    add(db, "WAIT", "DUE")
    # WAIT was told to call again 60 s after NOW; DUE is due since NOW.
    execute(db, "UPDATE customer SET next_call_at = ?, updated_at = ? WHERE ext_id = 'WAIT'", (NOW + 60, NOW))
    step = 600.0  # the host's clock jumps forward 10 minutes, 5 s after NOW
    for seen_after in (0.0, 0.4, 1.3):  # three daemons notice it at their next tick
        with db.atomic():
            schedule.follow_wall_step(db, expected=NOW + 5, jump=step, wall=NOW + 5 + step + seen_after)
    times = dict(execute(db, "SELECT ext_id, next_call_at FROM customer").fetchall())
    assert times == {"WAIT": NOW + 60 + step, "DUE": NOW}  # moved once; what was due stays due
    # A step of the same size a day later is another step: it moves a wait again.
    later = NOW + 86400
    execute(db, "UPDATE customer SET next_call_at = ?, updated_at = ? WHERE ext_id = 'WAIT'", (later + 60, later))
    with db.atomic():
        schedule.follow_wall_step(db, expected=later + 5, jump=step, wall=later + 5 + step)
    assert execute(db, "SELECT next_call_at FROM customer WHERE ext_id = 'WAIT'").fetchone()[0] == later + 60 + step


def test_a_wait_another_daemon_wrote_after_a_step_forward_is_not_moved_by_the_step(store_db):
    db = store_db
    add(db, "OLD", "NEW")
    step, expected = 600.0, NOW + 5
    # OLD waits since before the step; NEW was written by a daemon that read the new clock.
    execute(db, "UPDATE customer SET next_call_at = ?, updated_at = ? WHERE ext_id = 'OLD'", (NOW + 60, NOW))
    written = expected + step + 0.1
    execute(db, "UPDATE customer SET next_call_at = ?, updated_at = ? WHERE ext_id = 'NEW'", (written + 1, written))
    with db.atomic():
        schedule.follow_wall_step(db, expected=expected, jump=step, wall=expected + step + 0.5)
    times = dict(execute(db, "SELECT ext_id, next_call_at FROM customer").fetchall())
    assert times == {"OLD": NOW + 60 + step, "NEW": written + 1}


def test_a_recall_whose_wait_had_run_out_stays_due_after_a_step_back(store_db):
    # Found by the call-safety review: only waits still ahead moved, and only import stamps came
    # down, so a recall due but not yet claimed waited up to the whole step again.
    db = store_db
    add(db, "RAN_OUT", "AHEAD", "LONG_AGO")
    step, expected = -600.0, NOW + 5  # the clock goes back 10 minutes 5 s after NOW
    rows = {
        "RAN_OUT": (NOW - 30, NOW - 630),  # a recall 600 s after a call's end, due 30 s before the step
        "AHEAD": (NOW + 60, NOW),  # a wait still ahead: it moves by the step
        "LONG_AGO": (expected + step - 10, NOW - 2000),  # due by either clock: left as it is
    }
    for ext, (next_call_at, updated_at) in rows.items():
        execute(
            db, "UPDATE customer SET next_call_at = ?, updated_at = ? WHERE ext_id = ?", (next_call_at, updated_at, ext)
        )
    wall = expected + step + 0.5
    with db.atomic():
        assert schedule.follow_wall_step(db, expected=expected, jump=step, wall=wall) == 2
    times = dict(execute(db, "SELECT ext_id, next_call_at FROM customer").fetchall())
    assert times == {"RAN_OUT": wall, "AHEAD": NOW + 60 + step, "LONG_AGO": expected + step - 10}
    with db.atomic():  # and the second look a few seconds later leaves them so
        schedule.bring_due_down(db, wall=wall + 5, jump=step)
    due = {ext for (ext,) in execute(db, "SELECT ext_id FROM customer WHERE next_call_at <= ?", (wall + 5,))}
    assert due == {"RAN_OUT", "LONG_AGO"}


def test_writes_read_before_a_step_back_and_landing_after_it_follow_the_step_a_few_seconds_later(store_db):
    db = store_db
    add(db, "RESULT", "IMPORT", "ELAPSED", "NEW", "SKEW")
    step, wall = -600.0, NOW  # the clock went back 10 minutes 5 s ago; it reads NOW
    rows = {
        "RESULT": (NOW + 600 - 1 + 60, NOW + 600 - 1),  # a call's end: call again in 60 s, old reckoning
        "IMPORT": (NOW + 600 - 2, NOW + 600 - 2),  # imported: due, old reckoning
        "ELAPSED": (NOW - 5 + 600 - 1, NOW - 5 + 600 - 3),  # its 2 s wait ran out just before the step
        "NEW": (NOW - 1 + 60, NOW - 1),  # a call's end in the new reckoning
        "SKEW": (NOW + 2 + 60, NOW + 2),  # another host's clock, 2 s ahead
    }
    for ext, (next_call_at, updated_at) in rows.items():
        execute(
            db, "UPDATE customer SET next_call_at = ?, updated_at = ? WHERE ext_id = ?", (next_call_at, updated_at, ext)
        )
    with db.atomic():
        assert schedule.bring_due_down(db, wall=wall, jump=step) == 3  # RESULT, IMPORT, ELAPSED: by the step
    times = dict(execute(db, "SELECT ext_id, next_call_at FROM customer").fetchall())
    assert times == {
        "RESULT": NOW - 1 + 60,
        "IMPORT": NOW - 2,
        "ELAPSED": NOW - 5 - 1,  # due, as it was when the clock stepped
        "NEW": NOW - 1 + 60,
        "SKEW": NOW + 2 + 60,
    }
    with db.atomic():  # a second daemon of the host looks again: nothing is moved twice
        assert schedule.bring_due_down(db, wall=wall + 0.5, jump=step) == 0
