"""Found by attack9: the database is made 0640 only when autocall creates it. A file that is
already there — every install upgraded from before, or a backup restored with `cp` under a
login shell's umask (docs/install.md says to chmod it; a careless operator does not) — stayed
0644: every local user could read the customers' phone numbers and debts, and SQLite gives the
-wal and -shm files the same mode. Opening it now takes away what 0640 does not allow."""

import os
import stat

from tests.test_operator_messages import assert_database_files_0640_after_api_start


def test_an_existing_world_readable_database_is_made_0640(tmp_path):
    def world_readable_file():
        (tmp_path / "autocall.sqlite3").touch(mode=0o644)
        os.chmod(tmp_path / "autocall.sqlite3", 0o644)

    assert_database_files_0640_after_api_start(tmp_path, world_readable_file)


def test_a_stricter_mode_is_left_alone(tmp_path):
    path = tmp_path / "autocall.sqlite3"
    path.touch()
    os.chmod(path, 0o600)
    from daemon import dbfile

    dbfile.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
