"""Found by uireview: a console link whose `next=` held a line break was a 500.

`_safe_next` checked only that the destination began with `/ui/`, so `/ui/\\r\\nX: y` passed and
Werkzeug refused it as a `Location` header (ValueError: header values must not contain newline
characters): `GET /ui/lang/en?next=/ui/%0d%0a`, open to anyone, logged a traceback and
answered 500; a login with such a `next` checked the password, opened the session and wrote
its audit line, then answered 500 without the cookie. A destination with a control character
is now the queues page, like any other that is not a console page."""

import pytest

from daemon.store import operators
from tests.api_fixtures import rows
from tests.test_ui import add_account, log_in

BAD = ["/ui/\r\nSet-Cookie: x=1", "/ui/\nx", "/ui/\tx", "/ui/\x00", "/ui/\x7f"]


@pytest.mark.parametrize("target", BAD)
def test_a_language_link_with_a_control_character_in_next_goes_to_the_queues_page(client, target):
    answer = client.get("/ui/lang/en", query_string={"next": target})
    assert answer.status_code == 303 and answer.headers["Location"] == "/ui/"


@pytest.mark.parametrize("target", BAD[:2])
def test_a_login_with_a_control_character_in_next_goes_to_the_queues_page(client, db, target):
    add_account(db, "ana", operators.OPERATOR)
    answer = log_in(client, "ana", next_page=target)
    assert answer.status_code == 303 and answer.headers["Location"] == "/ui/"
    assert "autocall_ui=" in answer.headers["Set-Cookie"]
    assert rows(db, "SELECT COUNT(*) FROM ui_session") == [(1,)]
