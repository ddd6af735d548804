"""Found by attack9: a FILE NOT FOUND mid-call stops the queue, but the dialer keeps believing
the switch can play the file (its file_exists verdict for that template version stays "all
playable"). An operator who starts the queue again without fixing the file gets the next
customer called — and that call fails the same way — instead of the queue refusing at once,
before dialing, with SOUND_FILE_UNPLAYABLE and the file named."""

import pytest

from daemon.esl import ESLClient
from daemon.store.queue_state import set_running
from daemon.store.schema import open_database
from tests.daemon_fixtures import REPO, DaemonProcess, import_customers, query, start_simulator, wait_until

pytestmark = pytest.mark.timeout(120)

GOODBYE = str(REPO / "ivr_templates" / "sounds" / "vi" / "prompts" / "tam_biet.wav")


def test_starting_a_queue_stopped_by_file_not_found_does_not_dial_into_the_same_failure(tmp_path):
    sim = start_simulator(
        {"gateways": ["carrier"], "default": {"outcome": "answer", "answer_after": 1, "hangup_after": "never"}}
    )
    daemon = DaemonProcess(tmp_path, sim)
    try:
        import_customers(
            daemon.db_path, [("A", ["0901000001"]), ("B", ["0901000002"])], concurrent_call=1, min_recall_duration=1
        )
        daemon.start()
        wait_until(
            lambda: query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state = 'answered'")[0][0] == 1, 20
        )
        control = ESLClient(*sim.address, "ClueCon", events=())
        control.connect()
        assert control.api(f"sim_fault unreadable {GOODBYE}").startswith("+OK")
        control.close()
        wait_until(lambda: query(daemon.db_path, "SELECT state FROM queue")[0][0] == "stopped", 40)
        wait_until(lambda: query(daemon.db_path, "SELECT COUNT(*) FROM attempt WHERE state != 'done'")[0][0] == 0, 10)
        calls_before = len([r for r in sim.records if r["event"] == "originate"])
        # The careless operator: start it again, file not fixed.
        db = open_database(daemon.db_path)
        set_running(db, "Q", True)
        db.close()
        wait_until(
            lambda: (
                query(daemon.db_path, "SELECT state FROM queue")[0][0] == "stopped"
                or len([r for r in sim.records if r["event"] == "originate"]) > calls_before
            ),
            20,
        )
        assert len([r for r in sim.records if r["event"] == "originate"]) == calls_before, (
            "a customer was dialled into a file the switch had just said it cannot play"
        )
        [(reason,)] = query(daemon.db_path, "SELECT stop_reason FROM queue")
        assert GOODBYE in reason
    finally:
        daemon.stop_quietly()
        sim.stop()
