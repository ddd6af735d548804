"""The operator's web console in the store: accounts (`ui_user`), their sessions (`ui_session`)
and the audit log of what each operator did (`ui_audit`). Schema version 9.

Accounts are made by `autocall users` (daemon/cli_users.py), never by the web: a role is
`viewer` (sees) or `operator` (also stops and starts queues and adds DNC ids). A session row
is keyed by the SHA-256 of the cookie's random token, so the table alone lets nobody in.
Functions run inside the caller's transaction unless they say otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

import peewee as pw

from daemon.errors import AutocallError
from daemon.store.dialect import Dialect
from daemon.store.schema import execute, insert

VIEWER, OPERATOR = "viewer", "operator"
ROLES = (VIEWER, OPERATOR)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class UserExists(AutocallError):
    """An account of that name exists already."""


class UserNotFound(AutocallError):
    """No account has that name."""


def create(db: pw.Database, dialect: Dialect):
    """The three tables (schema 9)."""
    real = dialect.real_column
    db.execute_sql(
        f"CREATE TABLE ui_user (id {dialect.id_column}, name TEXT NOT NULL, role TEXT NOT NULL,"
        f" password_hash TEXT NOT NULL, created_at {real} NOT NULL, updated_at {real} NOT NULL)"
    )
    db.execute_sql("CREATE UNIQUE INDEX ui_user_name ON ui_user(name)")
    db.execute_sql(
        "CREATE TABLE ui_session (token_hash TEXT NOT NULL PRIMARY KEY, user_id INTEGER NOT NULL,"
        f" csrf TEXT NOT NULL, created_at {real} NOT NULL, seen_at {real} NOT NULL)"
    )
    db.execute_sql("CREATE INDEX ui_session_user ON ui_session(user_id)")
    db.execute_sql(
        f"CREATE TABLE ui_audit (id {dialect.id_column}, at {real} NOT NULL, who TEXT NOT NULL,"
        " action TEXT NOT NULL, target TEXT, detail TEXT)"
    )


def valid_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None


# --- accounts -----------------------------------------------------------------------------


def add_user(db: pw.Database, name: str, role: str, password_hash: str, *, now: float) -> int:
    """A new account; UserExists if the name is taken."""
    if execute(db, "SELECT 1 FROM ui_user WHERE name = ?", (name,)).fetchone():
        raise UserExists(name)
    return insert(
        db,
        "INSERT INTO ui_user (name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (name, role, password_hash, now, now),
    )


def change_user(db: pw.Database, name: str, *, now: float, role: str | None = None, password_hash: str | None = None):
    """A new role and/or password for `name` (UserNotFound); its sessions end, so a new
    password or a lower role holds from now on."""
    user_id = _user_id(db, name)
    execute(
        db,
        "UPDATE ui_user SET role = COALESCE(?, role), password_hash = COALESCE(?, password_hash),"
        " updated_at = ? WHERE id = ?",
        (role, password_hash, now, user_id),
    )
    execute(db, "DELETE FROM ui_session WHERE user_id = ?", (user_id,))


def remove_user(db: pw.Database, name: str):
    """The account and its sessions gone (UserNotFound); its audit rows stay."""
    user_id = _user_id(db, name)
    execute(db, "DELETE FROM ui_session WHERE user_id = ?", (user_id,))
    execute(db, "DELETE FROM ui_user WHERE id = ?", (user_id,))


def users(db: pw.Database) -> list[dict]:
    rows = execute(db, "SELECT name, role, created_at, updated_at FROM ui_user ORDER BY name").fetchall()
    return [dict(zip(("name", "role", "created_at", "updated_at"), row)) for row in rows]


def password_of(db: pw.Database, name: str) -> tuple[int, str] | None:
    """(user id, stored password hash) of `name`, or None."""
    return execute(db, "SELECT id, password_hash FROM ui_user WHERE name = ?", (name,)).fetchone()


def password_hash_of(db: pw.Database, user_id: int) -> str | None:
    """The stored password hash of account `user_id` now, or None if there is no such account."""
    row = execute(db, "SELECT password_hash FROM ui_user WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else row[0]


def _user_id(db, name: str) -> int:
    row = execute(db, "SELECT id FROM ui_user WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise UserNotFound(name)
    return row[0]


# --- sessions -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Session:
    token_hash: str
    user: str
    role: str
    csrf: str
    created_at: float
    seen_at: float

    @property
    def may_act(self) -> bool:
        """Whether this session may stop and start queues and add DNC ids."""
        return self.role == OPERATOR


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(db: pw.Database, user_id: int, token: str, csrf: str, *, now: float):
    execute(
        db,
        "INSERT INTO ui_session (token_hash, user_id, csrf, created_at, seen_at) VALUES (?, ?, ?, ?, ?)",
        (token_hash(token), user_id, csrf, now, now),
    )


def session(db: pw.Database, token: str) -> Session | None:
    """The session of cookie token `token` with its account's name and role now, or None."""
    row = execute(
        db,
        "SELECT s.token_hash, u.name, u.role, s.csrf, s.created_at, s.seen_at FROM ui_session s"
        " JOIN ui_user u ON u.id = s.user_id WHERE s.token_hash = ?",
        (token_hash(token),),
    ).fetchone()
    return None if row is None else Session(*row)


def touch_session(db: pw.Database, token_hash_: str, *, now: float):
    execute(db, "UPDATE ui_session SET seen_at = ? WHERE token_hash = ?", (now, token_hash_))


def close_session(db: pw.Database, token_hash_: str):
    execute(db, "DELETE FROM ui_session WHERE token_hash = ?", (token_hash_,))


def prune_sessions(db: pw.Database, *, idle_before: float, created_before: float) -> int:
    """Sessions idle since `idle_before` or older than `created_before` removed; how many."""
    return execute(
        db, "DELETE FROM ui_session WHERE seen_at < ? OR created_at < ?", (idle_before, created_before)
    ).rowcount


# --- the audit log --------------------------------------------------------------------------


def record(db: pw.Database, who: str, action: str, *, target: str | None = None, detail: str | None = None, now: float):
    """One line of the audit log: `who` did `action` (e.g. queue.stop) to `target` (a queue code),
    `detail` kept whole (its callers bound it: a console DNC is at most 1,000 ids; a cut list
    would name an id nobody sent)."""
    execute(
        db,
        "INSERT INTO ui_audit (at, who, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (now, who, action, target, detail),
    )


AUDIT_COLUMNS = ("at", "who", "action", "target", "detail")


def audit_page(db: pw.Database, *, limit: int, offset: int = 0) -> tuple[list[dict], int]:
    """The audit log newest first, `limit` lines from `offset`, and how many lines there are."""
    total = execute(db, "SELECT COUNT(*) FROM ui_audit").fetchone()[0]
    rows = execute(
        db,
        f"SELECT {', '.join(AUDIT_COLUMNS)} FROM ui_audit ORDER BY id DESC LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    return [dict(zip(AUDIT_COLUMNS, row)) for row in rows], total
