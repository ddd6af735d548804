"""Where the store lives: an SQLite file or a PostgreSQL database, as the config names it.

`[database] path = "..."` (or `url = "sqlite:///abs/path"`, `"sqlite:rel/path"`) is an SQLite
file; `url = "postgresql://user@host:port/dbname?sslmode=..."` is a PostgreSQL database, its
query parameters passed on to libpq as they are. The password is never part of the URL (a URL
holding one is refused, so it cannot end up in a config file or a log line): it comes from
$AUTOCALL_DB_PASSWORD, else from libpq's own PGPASSWORD or ~/.pgpass.

`DatabaseUrl` prints as the file's path or the URL, never with the password.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from daemon.errors import ConfigError

SQLITE, POSTGRESQL = "sqlite", "postgresql"
PASSWORD_ENV = "AUTOCALL_DB_PASSWORD"
_PG_SCHEMES = ("postgresql://", "postgres://")


@dataclasses.dataclass(frozen=True)
class DatabaseUrl:
    backend: str  # SQLITE or POSTGRESQL
    path: Path | None = None  # the SQLite file
    dsn: str = ""  # the PostgreSQL URL, without a password
    password: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def sqlite(cls, path: str | os.PathLike) -> DatabaseUrl:
        return cls(SQLITE, path=Path(path))

    def __str__(self):
        return str(self.path) if self.backend == SQLITE else self.dsn


def is_url(value: str) -> bool:
    """Whether `value` is written as a URL (else it is a plain path to an SQLite file)."""
    return value.startswith(("sqlite:", *_PG_SCHEMES))


def parse(value, *, base: Path, password: str | None = None) -> DatabaseUrl:
    """`value` (the config's `database.url`) as a DatabaseUrl; a relative SQLite path is taken
    from `base`. ValueError says what is wrong, without repeating a password."""
    if not isinstance(value, str) or not value.isprintable() or value != value.strip():
        raise ValueError(
            "expected a URL such as sqlite:///var/lib/autocall/autocall.sqlite3 or postgresql://user@host/db"
        )
    if value.startswith("sqlite:"):
        return DatabaseUrl.sqlite(_sqlite_path(value[len("sqlite:") :], base))
    if value.startswith(_PG_SCHEMES):
        return DatabaseUrl(POSTGRESQL, dsn=_postgres_dsn(value), password=password or None)
    raise ValueError(f"expected a sqlite: or postgresql:// URL, got {value.partition(':')[0]!r}")


def _sqlite_path(rest: str, base: Path) -> Path:
    if rest.startswith("///"):
        path = Path(rest[2:])
    elif rest and not rest.startswith("/"):
        path = base / rest
    else:
        raise ValueError("expected sqlite:///absolute/path or sqlite:relative/path")
    if not path.name:
        raise ValueError("expected a file name after sqlite:")
    return path


def _postgres_dsn(value: str) -> str:
    scheme, _, rest = value.partition("://")
    try:
        parts = urlsplit("postgresql://" + rest)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError("not a valid postgresql:// URL (user@host:port/dbname)") from None
    if parts.password is not None or any(key == "password" for key, _ in parse_qsl(parts.query)):
        raise ValueError(f"the URL holds a password: leave it out and set ${PASSWORD_ENV} (or use ~/.pgpass)")
    if not parts.path.strip("/"):
        raise ValueError("the URL names no database: postgresql://user@host:port/dbname")
    return "postgresql://" + rest


def of(target) -> DatabaseUrl:
    """A DatabaseUrl from what a caller holds: one already, a URL string (its password from
    $AUTOCALL_DB_PASSWORD; ConfigError if it is not a good one), or the path of an SQLite file."""
    if isinstance(target, DatabaseUrl):
        return target
    if isinstance(target, str) and is_url(target):
        try:
            return parse(target, base=Path.cwd(), password=os.environ.get(PASSWORD_ENV))
        except ValueError as e:
            raise ConfigError(f"database URL: {e}") from None
    if isinstance(target, str | os.PathLike):
        return DatabaseUrl.sqlite(target)
    raise TypeError(f"expected a database URL or the path of an SQLite file, got {target!r}")
