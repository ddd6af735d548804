"""FieldCheck (template.speakable): which customers a template can speak to, agreeing with render."""

import datetime
import os

import pytest

from daemon import ivr, say_vi

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOUNDS = os.path.join(REPO, 'ivr_templates', 'sounds')

EXTRA = '''
[template]
fields = ["fee", "visits", "paid_on", "code"]

[[step]]
id = "info"
play = ["co_khoan_thanh_toan", { money = "fee" }, { number = "visits" }, { date = "paid_on" }, { digits = "code" }]

[[step]]
id = "again"
play = [{ money = "fee" }]
next = "end"

[[step]]
id = "end"
hangup = true
'''
GOOD = {'fee': 150000, 'visits': 3, 'paid_on': '2021-07-13', 'code': 'HD-12'}

# Values a customer may send (any JSON scalar), said every way a template may say them.
VALUES = [
    0,
    5,
    -5,
    10**18 - 1,
    10**18,
    10**400,  # JSON allows it, and float() of it raises OverflowError
    1500.5,
    1500.0,
    float('inf'),
    True,
    False,
    '150.000đ',
    '150.000',
    '150,000',
    '5000000.00',
    '5000000.5',
    '12',
    '-3',
    '',
    ' ',
    '1' * 19,
    '2021-07-13',
    '13/07/2021',
    '2021-02-30',
    'HD-123/4',
    'Đ1',
    'hợp',
    '._-',
    '٣',
    '１２',
    datetime.date(2021, 7, 13),
    None,
    [],
]


def _said(kind, value):
    try:
        say_vi.say(kind, value)
    except say_vi.SayError:
        return False
    return True


@pytest.mark.parametrize('kind', say_vi.KINDS)
@pytest.mark.parametrize('value', VALUES, ids=repr)
def test_problem_is_none_exactly_when_say_speaks_the_value(kind, value):
    assert (say_vi.problem(kind, value) is None) == _said(kind, value)


@pytest.fixture
def template(tmp_path):
    path = tmp_path / 'EXTRA.toml'
    path.write_text(EXTRA, encoding='utf-8')
    return ivr.load(str(path), SOUNDS)


def _renders(template, fields):
    try:
        template.render(fields)
    except ivr.RenderError:
        return False
    return True


@pytest.mark.parametrize('field', sorted(GOOD))
@pytest.mark.parametrize('value', VALUES, ids=repr)
def test_the_check_agrees_with_render(template, field, value):
    fields = {**GOOD, field: value}
    assert (template.speakable.problem(fields) is None) == _renders(template, fields)


@pytest.mark.parametrize(
    'fee, reason',
    [
        ('150.000đ', "says 'fee' as money: cannot say '150.000đ'"),
        (-5, "says 'fee' as money: cannot say -5 as an amount: it is negative"),
        (1500.5, "says 'fee' as money: cannot say 1500.5"),
        (
            10**400,
            f"says 'fee' as money: cannot say {str(10**400)[:40]}… (401 characters)"
            " as an amount: larger than 999999999999999999",
        ),
        (True, "says 'fee' as money: cannot say True"),
        (None, "says 'fee' as money: missing or empty"),
    ],
)
def test_a_value_that_cannot_be_said_aloud_is_named_with_the_reason(template, fee, reason):
    problem = template.speakable.problem({**GOOD, 'fee': fee})
    assert problem.startswith('template EXTRA ') and reason in problem


def test_the_check_looks_only_at_the_fields_the_template_speaks_each_way_once(template):
    assert template.speakable.says == (('fee', 'money'), ('visits', 'number'), ('paid_on', 'date'), ('code', 'digits'))
    assert template.speakable.problem({**GOOD, 'unspoken': -5, 'contract_number': None}) is None


def test_a_tally_counts_customers_and_each_problem(template):
    many = [GOOD, {**GOOD, 'fee': None}, {**GOOD, 'fee': None, 'visits': -1}, {**GOOD, 'code': '?'}]
    tally = template.speakable.tally(many)
    assert (tally.total, tally.unspeakable) == (4, 3)
    assert (
        tally.summary()
        == "'fee' missing for 2, 'visits' not sayable as number for 1, 'code' not sayable as digits for 1"
    )
