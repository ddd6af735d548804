"""Found by the hostile-client review: a whole number over 1e308 in a `*_amount` field made
its customer page and the templates page for it a 500.

An extra field is kept as given, so `"late_amount": 10**400` imports; the console's `money`
read it with float(), which raises OverflowError for an int that large (it only gave inf for
text). A whole number is now shown with every digit, never through a float."""

from api.ui import i18n
from tests.api_fixtures import customer, post, seed_import
from tests.test_ui import ana  # noqa: F401  (fixture)

HUGE = 10**400


def test_a_whole_number_too_large_for_a_float_is_shown_with_every_digit():
    assert i18n.money(HUGE) == "10" + ".000" * 133 + " ₫"
    assert i18n.money(10**17 + 1) == "100.000.000.000.000.001 ₫"  # no float rounding either


def test_the_pages_of_a_customer_with_such_an_amount_render(client, db, ana):  # noqa: F811
    body = seed_import() | {"customers": [customer("big", late_amount=HUGE)]}
    assert post(client, "/queue", body).get_json()["data"]["success"] == ["big"]
    for path in ("/ui/customer?queue=Autocall-Q1&id=big", "/ui/templates?queue=Autocall-Q1&id=big"):
        page = client.get(path)
        assert page.status_code == 200, (path, page.get_data(as_text=True)[-300:])
        assert f"<td>{i18n.money(HUGE)}</td>" in page.get_data(as_text=True)
