"""Vietnamese reading of numbers, money, dates and codes, written out word for word."""

import datetime

import pytest

from daemon import say_vi
from daemon.errors import AutocallError
from daemon.say_vi import NORTH, SOUTH, SayError

# n, northern reading, southern reading
NUMBERS = [
    (0, 'không', 'không'),
    (1, 'một', 'một'),
    (5, 'năm', 'năm'),
    (10, 'mười', 'mười'),
    (11, 'mười một', 'mười một'),
    (14, 'mười bốn', 'mười bốn'),
    (15, 'mười lăm', 'mười lăm'),
    (20, 'hai mươi', 'hai mươi'),
    (21, 'hai mươi mốt', 'hai mươi mốt'),
    (24, 'hai mươi tư', 'hai mươi bốn'),
    (25, 'hai mươi lăm', 'hai mươi lăm'),
    (100, 'một trăm', 'một trăm'),
    (101, 'một trăm linh một', 'một trăm lẻ một'),
    (105, 'một trăm linh năm', 'một trăm lẻ năm'),
    (110, 'một trăm mười', 'một trăm mười'),
    (115, 'một trăm mười lăm', 'một trăm mười lăm'),
    (1000, 'một nghìn', 'một ngàn'),
    (1001, 'một nghìn không trăm linh một', 'một ngàn không trăm lẻ một'),
    (1005, 'một nghìn không trăm linh năm', 'một ngàn không trăm lẻ năm'),
    (1010, 'một nghìn không trăm mười', 'một ngàn không trăm mười'),
    (1015, 'một nghìn không trăm mười lăm', 'một ngàn không trăm mười lăm'),
    (2021, 'hai nghìn không trăm hai mươi mốt', 'hai ngàn không trăm hai mươi mốt'),
    (10000, 'mười nghìn', 'mười ngàn'),
    (100000, 'một trăm nghìn', 'một trăm ngàn'),
    (1000000, 'một triệu', 'một triệu'),
    (1015000, 'một triệu không trăm mười lăm nghìn', 'một triệu không trăm mười lăm ngàn'),
    (3211100, 'ba triệu hai trăm mười một nghìn một trăm', 'ba triệu hai trăm mười một ngàn một trăm'),
    (5000000, 'năm triệu', 'năm triệu'),
    (1000000000, 'một tỷ', 'một tỷ'),
    (1000000001, 'một tỷ không trăm linh một', 'một tỷ không trăm lẻ một'),
    (1000015000, 'một tỷ không trăm mười lăm nghìn', 'một tỷ không trăm mười lăm ngàn'),
    (
        999999999999,
        'chín trăm chín mươi chín tỷ chín trăm chín mươi chín triệu '
        'chín trăm chín mươi chín nghìn chín trăm chín mươi chín',
        'chín trăm chín mươi chín tỷ chín trăm chín mươi chín triệu '
        'chín trăm chín mươi chín ngàn chín trăm chín mươi chín',
    ),
    (10**12, 'một nghìn tỷ', 'một ngàn tỷ'),
    (2 * 10**12 + 10**6, 'hai nghìn tỷ không trăm linh một triệu', 'hai ngàn tỷ không trăm lẻ một triệu'),
]

DATES = [
    (
        '13/07/2021',
        'ngày mười ba tháng bảy năm hai nghìn không trăm hai mươi mốt',
        'ngày mười ba tháng bảy năm hai ngàn không trăm hai mươi mốt',
    ),
    (
        '01/04/2024',
        'ngày một tháng tư năm hai nghìn không trăm hai mươi tư',
        'ngày một tháng tư năm hai ngàn không trăm hai mươi bốn',
    ),
    (
        '31/12/2099',
        'ngày ba mươi mốt tháng mười hai năm hai nghìn không trăm chín mươi chín',
        'ngày ba mươi mốt tháng mười hai năm hai ngàn không trăm chín mươi chín',
    ),
    (
        '2021-07-13',
        'ngày mười ba tháng bảy năm hai nghìn không trăm hai mươi mốt',
        'ngày mười ba tháng bảy năm hai ngàn không trăm hai mươi mốt',
    ),
    (
        '4/4/2024',
        'ngày bốn tháng tư năm hai nghìn không trăm hai mươi tư',
        'ngày bốn tháng tư năm hai ngàn không trăm hai mươi bốn',
    ),
]


@pytest.mark.parametrize('n, north, south', NUMBERS)
def test_number_reads_as_a_northern_speaker_says_it(n, north, south):
    assert say_vi.text(say_vi.number(n, NORTH)) == north


@pytest.mark.parametrize('n, north, south', NUMBERS)
def test_number_reads_as_a_southern_speaker_says_it(n, north, south):
    assert say_vi.text(say_vi.number(n, SOUTH)) == south


@pytest.mark.parametrize('value, north, south', DATES)
def test_date_reads_day_month_year_in_the_north(value, north, south):
    assert say_vi.text(say_vi.date(value, NORTH)) == north


@pytest.mark.parametrize('value, north, south', DATES)
def test_date_reads_day_month_year_in_the_south(value, north, south):
    assert say_vi.text(say_vi.date(value, SOUTH)) == south


def test_date_accepts_a_date_object():
    assert say_vi.date(datetime.date(2021, 7, 13)) == say_vi.date('2021-07-13')


def test_similar_sounds_have_distinct_files():
    assert say_vi.number(11) == ['muoi_huyen', 'mot']
    assert say_vi.number(21) == ['hai', 'muoi', 'mot_sac']
    assert say_vi.number(105) == ['mot', 'tram', 'linh', 'nam']
    assert say_vi.number(25) == ['hai', 'muoi', 'lam']
    assert say_vi.number(24, NORTH)[-1] == 'tu' and say_vi.number(24, SOUTH)[-1] == 'bon'


@pytest.mark.parametrize('value', [5000000, 5000000.0, '5000000', '5.000.000', '5,000,000', '5000000.00'])
def test_money_accepts_the_shapes_an_amount_arrives_in(value):
    assert say_vi.text(say_vi.money(value)) == 'năm triệu đồng'


def test_money_of_zero_is_khong_dong():
    assert say_vi.text(say_vi.money(0, SOUTH)) == 'không đồng'


@pytest.mark.parametrize(
    'value, spoken',
    [
        ('HD123456', 'hát đê một hai ba bốn năm sáu'),
        ('hd-0705', 'hát đê không bảy không năm'),
        ('QZ 9', 'quy dét chín'),
        ('HĐ-01', 'hát đê không một'),
        (4021, 'bốn không hai một'),
    ],
)
def test_digits_read_each_character_by_its_name(value, spoken):
    assert say_vi.text(say_vi.digits(value)) == spoken


def test_each_letter_has_its_own_recording():
    assert say_vi.digits('AB') == ['chu_a', 'chu_b']


@pytest.mark.parametrize(
    'kind, value',
    [
        ('number', -1),
        ('number', '12a'),
        ('number', 1.5),
        ('number', True),
        ('number', None),
        ('number', 10**18),
        ('number', '١٢'),
        ('money', -5000),
        ('money', 1500.5),
        ('money', '1,5'),
        ('money', '5.000,000'),
        ('money', ''),
        ('money', float('inf')),
        ('money', float('nan')),
        ('date', '31/02/2021'),
        ('date', '2021-13-01'),
        ('date', '2021/07/13'),
        ('date', '13-07-2021'),
        ('date', 20210713),
        ('date', ''),
        ('digits', 'HƯ123'),
        ('digits', '12;3'),
        ('digits', '--'),
        ('digits', -12),
        ('digits', 1.0),
    ],
)
def test_unspeakable_values_raise_a_named_error(kind, value):
    with pytest.raises(SayError) as info:
        say_vi.say(kind, value)
    assert isinstance(info.value, AutocallError)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize('kind, value', [('money', 10**1000), ('digits', 'A' * 900 + ';'), ('date', '9' * 1000)])
def test_a_long_value_is_quoted_cut_short_in_its_error(kind, value):
    # An import lists up to 1,000 such reasons: each would repeat the whole value.
    why = say_vi.problem(kind, value)
    shown = repr(value)[: say_vi.SHOWN]
    assert f'{shown}… ({len(repr(value))} characters)' in why and len(why) < 200, why


def test_unknown_kind_and_variant_are_named_errors():
    with pytest.raises(SayError, match='percent'):
        say_vi.say('percent', 5)
    with pytest.raises(SayError, match='central'):
        say_vi.variant('central')


@pytest.mark.parametrize('kind', say_vi.KINDS)
@pytest.mark.parametrize('var', [NORTH, SOUTH])
def test_possible_slugs_cover_what_say_returns(kind, var):
    samples = {
        'number': range(0, 3000, 7),
        'money': [10**k + 15 * k for k in range(12)],
        'date': [datetime.date(2024, m, d) for m in range(1, 13) for d in (1, 4, 15, 21, 24, 25, 28)],
        'digits': ['ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'],
    }[kind]
    used = {slug for value in samples for slug in say_vi.say(kind, value, var)}
    assert used <= say_vi.possible_slugs(kind, var)
    assert say_vi.possible_slugs(kind, var) <= set(say_vi.WORDS)
