"""Found by attack9: a key pressed between two barge-in prompts was lost.

Between one application's end and the next `sendmsg execute`, the channel sits in park, and
switch_ivr_park dequeues a DTMF and drops it (no input callback): only the DTMF event tells of
it. Call._play reads only `playback_terminator_used` of the next playback, so a callee who
presses 9 ("I will pay") right as the greeting ends — in the gap of an ESL round trip, a
`set` and another round trip on a loaded switch — is ignored: the information plays on and the
menu asks again as if nothing was pressed. The DTMF event is there (report.keys has it); the
call should take a key seen after the last completion, before the next barge-in prompt, as
that prompt's terminator.

The gap is widened here by the simulator's reply delay (it holds each command 0.4 s before
running it), so the key lands in it every time.
"""

import time
import uuid as uuidlib
import wave

import gevent
import pytest

from daemon import ivr
from daemon.call import Call, CallSettings
from daemon.esl import ESLClient
from daemon.ledger import Claim
from tests.daemon_fixtures import REPO, start_simulator

pytestmark = pytest.mark.timeout(90)

FIELDS = {"contract_number": "HD123456", "upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"}
GREETING = REPO / "ivr_templates" / "sounds" / "vi" / "prompts" / "xin_chao.wav"
DELAY = 0.4  # real seconds each command waits before it runs
SCALE = 0.25  # simulated seconds run 4 times faster
TEMPLATE = """
[[step]]
id = "hello"
play = ["xin_chao"]

[[step]]
id = "info"
play = ["vui_long_thanh_toan"]

[[step]]
id = "menu"
menu = "menu_truoc_han"
timeout = 1
keys = { 9 = "result promise_to_pay then goto end" }
no_key = "hangup"

[[step]]
id = "end"
hangup = true
"""


def test_a_key_pressed_between_the_greeting_and_the_information_answers_the_menu(tmp_path):
    with wave.open(str(GREETING)) as w:
        greeting = w.getnframes() / w.getframerate()
    # After answer: `set` runs at +DELAY, the greeting at +2*DELAY; the information would start
    # DELAY after the greeting ends. The key comes in the middle of that gap.
    press = (2 * DELAY + DELAY / 2) / SCALE + greeting  # simulated seconds after answer
    sim = start_simulator(
        {"gateways": ["carrier"], "default": {"outcome": "answer", "hangup_after": 60, "keys": [[press, "9"]]}}, SCALE
    )
    sim.delay(DELAY * 1000)
    client = ESLClient(*sim.address, "ClueCon", timeout=5.0)
    try:
        client.connect()
        (tmp_path / "IVR-1.toml").write_text(TEMPLATE, encoding="utf-8")
        script = ivr.TemplateLoader(tmp_path, REPO / "ivr_templates" / "sounds").get("IVR-1").render(FIELDS)
        claim = Claim(1, str(uuidlib.uuid4()), str(uuidlib.uuid4()), "0901000001", 1, "A", FIELDS, 1, "Q", "IVR-1", 0)
        settings = CallSettings(
            "sofia/gateway/carrier/{number}",
            "",
            originate_timeout=10,
            max_call_seconds=120,
            destinations={"agents": "1000 XML default"},
        )
        report = gevent.spawn(Call(claim, client, script, settings, time.time).run).get(timeout=80)
    finally:
        client.close()
        sim.stop()
    assert report.keys == "9"  # the switch told us of the key
    assert report.result == "promise_to_pay"
