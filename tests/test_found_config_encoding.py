"""Found by attack9: a config file that is not UTF-8 (Notepad's "Unicode" is UTF-16 with a BOM)
crashed autocall-daemon with a UnicodeDecodeError traceback and exit status 1, which systemd's
RestartPreventExitStatus=2 does not stop: the unit restarted every 5 s forever, and no line named
the file. autocall-api said only "'utf-8' codec can't decode byte 0xff". Both must exit 2 with
one line naming the file."""

import os
import subprocess
import sys

import pytest

from tests.api_fixtures import REPO


@pytest.mark.parametrize("program", ["daemon.main", "api.server"])
def test_a_config_file_that_is_not_utf8_is_a_config_error_naming_the_file(tmp_path, program):
    config = tmp_path / "autocall.toml"
    config.write_bytes('[api]\ntokens = ["0123456789abcdef0123"]\n'.encode("utf-16"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOCALL_")}
    env.update(AUTOCALL_DB=str(tmp_path / "autocall.sqlite3"), AUTOCALL_API_LISTEN="127.0.0.1:0")
    done = subprocess.run(
        [sys.executable, "-m", program, "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert str(config) in done.stderr and "UTF-8" in done.stderr
