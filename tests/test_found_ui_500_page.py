"""Found by the hostile-client review: a bug under /ui/ answered the API's JSON 500.

The console's blueprint had pages for its HTTP errors and for a database that is away, but an
unexpected exception (the OverflowError of a huge amount) fell through to the app's handler,
and an operator's browser showed `{"code":500,"content":"internal error"}`. It is now the
console's error page, with the traceback in the log as before; the API's 500 stays JSON
(tests/test_api.py)."""

import logging

import pytest

from api.ui import i18n, pages
from tests.test_ui import ana  # noqa: F401  (fixture)


def broken(*args, **kwargs):
    raise RuntimeError("a bug in a page")


@pytest.fixture
def a_page_with_a_bug(ana, monkeypatch):  # noqa: F811  (after ana, whose login reads /ui/)
    monkeypatch.setattr(pages, "queue_rows", broken)


def test_a_bug_in_a_console_page_answers_the_console_error_page(client, a_page_with_a_bug, caplog):
    with caplog.at_level(logging.ERROR, logger="autocall.api.ui"):
        page = client.get("/ui/")
    assert (page.status_code, page.mimetype) == (500, "text/html")
    assert i18n.label(i18n.DEFAULT, "internal_error") in page.get_data(as_text=True)
    assert "RuntimeError: a bug in a page" in caplog.text
