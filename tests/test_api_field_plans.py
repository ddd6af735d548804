"""The import's fast field checks (api/schema.py `_FieldPlans`: field names checked once per
tuple of keys, a quick test per known field) accept and refuse exactly as the field-by-field
path does, with the same reason, whether an import's customers share their keys or not."""

import pytest

from api import schema
from tests.api_fixtures import customer, post, seed_import

BASE = customer("X", dpd=5, number_of_ovd_inst=6, total_ovd_amount=3211100, due_date="2021-07-13")

# Values for one field each, over the edges of what the fast tests vouch for.
VALUES = {
    "contract_number": [
        "HD1",
        "a" * 64,
        "a" * 65,
        "HD}{1",
        "HD%0A1",
        "HD1\n",
        " HD1",
        "",
        "Đ1",
        5,
        None,
        True,
        1.5,
        "x" * 1025,
        "ab\u009bcd",
        "ab\udc00",
    ],
    "upcoming_amount": [
        0,
        5,
        10**15 - 1,
        10**15,
        -1,
        -5,
        True,
        False,
        10.0,
        10.5,
        "42",
        "042",
        "4 2",
        "năm",
        None,
        float("inf"),
        [1],
        {"a": 1},
        2**70,
    ],
    "dpd": [0, 89, -0, "5", " 5", 5.0],
    "upcoming_due_date": [
        "2021-07-13",
        "2021-7-13",
        "13/07/2021",
        "1/7/2021",
        "2021-02-31",
        " 2021-07-13",
        "2021-07-13 ",
        "2021-07-13\n",
        "2021\x00-07-13",
        "２０２１-07-13",
        "tomorrow",
        "",
        20210713,
        None,
        "2021-07-13" + "x" * 1024,
    ],
    "note": [
        "free text",
        "Nguyễn",
        "line1\nline2",
        "ab\u009bcd",
        "ab\udc00",
        "x" * 1024,
        "x" * 1025,
        1,
        -1,
        1.5,
        float("nan"),
        True,
        None,
        ["a"],
        {"a": 1},
    ],
}
CASES = [(name, value) for name, values in VALUES.items() for value in values]


def outcome(raw, plans):
    """What `_customer` makes of `raw`: ('ok', fields, mobiles, dropped) or ('refused', reason)."""
    dropped = []
    try:
        c = schema._customer(str(raw["id"]), raw, dropped, plans)
    except schema.CustomerRejected as e:
        return ("refused", str(e))
    return ("ok", c.fields, list(c.fields), c.mobiles, dropped)


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}"[:60] for n, v in CASES])
def test_a_field_value_gets_the_same_answer_with_or_without_a_plan(name, value):
    raw = {**BASE, name: value}
    plans = schema._FieldPlans()
    plans.get(dict(BASE))  # a plan made by an earlier customer of other keys
    plans.get(raw)
    assert outcome(raw, plans) == outcome(raw, None)


@pytest.mark.parametrize(
    "raw",
    [
        {**BASE, "bad name": 1},
        {"bad name": 1, **BASE, "dpd": "x"},  # the name comes first: its reason wins, as before
        {**BASE, "dpd": "x", "bad name": 1},  # the value comes first
        {**BASE, "x" * 65: 1},
        {**BASE, "mobiles": ["0982596021", "12345"]},
        {**BASE, "mobiles": ["0982596021", 982596022]},
        {**BASE, "mobiles": ["+84982596021", "0982596021"]},
        {**BASE, "mobiles": ["0982596021", "0982596021"]},
        {**BASE, "mobiles": ["0982596021 "]},
        {**BASE, "mobiles": ["0982596021"] * 11},
        {**BASE, "mobiles": "0982596021"},
        {**BASE, "mobiles": []},
        {**BASE, "mobiles": [True]},
        {key: value for key, value in BASE.items() if key != "mobiles"},
    ],
)
def test_names_and_mobiles_get_the_same_answer_with_or_without_a_plan(raw):
    plans = schema._FieldPlans()
    assert outcome(raw, plans) == outcome(raw, None)
    assert outcome(raw, plans) == outcome(raw, None)  # and again from the remembered plan


def test_more_key_tuples_than_remembered_still_get_checked():
    plans = schema._FieldPlans()
    for n in range(schema._FieldPlans.MAX_PLANS + 5):
        raw = {**BASE, f"extra_{n}": n, "dpd": "x" if n % 2 else n}
        assert outcome(raw, plans) == outcome(raw, None)


def test_one_import_of_customers_with_the_same_keys_refuses_each_bad_one_with_its_reason(client, db):
    body = seed_import()
    body["customers"] = [
        customer("A1", dpd=5, note="x"),
        customer("B1", dpd="năm", note="x"),
        customer("A2", dpd=7, note="y"),
        customer("B2", dpd=3, note="line1\nline2"),
        customer("B3", dpd=True, note="x"),
        customer("B4", dpd=3, note="x", upcoming_due_date="2021-02-31"),
    ]
    reply = post(client, "/queue", body).get_json()
    assert reply["data"] == {"fail": ["B1", "B2", "B3", "B4"], "success": ["A1", "A2"]}
    assert reply["errors"] == [
        {"id": "B1", "reason": "dpd: expected a whole number from 0 to 10^15"},
        {"id": "B2", "reason": "note: contains U+000A (a control character or half of a surrogate pair)"},
        {"id": "B3", "reason": "dpd: expected a whole number from 0 to 10^15"},
        {"id": "B4", "reason": "upcoming_due_date: expected a real date as YYYY-MM-DD or DD/MM/YYYY"},
    ]


def test_one_import_whose_customers_differ_in_keys_refuses_each_bad_one_with_its_reason(client, db):
    body = seed_import()
    body["customers"] = [
        customer("A1"),
        customer("B1", **{"bad name": 1}),
        customer("A2", note="x"),
        customer("B2", note=["a"]),
        {"id": "B3", "mobiles": ["0982596021"], "upcoming_due_date": "2021-07-13", "upcoming_amount": 5000000},
        customer("B4", upcoming_amount=-5),
        customer("A3"),
    ]
    reply = post(client, "/queue", body).get_json()
    assert reply["data"] == {"fail": ["B1", "B2", "B3", "B4"], "success": ["A1", "A2", "A3"]}
    assert reply["errors"] == [
        {"id": "B1", "reason": "field name 'bad name' is not an identifier"},
        {"id": "B2", "reason": "note: expected a string, number, boolean or null"},
        {"id": "B3", "reason": "template IVR-1 says 'contract_number' as digits: missing or empty"},
        {"id": "B4", "reason": "upcoming_amount: expected a whole number from 0 to 10^15"},
    ]
