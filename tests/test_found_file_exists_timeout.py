"""Found by attack9: one slow `api file_exists` reply (a switch under load, past esl.timeout)
made the dialer give up checking that template version for good: the timeout was taken for
"this switch cannot tell" (as an -ERR answer is) and the verdict "nothing unplayable" kept
until the template file changes. A file the switch cannot read was then never caught before
dialing; inside file_string:// it is skipped without a word. A timeout must be asked again."""

import gevent
import pytest

from daemon import ivr
from daemon.esl import ESLClient
from daemon.playable import TemplateCheck
from tests.daemon_fixtures import REPO, start_simulator

pytestmark = pytest.mark.timeout(60)

GOODBYE = str(REPO / "ivr_templates" / "sounds" / "vi" / "prompts" / "tam_biet.wav")


def test_a_file_exists_reply_that_came_too_late_is_asked_again(tmp_path):
    sim = start_simulator({"unreadable": [GOODBYE]})
    client = ESLClient(*sim.address, "ClueCon", events=(), timeout=0.2)
    try:
        client.connect()
        templates = ivr.TemplateLoader(REPO / "ivr_templates", REPO / "ivr_templates" / "sounds")
        check = TemplateCheck()
        template = templates.get("IVR-1")
        sim.delay(500)  # from now on each command waits 0.5 s before it runs (esl timeout: 0.2 s)
        assert check.unplayable(client, template, 0.0) == []  # could not tell: not checked (logged)
        gevent.sleep(1.0)  # the late reply is in
        sim.delay(0)
        assert client.is_alive()
        assert check.unplayable(client, template, 0.1) == [GOODBYE]
    finally:
        client.close()
        sim.stop()
