"""Database faults an operator's bad day brings, made for real on real files.

- `write_lock(path)`: another process's write lock (an operator's `sqlite3` left in
  BEGIN IMMEDIATE), held until the block ends.
- `Tmpfs(path, size)`: a small tmpfs mounted at `path` (root, or CAP_SYS_ADMIN, needed;
  `Tmpfs.available()` says whether this machine lets us), and `full_disk(folder, db)` that
  fills it until the kernel answers ENOSPC, after truncating the database's WAL so the next
  commit needs new blocks (a WAL that once grew keeps its blocks and is written over).
- `unwritable(path)`: a file or directory nobody may write (chattr +i as root, whom file
  modes do not stop; chmod otherwise), as after a restore under the wrong owner.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

# The lock is taken in another process: a connection of the test process would share its
# gevent-patched threads with the code under test.
_HOLDER = """\
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextlib.contextmanager
def write_lock(path: Path):
    """Hold the write lock of the SQLite file at `path` in another process until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked", "the lock holder failed"
        yield holder
    finally:
        holder.communicate("release\n", timeout=30)


class Tmpfs:
    """A tmpfs of `size` bytes at `path` (made if missing); `unmount()` when done."""

    def __init__(self, path: Path, size: int):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(self.path)], check=True)

    @staticmethod
    def available() -> bool:
        if os.geteuid() != 0:
            return False
        probe = Path(f"/tmp/autocall-tmpfs-probe-{os.getpid()}")
        probe.mkdir(exist_ok=True)
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
            if done.returncode == 0:
                subprocess.run(["umount", str(probe)], check=True)
            return done.returncode == 0
        finally:
            probe.rmdir()

    def remount(self, *options: str):
        subprocess.run(["mount", "-o", ",".join(("remount", *options)), str(self.path)], check=True)

    def unmount(self):
        subprocess.run(["umount", "--lazy", str(self.path)], check=True)


def truncate_wal(db: Path):
    """Checkpoint `db` and cut its WAL to nothing, so the next commit must grow it again."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


@contextlib.contextmanager
def full_disk(folder: Path, db: Path | None = None):
    """Fill the filesystem of `folder` (truncating `db`'s WAL first) until the block ends."""
    if db is not None:
        truncate_wal(db)
    filler = Path(folder) / "filler"
    try:
        with open(filler, "wb", buffering=0) as f:
            block = b"\0" * (1 << 16)
            try:
                while True:
                    f.write(block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
            for size in (4096, 512, 1):  # the last bits of the last block
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * size)
        yield filler
    finally:
        filler.unlink(missing_ok=True)


@contextlib.contextmanager
def unwritable(path: Path):
    """Make the file or directory at `path` unwritable (for new opens) until the block ends."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        return
    mode = path.stat().st_mode
    path.chmod(0o550 if path.is_dir() else 0o440)
    try:
        yield
    finally:
        path.chmod(mode)
