"""The database file on disk: its directory and the file itself made before SQLite opens it.

`create(path)` makes missing directories (0750) and an empty file (0640) if there is none
(an existing file loses any permission 0640 does not give: an older install's, a restored copy),
so customer data is never world-readable, under systemd's UMask=0027 or not; SQLite gives
the -wal and -shm files beside it the same mode. A path that cannot be made raises
ConfigError (a wrong path or permissions: fix the config) or Unavailable (a full or failing
disk: worth retrying), each one line naming the path.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from daemon.errors import ConfigError, Unavailable

DIR_MODE, FILE_MODE = 0o750, 0o640
# Errors that a restart will not fix; anything else (ENOSPC, EIO, ...) may pass.
_CONFIG_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
    errno.EROFS,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.ENOENT,
}


def create(path: Path):
    """Make `path`'s directory and an empty database file, unless they exist."""
    path = Path(path)
    try:
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError as e:  # mkdir's word when the name is taken by a file
        e.strerror = "a file of that name is in the way"
        raise _error(f"cannot create the directory {path.parent}", e) from None
    except OSError as e:
        raise _error(f"cannot create the directory {path.parent}", e) from None
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
    except FileExistsError:
        _restrict(path)
    except OSError as e:
        raise _error(f"cannot create {path}", e) from None


def _restrict(path: Path):
    """Take from an existing file (an older install's, a restored backup) what FILE_MODE does not allow."""
    try:
        mode = os.stat(path).st_mode & 0o7777
        if mode & ~FILE_MODE:
            os.chmod(path, mode & FILE_MODE)
    except OSError:
        pass  # not ours to change (another owner): SQLite says what it cannot open


def hold(path: Path) -> int:
    """Hold an exclusive flock on the database file for as long as this process lives (the
    kernel lets go of it however the process ends): one dialer per SQLite file. A second one's
    start-up recovery would find the first one's live calls missing from its own switch, close
    them as lost and call their customers again while they were still on the line. The lock is
    on the database itself, which nobody removes as a stray file while it is in use; it does not
    touch SQLite's own locks (POSIX byte ranges, another kind), and the descriptor is never
    closed, which would drop those. Unavailable while another process holds it, naming its pid
    (`holder`)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)  # we hold no SQLite lock through this process yet: start-up only reads
        pid = holder(path)
        who = f"autocall-daemon (pid {pid})" if pid else "autocall-daemon"
        raise Unavailable(
            f"another {who} already runs on {path}: one dialer per SQLite file; stop that one "
            "first, or move to PostgreSQL for several (docs/scale-out.md)"
        ) from None
    return fd


def holder(path: str | os.PathLike) -> int | None:
    """The pid holding `hold`'s lock on the database file at `path` (from /proc/locks, so
    nothing is locked by asking), or None: no dialer runs on it, or this is not Linux."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE 5488 fe:00:2149695 0 EOF"
        fields = line.split()
        if fields[1:2] == ["FLOCK"] and fields[5:6] == [device] and fields[4].isdigit():
            return int(fields[4])
    return None


def _error(what: str, e: OSError):
    message = f"database.path: {what}: {e.strerror}"
    return ConfigError(message) if e.errno in _CONFIG_ERRNOS else Unavailable(message)
