"""Found by uireview: a customer whose free-form `*_amount` field read "NaN" or "Infinity"
made its customer page and the templates page for it a 500.

The API keeps a field it does not know as the text it was given (only the seed's amounts are
checked as numbers), and the console shows every field ending in `_amount` as money:
`float("NaN")` and `float("1e400")` parse, then `round()` raised ValueError / OverflowError
outside the filter's `try`. An amount that is not a finite number is now shown as its text."""

import pytest

from api.ui import i18n
from tests.api_fixtures import customer, post, seed_import
from tests.test_ui import ana  # noqa: F401  (fixture)

ODD = ["NaN", "Infinity", "-inf", "1e400"]


@pytest.mark.parametrize("text", ODD)
def test_an_amount_that_is_not_a_finite_number_is_shown_as_its_text(text):
    assert i18n.money(text) == text
    assert i18n.field("late_fee_amount", text) == text


def test_the_pages_of_a_customer_with_such_an_amount_render(client, db, ana):  # noqa: F811
    body = seed_import() | {"customers": [customer(f"C{i}", late_fee_amount=text) for i, text in enumerate(ODD)]}
    assert post(client, "/queue", body).get_json()["data"]["success"] == [f"C{i}" for i in range(len(ODD))]
    for i, text in enumerate(ODD):
        for path in (f"/ui/customer?queue=Autocall-Q1&id=C{i}", f"/ui/templates?queue=Autocall-Q1&id=C{i}"):
            page = client.get(path)
            assert page.status_code == 200, (path, page.get_data(as_text=True)[-300:])
            assert f"<td>{text}</td>" in page.get_data(as_text=True)
