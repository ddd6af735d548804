"""Found by attack9: the originate's BACKGROUND_JOB says -ERR after CHANNEL_ANSWER came.

`Call._on_job` takes any -ERR for "no channel will come" and sets `gone`, so the call neither
runs the IVR nor hangs up: an answered channel is left parked in silence (until park_timeout,
max_call_seconds = 10 minutes by default) while the attempt is already closed and its slot
given to the next customer. Whatever the job says, a channel we saw answered must be hung up."""

import time
import uuid as uuidlib

import gevent
import pytest

from daemon import ivr
from daemon.call import Call, CallSettings
from daemon.esl import ESLClient
from daemon.ledger import Claim
from tests.daemon_fixtures import REPO, start_simulator, wait_until

pytestmark = pytest.mark.timeout(60)

FIELDS = {"contract_number": "HD123456", "upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"}


class ErrJobClient(ESLClient):
    """A switch whose originate job reports -ERR although the channel answered (as FreeSWITCH may
    when the originate gives up in its last moments, e.g. originate_timeout at the answer)."""

    def _dispatch(self, event):
        if event.name == "BACKGROUND_JOB":
            event.body = "-ERR NORMAL_TEMPORARY_FAILURE\n"
        super()._dispatch(event)


def test_an_answered_channel_is_hung_up_even_when_the_originate_job_says_err():
    sim = start_simulator(
        {
            "gateways": ["carrier"],
            "originate_completes_after": 1.0,
            "default": {"outcome": "answer", "hangup_after": "never"},
        }
    )
    client = ErrJobClient(*sim.address, "ClueCon", timeout=5.0)
    try:
        client.connect()
        script = (
            ivr.TemplateLoader(REPO / "ivr_templates", REPO / "ivr_templates" / "sounds").get("IVR-1").render(FIELDS)
        )
        claim = Claim(1, str(uuidlib.uuid4()), str(uuidlib.uuid4()), "0901000001", 1, "A", FIELDS, 1, "Q", "IVR-1", 0)
        settings = CallSettings(
            "sofia/gateway/carrier/{number}", "", originate_timeout=10, max_call_seconds=600, destinations={}
        )
        report = gevent.spawn(Call(claim, client, script, settings, time.time).run).get(timeout=30)
        assert report.answered_at is not None  # it did answer
        # The attempt is over for the dialer; the channel must be too.
        wait_until(lambda: claim.uuid not in sim.channels, 5)
    finally:
        client.close()
        sim.stop()
