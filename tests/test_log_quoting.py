"""Customer text (ids, queue codes, numbers: the API's) is quoted in the daemon's log lines and
in `autocall status`, so a newline, a control character or an ANSI escape in it cannot forge
a line or drive the operator's terminal. The API refuses such ids and codes at import; text
that reached the database some other way (an older version, a hand-made row) must still be
harmless (issue 11, item 5)."""

import datetime as dt

import pytest

from daemon import status
from daemon.config import QueueDefaults
from daemon.store import customers as store_customers
from daemon.store import records
from daemon.store.schema import open_database
from tests.daemon_fixtures import all_final, wait_until

pytestmark = pytest.mark.timeout(60)

FORGED_ID = "A\nFORGED autocall.calls: call queue=X customer=Y \x1b[2J"
FORGED_CODE = "Q\x1b[31m\u2028FORGED"
CLEAN = ("\n", "\x1b", "\u2028")


def test_the_daemon_quotes_ids_and_queue_codes_in_its_log_lines(run):
    sim, daemon = run({"default": {"outcome": "answer", "answer_after": 1, "hangup_after": 30}})
    db = open_database(daemon.db_path)
    fields = {"contract_number": "HD1", "upcoming_amount": 5000, "upcoming_due_date": "2021-07-13"}
    request = records.ImportRequest(
        FORGED_CODE, "IVR-1", {"min_recall_duration": 0}, [records.NewCustomer(FORGED_ID, ["0901000001"], fields)]
    )
    store_customers.import_customers(db, request, QueueDefaults())
    db.close()
    daemon.start()
    wait_until(lambda: all_final(daemon.db_path), 30)
    # The call's line is logged once its result is written: the file may lag the database.
    wait_until(lambda: "autocall.calls: call " in daemon.read_log(), 10)
    log = daemon.read_log()
    [call_line] = [line for line in log.splitlines() if "autocall.calls: call " in line]
    assert f"queue={FORGED_CODE!r} customer={FORGED_ID!r} number='0901000001'" in call_line
    assert not [line for line in log.splitlines() if line.startswith("FORGED")]
    assert not any(char in log.replace("\n", "") for char in CLEAN[1:])


def _status(code, customer, reason=None):
    counts = dict.fromkeys(("pending", "calling", "success", "failed", "dnc", "deleted"), 0) | {"success": 1}
    outcome = status.CallOutcome(1_800_000_000.0, customer, "0901000001", "NORMAL_CLEARING", 30.0, "9", "success", None)
    return status.QueueStatus(code, "IVR-1", "stopped", reason, 5, counts, 1, 0, 0, 0, (outcome,))


def test_status_quotes_queue_codes_and_customers_and_escapes_what_would_break_a_line():
    view = _status(FORGED_CODE, FORGED_ID, reason="gateway down\nFORGED")
    text = status.render([view], now=1_800_000_000.0, tz=dt.UTC)
    lines = text.splitlines()
    assert len(lines) == 9  # header, blank, five of the queue, "last calls:", one call
    assert not [line for line in lines if line.startswith("FORGED")]
    assert not any(char in text.replace("\n", "") for char in CLEAN[1:])
    assert f"queue {FORGED_CODE!r}" in text and f"{FORGED_ID!r} '0901000001'" in text
    assert "stopped — gateway down\\nFORGED" in text
    line = status.render_line(view)
    assert "\n" not in line and "\x1b" not in line and repr(FORGED_CODE) in line
