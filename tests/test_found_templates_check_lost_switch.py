"""Found by attack9: `autocall templates check --esl` losing FreeSWITCH midway exited 1 (the
status for "a template has a problem") and printed "IVR-1: cannot ask FreeSWITCH about its
files: ..." as if it were the template's fault, then the same for every template after it.
Exit status 2 means "--esl cannot reach FreeSWITCH" (its --help): a script running the check
before a deploy must be able to tell a broken template from a switch that went away."""

import os
import subprocess
import sys

import gevent
import pytest

from tests.daemon_fixtures import REPO, start_simulator

pytestmark = pytest.mark.timeout(60)


def test_a_switch_lost_during_the_check_is_exit_2_not_a_template_problem():
    sim = start_simulator({})
    sim.delay(100)  # each file_exists reply takes 0.1 s: the check of IVR-1's files takes seconds
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOCALL_")}
        autocall = os.path.join(os.path.dirname(sys.executable), "autocall")
        proc = subprocess.Popen(
            [
                autocall,
                "templates",
                "check",
                "--esl",
                f"127.0.0.1:{sim.address[1]}",
                "--templates",
                str(REPO / "ivr_templates"),
                "--sounds",
                str(REPO / "ivr_templates" / "sounds"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        gevent.sleep(1.5)
        sim.drop_connections()
        out, err = proc.communicate(timeout=30)
    finally:
        sim.stop()
    assert proc.returncode == 2, (out, err)
    assert "cannot ask FreeSWITCH" not in out
    assert "FreeSWITCH" in err
