"""The dialer's own state beside its database (`<database>-daemon`), read by `autocall status`.

When the database is what fails, the dialer cannot say so inside it; this small JSON file next
to it can. It is rewritten in place at a fixed size (SIZE bytes, reserved when it is made), so a
disk that fills later never refuses it (one already full when it is made leaves it empty until
there is room), and a file already open is written whatever its mode becomes.
Created 0640 like the database. A write that fails is skipped (the first of a run of them
logged at WARNING): it is a report, never a reason to stop.

A file removed or replaced under a running dialer (an operator tidying up) is made again at the
next write, where `autocall status` reads it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from daemon import dbfile
from daemon.config_values import NotSmallFile, read_small

log = logging.getLogger("autocall.statefile")

SIZE = 1024
READ_LIMIT = 64 * SIZE  # what `read` takes at most: a file far past SIZE is no state of ours
FILE_MODE = 0o640
STALE_AFTER = 15.0  # seconds without a rewrite after which `autocall status` calls it old


def path_for(db_path: str | os.PathLike) -> Path:
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + "-daemon")


class StateFile:
    """`write(state)` puts the dict `state` (with its `at` time) in the file next to `db_path`."""

    def __init__(self, db_path: str | os.PathLike):
        self.path = path_for(db_path)
        self._fd: int | None = None
        self._failing = False  # the last write failed (said at WARNING once)

    def write(self, state: dict) -> bool:
        data = _encoded(state)
        if len(data) >= SIZE:  # a long error text (a database's reason, twice): cut, never refused,
            data = _encoded(_shortened(state))  # since a report that raised would stop the watchdog pings
        try:
            if self._fd is not None and _replaced(self._fd, self.path):
                os.close(self._fd)
                self._fd = None
            if self._fd is None:
                self._fd = _open(self.path)
            os.pwrite(self._fd, data.ljust(SIZE - 1) + b"\n", 0)
        except OSError as e:
            # Said once: a disk already full when the dialer started leaves the file empty, and
            # `autocall status` shows no dialer line until it can be written.
            log.log(logging.DEBUG if self._failing else logging.WARNING, "cannot write %s: %s", self.path, e)
            self._failing = True
            return False
        if self._failing:
            log.info("%s written again", self.path)
            self._failing = False
        return True

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _encoded(state: dict) -> bytes:
    return json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()


SHORT = 120  # characters kept of each text of a state too long for the file


def _shortened(value):
    """`value` with every text cut to SHORT characters: a dialer's state (a few numbers, two
    texts, one small dict) then fits in SIZE bytes, three bytes a character included."""
    if isinstance(value, str):
        return value if len(value) <= SHORT else value[: SHORT - 1] + "…"
    if isinstance(value, dict):
        return {k: _shortened(v) for k, v in value.items()}
    return value


def _replaced(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return True
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)


def _open(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        if os.fstat(fd).st_size < SIZE:
            os.posix_fallocate(fd, 0, SIZE)  # the blocks, reserved now, are there when the disk fills
    except OSError as e:
        log.debug("cannot reserve %s: %s", path, e)
    return fd


def read(db_path: str | os.PathLike) -> dict | None:
    """The dialer's last state next to `db_path`; None when no dialer has run there. A file there
    that holds no state (made on a disk already full, garbled, unreadable, not a file) reads as
    {"unreadable": why, "database": db_path, "holder": the pid holding it (dbfile.holder) or None}."""
    path = path_for(db_path)
    try:
        data = read_small(path, READ_LIMIT)
    except FileNotFoundError:
        return None
    except OSError as e:
        return _unreadable(db_path, f"{path}: {e.strerror}")
    except NotSmallFile as e:
        return _unreadable(db_path, f"{path}: {e}")
    if not data.strip():
        return _unreadable(db_path, f"{path} is empty")
    try:
        state = json.loads(data)
    except ValueError:
        state = None
    if not isinstance(state, dict) or not _is_time(state.get("at")):
        return _unreadable(db_path, f"{path} holds no dialer state")
    return state


def look(db_path: str | os.PathLike) -> dict | None:
    """`read`, and for a state the pid holding the database now ("holder", None: no dialer runs
    on it), which tells a dialer that stopped or crashed from one that runs."""
    state = read(db_path)
    if state is not None and "unreadable" not in state:
        state["holder"] = dbfile.holder(db_path)
    return state


def _is_time(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _unreadable(db_path, why: str) -> dict:
    return {"unreadable": why, "database": str(db_path), "holder": dbfile.holder(db_path)}
