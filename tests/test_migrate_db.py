"""`autocall migrate-db`: an installation's rows, made by the store's own transitions in a real
SQLite file, copied into a real PostgreSQL server (and back into a new SQLite file), every row
equal, ids kept, and the copy going on where the old one left off."""

from zoneinfo import ZoneInfo

import pytest

from daemon import cli
from daemon.config import QueueDefaults
from daemon.store import commands, customers, dnc, operators, outbox, queue_state, reports, schema, transfer
from daemon.store import url as db_url
from daemon.store.records import CallReport, ImportRequest, NewCustomer
from daemon.store.schema import execute
from daemon.webhooks import Webhook
from tests.pg_fixtures import close

NOW = 1_800_000_000.0
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def installation(path):
    """An SQLite installation with every kind of row: three queues (one deleted, one stopped),
    calls made and finished, one open, both DNC lists, events delivered to a webhook or waiting,
    a console account with a session (not copied) and a line of its audit log."""
    db = schema.open_database(path)
    for code, ids in (("Q1", "ABCDE"), ("Q2", "FG")):
        people = [NewCustomer(x, [f"09010000{ord(x)}", f"09020000{ord(x)}"], {"n": ord(x), "s": "Nguyễn"}) for x in ids]
        commands.import_customers(db, ImportRequest(code, "IVR-1", {}, people), QueueDefaults(), now=lambda: NOW)
    queues = {q.code: q for q in reports.running_queues(db)}
    with db.atomic():
        claims = customers.claim_many(db, queues["Q1"], 3, now=NOW + 1, day_start=0, next_day=NOW + 9e4, daily_cap=0)
        answered = CallReport(NOW + 2, NOW + 30.25, 28.25, "NORMAL_CLEARING", "200", keys="1", result="promise")
        customers.finish(db, claims[0], answered, recall_delay=60)
        customers.finish(db, claims[1], CallReport(None, NOW + 5, 0.0, "USER_BUSY", "486"), recall_delay=60)
    commands.block(db, "Q1", ["D"], now=lambda: NOW + 6)
    commands.block(db, "LATER", ["X"], now=lambda: NOW + 6)  # for a queue still to come
    dnc.block_numbers(db, ["0909999999"], now=lambda: NOW + 7)
    queue_state.set_running(db, "Q2", False, now=lambda: NOW + 8)
    commands.delete_queue(db, "Q2", now=lambda: NOW + 9)
    with db.atomic():  # the events so far become deliveries to one webhook; the next ones wait
        outbox.fan_out(db, [Webhook("crm", "https://crm.example/h", "S").endpoint()], now=NOW + 10, tz=TZ)
    people = [NewCustomer("H", ["0903000001"], {})]
    commands.import_customers(db, ImportRequest("Q3", "IVR-1", {}, people), QueueDefaults(), now=lambda: NOW + 11)
    queue_state.set_running(db, "Q3", False, now=lambda: NOW + 12)
    with db.atomic():
        ana = operators.add_user(db, "ana", operators.OPERATOR, "scrypt$stored-hash", now=NOW + 13)
        operators.open_session(db, ana, "token", "csrf", now=NOW + 13)
        operators.record(db, "ana", "queue.stop", target="Q3", now=NOW + 14)
    return db


def rows(db) -> dict:
    """Every row of every table, and the counts the database keeps per queue and state."""
    tables = {table: execute(db, f"SELECT * FROM {table} ORDER BY id").fetchall() for table in transfer.TABLES}
    counts = execute(db, "SELECT queue_id, state, n FROM queue_count WHERE n != 0 ORDER BY 1, 2").fetchall()
    return {**tables, "queue_count": counts}


def migrate(*argv) -> int:
    return cli.main(["migrate-db", *argv])


def test_every_row_moves_to_postgresql_and_back_ids_kept_and_new_rows_numbered_after_them(
    tmp_path, pg_cluster, monkeypatch, capsys
):
    old = installation(tmp_path / "old.sqlite3")
    before = rows(old)
    assert all(before.values()) and len(before["attempt"]) == 3
    target = pg_cluster.fresh()
    monkeypatch.setenv(db_url.PASSWORD_ENV, target.password)

    assert migrate("--from", str(tmp_path / "old.sqlite3"), "--to", target.dsn) == 0
    out, err = capsys.readouterr()
    copied = (
        "copied 3 queue, 8 customer, 3 attempt, 2 dnc, 1 dnc_number, 6 outbox, 5 delivery, 1 ui_user, 1 ui_audit from"
    )
    assert copied in out and target.password not in out + err
    assert "customer: 8/8" in err
    new = schema.open_database(target)
    try:
        assert rows(new) == before
        # The copy goes on: the next rows get ids after the copied ones, and the open call is still open.
        [queue] = reports.running_queues(new)
        assert [c.uuid for c in reports.open_attempts(new, None)] == [before["attempt"][2][5]]
        with new.atomic():
            [claim] = customers.claim_many(new, queue, 1, now=NOW + 99, day_start=0, next_day=NOW + 9e4, daily_cap=0)
        assert claim.attempt_id == max(row[0] for row in before["attempt"]) + 1
        commands.block(new, "Q1", ["E"], now=lambda: NOW + 100)
        assert execute(new, "SELECT MAX(id) FROM dnc").fetchone()[0] == len(before["dnc"]) + 1
        after = rows(new)
    finally:
        close(new)

    assert migrate("--from", target.dsn, "--to", str(tmp_path / "back.sqlite3")) == 0
    back = schema.open_database(tmp_path / "back.sqlite3")
    assert rows(back) == after
    back.close()
    old.close()


def test_a_destination_that_holds_rows_is_refused_and_left_as_it_was(tmp_path, capsys):
    installation(tmp_path / "old.sqlite3").close()
    assert migrate("--from", str(tmp_path / "old.sqlite3"), "--to", str(tmp_path / "new.sqlite3")) == 0
    copied = rows(schema.open_database(tmp_path / "new.sqlite3"))
    capsys.readouterr()
    assert migrate("--from", str(tmp_path / "old.sqlite3"), "--to", str(tmp_path / "new.sqlite3")) == 1
    assert "already holds rows (3 in queue, 8 in customer" in capsys.readouterr().err
    assert rows(schema.open_database(tmp_path / "new.sqlite3")) == copied


def test_a_copy_that_fails_half_way_leaves_the_destination_empty(tmp_path, store_url):
    source = installation(tmp_path / "old.sqlite3")
    dest = schema.open_database(store_url)

    def fail_at_attempts(table, done, total):
        if table == "attempt":
            raise schema.StoreUnavailable("the disk is full")

    try:
        with pytest.raises(schema.StoreUnavailable):
            transfer.copy_store(source, dest, progress=fail_at_attempts)
        assert not any(rows(dest).values())
        assert transfer.copy_store(source, dest)["customer"] == 8  # and a second try goes through
    finally:
        close(dest)
        source.close()


def test_the_same_database_as_source_and_destination_or_a_bad_url_is_a_usage_error(tmp_path, capsys):
    installation(tmp_path / "old.sqlite3").close()
    assert migrate("--from", str(tmp_path / "old.sqlite3"), "--to", str(tmp_path / "old.sqlite3")) == 2
    assert "both the source and the destination" in capsys.readouterr().err
    assert migrate("--from", str(tmp_path / "old.sqlite3"), "--to", "postgresql://u:secret@h/db") == 2
    err = capsys.readouterr().err
    assert "holds a password" in err and "secret" not in err


def test_a_source_that_does_not_exist_is_refused_not_made_and_copied_empty(tmp_path, capsys):
    # Found by the careless-operator review: a mistyped --from (or no --config at all) made an
    # empty database there, "copied 0 queue, 0 customer" into the new one and exited 0.
    typo = tmp_path / "typo" / "autocall.sqlite3"
    assert migrate("--from", str(typo), "--to", str(tmp_path / "new.sqlite3")) == 2
    assert f"no database at {typo}" in capsys.readouterr().err
    assert not typo.parent.exists() and not (tmp_path / "new.sqlite3").exists()
    schema.open_database(tmp_path / "empty.sqlite3").close()
    assert migrate("--from", str(tmp_path / "empty.sqlite3"), "--to", str(tmp_path / "new.sqlite3")) == 0
    assert "held no queue; is it the database the services use?" in capsys.readouterr().err
