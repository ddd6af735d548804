"""Found by uireview: a DNC added from the console could be written without its audit line.

The console put the ids on the DNC list in one transaction (the API's chunked `block`, on the
writer thread) and wrote the audit line `queue.dnc` in another, after it. When the second
failed (a full disk, the database gone read-only between the two), the ids were on the list
and the pending customers ended `dnc` with nothing in the audit log saying who did it, where
docs/ui.md promises every operator action is there. The ids (at most 1,000 a form) and their
audit line are now one transaction: both or neither. The failure is a real one of SQLite: a
trigger that refuses the audit line's insert."""

import pytest

from tests.api_fixtures import customer_states, rows
from tests.test_ui import ana, queue  # noqa: F401  (fixtures)


@pytest.fixture
def audit_refused(db):
    with db.connection_context():
        db.execute_sql(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON ui_audit"
            " WHEN NEW.action = 'queue.dnc' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )


def test_a_dnc_whose_audit_line_cannot_be_written_changes_nothing(client, db, ana, queue, audit_refused):  # noqa: F811
    answer = client.post("/ui/queue/dnc", data={"csrf": ana, "code": queue, "ids": "TEL4VN_Test\nKH_NEW"})
    assert answer.status_code >= 500
    assert rows(db, "SELECT COUNT(*) FROM dnc") == [(0,)]
    assert customer_states(db) == {"TEL4VN_Test": "pending"}


def test_a_dnc_of_a_queue_that_is_gone_writes_nothing(client, db, ana):  # noqa: F811
    answer = client.post("/ui/queue/dnc", data={"csrf": ana, "code": "Nope", "ids": "KH_01"})
    assert answer.status_code == 404
    assert rows(db, "SELECT COUNT(*) FROM dnc") == [(0,)]
    assert [r for r in rows(db, "SELECT action FROM ui_audit") if r[0] == "queue.dnc"] == []
