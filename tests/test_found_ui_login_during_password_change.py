"""Found by uireview: a login whose password was being checked while `autocall users password`
(or `remove`) ran still opened its session afterwards.

The console read the account's hash, checked the password against it on the compute thread
(0.1-0.3 s, longer with other logins queued there), then inserted the session row. A new
password or a removal in between deleted the account's sessions before that row existed, so
the session made with the old password survived the change that was meant to end it; after a
removal, the row pointed at an id SQLite gives to the next account added (INTEGER PRIMARY KEY
takes the highest id + 1), so it could become a session of someone else. The session is now
opened only if the account still has the hash the password was checked against, in the same
transaction."""

import pytest

from daemon import passwords
from daemon.store import operators
from daemon.store.schema import open_database
from tests.api_fixtures import rows
from tests.test_ui import add_account, log_in, stored


def change_password(db_path):
    db = open_database(db_path)  # another connection, as the `autocall users` process has
    with db.atomic():
        operators.change_user(db, "ana", password_hash=stored("another-password-2"), now=1.0)
    db.close()


def remove_then_add_another(db_path):
    db = open_database(db_path)
    with db.atomic():
        operators.remove_user(db, "ana")
        operators.add_user(db, "eve", operators.VIEWER, stored("eve-password-12"), now=1.0)
    db.close()


@pytest.mark.parametrize("meanwhile", [change_password, remove_then_add_another])
def test_an_account_changed_while_its_password_is_checked_gets_no_session(client, db, monkeypatch, meanwhile):
    add_account(db, "ana", operators.OPERATOR)
    real = passwords.verify_password

    def slow_verify(password, hashed):
        ok = real(password, hashed)
        meanwhile(db.database)  # the operator's command, between the check and the session
        return ok

    monkeypatch.setattr(passwords, "verify_password", slow_verify)
    answer = log_in(client, "ana")
    assert answer.status_code == 401
    assert rows(db, "SELECT COUNT(*) FROM ui_session") == [(0,)]
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    assert not [r for r in rows(db, "SELECT who, action FROM ui_audit") if r[1] == "login"]
