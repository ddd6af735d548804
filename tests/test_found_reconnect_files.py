"""Found by attack9: after a reconnect the dialer must ask FreeSWITCH again about the files
of its templates (docs/daemon.md, "asked about at start-up, after a reconnect ..."). The
switch at the other end may have restarted with a sounds folder it can no longer enter, or
be another switch altogether (failover); a word file it cannot read inside file_string://
is skipped without a word, so a customer hears an amount with a word missing."""

import pytest

from daemon.esl import ESLClient
from tests.daemon_fixtures import REPO, DaemonProcess, import_customers, query, start_simulator, wait_until

pytestmark = pytest.mark.timeout(120)

WORD = str(REPO / "ivr_templates" / "sounds" / "vi" / "words" / "trieu.wav")  # "million", in 5 000 000


def test_a_file_the_switch_lost_while_disconnected_stops_the_queue_after_reconnect(tmp_path):
    sim = start_simulator({"gateways": ["carrier"], "default": {"outcome": "answer", "hangup_after": 5}})
    daemon = DaemonProcess(tmp_path, sim)
    try:
        daemon.start()
        wait_until(lambda: "connected to FreeSWITCH" in daemon.read_log(), 20)
        control = ESLClient(*sim.address, "ClueCon", events=())
        control.connect()
        # The switch comes back unable to read one word file, and drops every connection.
        assert control.api(f"sim_fault unreadable {WORD}").startswith("+OK")
        assert control.api("sim_fault drop").startswith("+OK")
        control.close()
        wait_until(lambda: daemon.read_log().count("connected to FreeSWITCH") >= 2, 30)
        import_customers(daemon.db_path, [("A", ["0901000001"])])
        wait_until(
            lambda: (
                query(daemon.db_path, "SELECT state FROM queue")[0][0] == "stopped"
                or [r for r in sim.records if r["event"] == "originate"]
            ),
            20,
        )
        assert [r for r in sim.records if r["event"] == "originate"] == [], (
            "the customer was called with a word file the switch cannot play"
        )
        [(reason,)] = query(daemon.db_path, "SELECT stop_reason FROM queue")
        assert WORD in reason
    finally:
        daemon.stop_quietly()
        sim.stop()
