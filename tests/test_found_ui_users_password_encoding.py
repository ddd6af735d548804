"""Found by uireview: `autocall users add|password` fed a password that is not UTF-8 (a file
saved as Windows-1258, say) died with a traceback.

Python reads standard input with `surrogateescape`, so the bytes arrived as lone surrogates
and `hashlib.scrypt(password.encode())` raised UnicodeEncodeError out of the command. Such a
password could never be typed in the browser either (forms are UTF-8). It is now refused with
a sentence and exit status 2, and nothing is written; a UTF-8 password read through an ASCII
locale is taken as the UTF-8 the browser will send."""

import subprocess
import sys

import pytest

from daemon import passwords
from daemon.store import operators
from daemon.store.schema import open_database
from tests.api_fixtures import REPO


def users(db_path, *argv, stdin: bytes, **env):
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", "users", *argv],
        input=stdin,
        env={"PATH": "/usr/bin:/bin", "AUTOCALL_DB": str(db_path), **env},
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )


def accounts(db_path):
    db = open_database(db_path)
    try:
        return {user["name"] for user in operators.users(db)}
    finally:
        db.close()


@pytest.mark.parametrize("password", ["mat-khau-đà-đâu".encode("cp1258"), b"password-\xff\xfe\xfd"])
def test_a_password_that_is_not_utf8_is_refused_with_a_sentence(tmp_path, password):
    db_path = tmp_path / "autocall.sqlite3"
    done = users(db_path, "add", "ana", "--role", "viewer", stdin=password + b"\n")
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode() == "autocall: the password is not UTF-8 text; nothing changed\n"
    assert accounts(db_path) == set()


def test_a_utf8_password_read_through_an_ascii_locale_is_the_browsers_utf8(tmp_path):
    db_path = tmp_path / "autocall.sqlite3"
    open_database(db_path).close()  # made by the services' first start
    password = "mật-khẩu-dài-lắm"
    done = users(db_path, "add", "ana", "--role", "viewer", stdin=password.encode() + b"\n", LC_ALL="C", PYTHONUTF8="0")
    assert done.returncode == 0, done.stderr
    db = open_database(db_path)
    try:
        _, stored = operators.password_of(db, "ana")
    finally:
        db.close()
    assert passwords.verify_password(password, stored)
