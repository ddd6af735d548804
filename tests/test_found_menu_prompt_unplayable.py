"""Found by attack9: a menu prompt FreeSWITCH cannot open mid-campaign went unnoticed.

Files are checked with `api file_exists` when a template is loaded; a file that becomes
unreadable later (a folder's permission, an unmounted share, an edited prompt) is caught only
by `playback`'s FILE NOT FOUND. play_and_get_digits says nothing of the kind: switch_ivr_read's
NOTFOUND ends the try before any key is collected (read_result left unset), the wrong-key prompt
plays, and the call takes its no-key path. Every callee then hears no menu, none can answer,
and the queue burnt through its customers recording "no key" instead of stopping with a reason.
Now a menu that read no key asks the switch about its files (daemon/call.py `_check_menu_files`).
"""

import pytest

from daemon.esl import ESLClient
from tests.daemon_fixtures import REPO, DaemonProcess, import_customers, query, start_simulator, wait_until

pytestmark = pytest.mark.timeout(120)

MENU = str(REPO / "ivr_templates" / "sounds" / "vi" / "prompts" / "menu_truoc_han.wav")


def test_a_menu_prompt_unreadable_mid_campaign_stops_the_queue(tmp_path):
    sim = start_simulator(
        {"gateways": ["carrier"], "default": {"outcome": "answer", "answer_after": 1, "hangup_after": "never"}}
    )
    daemon = DaemonProcess(tmp_path, sim)
    try:
        import_customers(daemon.db_path, [("A", ["0901000001"])], min_recall_duration=1)
        daemon.start()
        wait_until(
            lambda: query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state = 'answered'")[0][0] == 1, 20
        )
        control = ESLClient(*sim.address, "ClueCon", events=())
        control.connect()
        assert control.api(f"sim_fault unreadable {MENU}").startswith("+OK")  # before the greeting ends
        control.close()
        wait_until(lambda: query(daemon.db_path, "SELECT state FROM attempt") == [("done",)], 40)
        assert query(daemon.db_path, "SELECT outcome, hangup_cause FROM attempt") == [
            ("config_error", "FILE_NOT_FOUND")
        ]
        [(state, reason)] = query(daemon.db_path, "SELECT state, stop_reason FROM queue")
        assert state == "stopped" and MENU in (reason or "")
    finally:
        daemon.stop_quietly()
        sim.stop()
