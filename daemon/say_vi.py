"""Vietnamese numbers, money, dates and digit strings as prerecorded word files.

FreeSWITCH has no Vietnamese `say` module, so a value is spoken as a sequence of
word recordings. Every function here returns *slugs*: ASCII names of word files
(``ivr_templates/sounds/vi/words/<slug>.wav``). ``text(slugs)`` gives the
Vietnamese a listener hears. Distinct sounds have distinct slugs (``muoi_huyen``
is "mười", ``muoi`` is "mươi"; ``mot`` is "một", ``mot_sac`` is "mốt", ...).

Spoken rules (what callers may rely on):
- 11 "mười một" but 21 "hai mươi mốt"; 15 "mười lăm", 25 "hai mươi lăm", 105
  "một trăm linh năm"; 24 "hai mươi tư" (north) / "hai mươi bốn" (south);
  14 is always "mười bốn".
- A zero tens digit after a hundred is "linh" (north) / "lẻ" (south): 101.
- Inside a larger number a group keeps its hundreds even when zero:
  2021 "hai nghìn không trăm hai mươi mốt", 1015000 "một triệu không trăm
  mười lăm nghìn". All-zero groups are silent: 1000000001 "một tỷ không trăm
  linh một" (what a Vietnamese speaker says, never "không triệu không nghìn").
- Thousands are "nghìn" (north) / "ngàn" (south); then "triệu", "tỷ"; above a
  tỷ the count of tỷ is read as a number: 10**12 "một nghìn tỷ", 10**18 is
  beyond ``MAX_NUMBER`` and refused.
- Dates: "ngày <day> tháng <month> năm <year>", month 4 is "tư".
- Digit strings read each digit; ASCII letters by their Vietnamese letter names
  from their own recordings (D and Đ alike as "đê", as in HD "hát đê"); spaces,
  '-', '/', '.', '_' are silent; any other character is refused.
Bad values raise ``SayError`` rather than produce a wrong sentence.
"""

import datetime
import re
from dataclasses import dataclass
from types import MappingProxyType

from daemon import values
from daemon.errors import AutocallError

MAX_NUMBER = 10**18 - 1
KINDS = ('money', 'date', 'number', 'digits')

_DIGITS = ('khong', 'mot', 'hai', 'ba', 'bon', 'nam', 'sau', 'bay', 'tam', 'chin')
_DIGIT_TEXT = ('không', 'một', 'hai', 'ba', 'bốn', 'năm', 'sáu', 'bảy', 'tám', 'chín')
_LETTER_TEXT = {
    'a': 'a',
    'b': 'bê',
    'c': 'xê',
    'd': 'đê',
    'e': 'e',
    'f': 'ép',
    'g': 'giê',
    'h': 'hát',
    'i': 'i',
    'j': 'gi',
    'k': 'ca',
    'l': 'e lờ',
    'm': 'em mờ',
    'n': 'en nờ',
    'o': 'o',
    'p': 'pê',
    'q': 'quy',
    'r': 'e rờ',
    's': 'ét xì',
    't': 'tê',
    'u': 'u',
    'v': 'vê',
    'w': 'vê kép',
    'x': 'ích xì',
    'y': 'i dài',
    'z': 'dét',
}
WORDS = MappingProxyType(
    {
        **dict(zip(_DIGITS, _DIGIT_TEXT)),
        'mot_sac': 'mốt',
        'tu': 'tư',
        'lam': 'lăm',
        'nham': 'nhăm',
        'muoi_huyen': 'mười',
        'muoi': 'mươi',
        'tram': 'trăm',
        'linh': 'linh',
        'le': 'lẻ',
        'nghin': 'nghìn',
        'ngan': 'ngàn',
        'trieu': 'triệu',
        'ty': 'tỷ',
        'dong': 'đồng',
        'ngay': 'ngày',
        'thang': 'tháng',
        **{f'chu_{letter}': name for letter, name in _LETTER_TEXT.items()},
    }
)
"""Every word file say_vi can ask for: slug → the Vietnamese it must say.
'năm' the year and 'năm' the digit five sound the same and share ``nam``."""

_SILENT_IN_DIGITS = frozenset(' -/._')
_GROUPED_AMOUNT = re.compile(r'\d{1,3}(?:([.,])\d{3})(?:\1\d{3})*')


class SayError(AutocallError):
    """A value cannot be spoken; the message names the value and the reason."""


@dataclass(frozen=True)
class Variant:
    """Regional choices. Each attribute is a slug."""

    name: str
    thousand: str  # nghin / ngan
    zero_tens: str  # linh / le: the 0 of 101
    four_after_tens: str  # tu / bon: the 4 of 24
    five_after_tens: str  # lam / nham: the 5 of 25


NORTH = Variant('north', thousand='nghin', zero_tens='linh', four_after_tens='tu', five_after_tens='lam')
SOUTH = Variant('south', thousand='ngan', zero_tens='le', four_after_tens='bon', five_after_tens='lam')
VARIANTS = MappingProxyType({'north': NORTH, 'south': SOUTH})


def variant(name):
    """The Variant called `name` ('north' or 'south'); SayError otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise SayError(f'unknown variant {name!r}: use one of {", ".join(VARIANTS)}') from None


def text(slugs):
    """The Vietnamese sentence the word files `slugs` say, words separated by spaces."""
    return ' '.join(WORDS[slug] for slug in slugs)


def say(kind, value, var=NORTH):
    """Slugs for `value` spoken as `kind` (one of KINDS)."""
    if kind == 'money':
        return money(value, var)
    if kind == 'date':
        return date(value, var)
    if kind == 'number':
        return number(value, var)
    if kind == 'digits':
        return digits(value)
    raise SayError(f'unknown way to say a value {kind!r}: use one of {", ".join(KINDS)}')


def problem(kind, value):
    """None when ``say(kind, value)`` would speak `value`, else the message of the SayError it
    would raise. Cheap for the usual values (no slugs are built): the import checks every
    customer with it."""
    if plainly_sayable(kind)(value):
        return None
    try:
        say(kind, value)
    except SayError as exc:
        return str(exc)
    return None


def plainly_sayable(kind):
    """A test true for the usual values `say(kind, value)` speaks (an int, a digit string, a
    date, a plain code), built on no slug: a fast path. It accepts nothing `say` refuses;
    where it says no, `problem` gives the answer."""
    return _PLAIN.get(kind, _never)


_PLAIN_CODE = re.compile(r'[ ./_-]*[0-9A-Za-zĐđ][0-9A-Za-zĐđ ./_-]*')


def _plain_number(value):
    kind = type(value)
    if kind is int:
        return 0 <= value <= MAX_NUMBER
    return kind is str and value.isascii() and value.isdigit() and len(value) <= 18


def _plain_date(value):
    return type(value) is str and values.parse_date(value) is not None


def _plain_code(value):
    kind = type(value)
    if kind is int:
        return value >= 0
    return kind is str and _PLAIN_CODE.fullmatch(value) is not None


def _never(value):
    return False


_PLAIN = {'money': _plain_number, 'number': _plain_number, 'date': _plain_date, 'digits': _plain_code}


def possible_slugs(kind, var=NORTH):
    """Every slug `say(kind, ..., var)` may return, for checking that the files exist."""
    if kind not in KINDS:
        raise SayError(f'unknown way to say a value {kind!r}: use one of {", ".join(KINDS)}')
    if kind == 'digits':
        return frozenset(_DIGITS) | {f'chu_{letter}' for letter in _LETTER_TEXT}
    slugs = set(_DIGITS) | {'mot_sac', 'lam', 'muoi_huyen', 'muoi', 'tram', 'trieu', 'ty'}
    slugs |= {var.thousand, var.zero_tens, var.four_after_tens, var.five_after_tens}
    slugs |= {'dong'} if kind == 'money' else set()
    slugs |= {'ngay', 'thang', 'tu'} if kind == 'date' else set()
    return frozenset(slugs)


def number(value, var=NORTH):
    """Slugs reading a whole number 0..MAX_NUMBER (int or a string of digits)."""
    n = _whole_number(value, 'a number')
    return ['khong'] if n == 0 else _positive(n, var, full=False)


def money(value, var=NORTH):
    """Slugs reading an amount of đồng: ``number`` then 'đồng'.

    Accepts an int, a float with no fraction (JSON numbers), or a string of digits,
    optionally grouped by thousands with '.' or ',' ("5.000.000") or ending in
    ".0"/".00". VND has no subunit: a fraction is refused, never rounded."""
    if isinstance(value, str):
        value = _amount_text(value)
    return number(_whole_number(value, 'an amount'), var) + ['dong']


def date(value, var=NORTH):
    """Slugs reading a date: ngày <d> tháng <m> năm <y>.

    Accepts a datetime.date, 'YYYY-MM-DD' or 'DD/MM/YYYY' (day and month may be one digit)."""
    day = _parse_date(value)
    month = ['tu'] if day.month == 4 else number(day.month, var)
    return ['ngay'] + number(day.day, var) + ['thang'] + month + ['nam'] + number(day.year, var)


def digits(value):
    """Slugs reading a code one character at a time: "HD-123" → hát đê một hai ba."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str):
        raise SayError(f'cannot read {_shown(value)} digit by digit: expected text or a whole number')
    slugs = []
    for char in value:
        if char in _SILENT_IN_DIGITS:
            continue
        if char.isascii() and char.isdigit():
            slugs.append(_DIGITS[int(char)])
        elif char.isascii() and char.isalpha():
            slugs.append(f'chu_{char.lower()}')
        elif char in 'Đđ':
            slugs.append('chu_d')  # D and Đ are both "đê" in a spoken code
        else:
            raise SayError(f'cannot read {_shown(value)} digit by digit: no recording for {char!r}')
    if not slugs:
        raise SayError(f'cannot read {_shown(value)} digit by digit: nothing to say')
    return slugs


def _positive(n, var, full):
    """Slugs for n > 0. `full`: a larger unit was already spoken, so a zero hundreds says 'không trăm'."""
    for size, unit in ((10**9, 'ty'), (10**6, 'trieu'), (10**3, var.thousand)):
        if n >= size:
            high, low = divmod(n, size)
            rest = _positive(low, var, full=True) if low else []
            return _positive(high, var, full) + [unit] + rest
    return _hundreds(n, var, full)


def _hundreds(n, var, full):
    hundreds, rest = divmod(n, 100)
    slugs = [_DIGITS[hundreds], 'tram'] if hundreds or full else []
    if rest:
        slugs += _tens(rest, var, after_hundreds=bool(slugs))
    return slugs


def _tens(n, var, after_hundreds):
    tens, unit = divmod(n, 10)
    if tens == 0:
        return [var.zero_tens, _DIGITS[unit]] if after_hundreds else [_DIGITS[unit]]
    if tens == 1:
        return ['muoi_huyen'] + {0: [], 5: ['lam']}.get(unit, [_DIGITS[unit]])
    special = {0: [], 1: ['mot_sac'], 4: [var.four_after_tens], 5: [var.five_after_tens]}
    return [_DIGITS[tens], 'muoi'] + special.get(unit, [_DIGITS[unit]])


def _whole_number(value, what):
    number = values.whole_number(value)
    if number is None:
        raise SayError(f'cannot say {_shown(value)} as {what}: {_not_whole(value)}')
    if number > MAX_NUMBER:
        raise SayError(f'cannot say {_shown(value)} as {what}: larger than {MAX_NUMBER}')
    return number


SHOWN = 40  # characters of a value quoted in a reason: a 1,000-digit amount is not repeated whole


def _shown(value) -> str:
    """`value` as a reason quotes it: its repr, cut to SHOWN characters with its length said."""
    text = repr(value)
    return text if len(text) <= SHOWN else f'{text[:SHOWN]}… ({len(text)} characters)'


def _not_whole(value):
    if isinstance(value, bool):
        return 'it is a yes/no value'
    if isinstance(value, float):
        return 'it has a fraction or is not finite'
    if isinstance(value, str):
        return 'expected digits only'
    if isinstance(value, int):
        return 'it is negative'
    return 'expected a whole number'


def _amount_text(value):
    """'5.000.000' / '5,000,000' / '5000000.00' → '5000000'; anything else is returned as is."""
    stripped = value.strip()
    if _GROUPED_AMOUNT.fullmatch(stripped):
        return re.sub(r'[.,]', '', stripped)
    whole, dot, fraction = stripped.partition('.')
    if dot and fraction and set(fraction) == {'0'} and len(fraction) <= 2:
        return whole
    return stripped


def _parse_date(value):
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    day = values.parse_date(value) if isinstance(value, str) else None
    if day is None:
        raise SayError(f'cannot say {_shown(value)} as a date: expected a real date as {values.DATE_FORMS}')
    return day
