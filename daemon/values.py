"""The one grammar for the customer values we read aloud: dates and whole numbers.

The API validates an import with it and `say_vi` speaks with it, so a value the API accepts is
a value the voice can say, and the two can never drift apart.
"""

from __future__ import annotations

import datetime
import functools
import re
import unicodedata

# ASCII digits only, as for every number here (`\d` alone takes any script's: "２０２１-０７-１３")
ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
VN_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
DATE_FORMS = "YYYY-MM-DD or DD/MM/YYYY"


@functools.lru_cache(maxsize=4096)  # a queue's customers share a handful of due dates
def parse_date(text: str) -> datetime.date | None:
    """`YYYY-MM-DD` or `DD/MM/YYYY` (day and month may be one digit) as a real date, else None."""
    text = text.strip()
    iso, vn = ISO_DATE.fullmatch(text), VN_DATE.fullmatch(text)
    if iso:
        year, month, day = (int(part) for part in iso.groups())
    elif vn:
        day, month, year = (int(part) for part in vn.groups())
    else:
        return None
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


def whole_number(value) -> int | None:
    """An int, an integral float or a string of ASCII digits as an int >= 0; else None.

    Booleans are not numbers here (JSON `true` is not 1)."""
    kind = type(value)
    if kind is str and value.isascii() and value.isdigit():
        return int(value)
    if kind is float and value.is_integer():
        value = int(value)
    elif kind is not int:
        return None
    return value if value >= 0 else None


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): drawn as nothing whatever
# their category (the combining grapheme joiner U+034F, variation selectors, Hangul fillers).
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


def new_id_problem(ext_id: str) -> str | None:
    """Why an import cannot create a customer `ext_id` that its queue does not hold yet: its
    look must make it one person. So it must be in Unicode's composed form (NFC, as Windows and
    web forms send Vietnamese; the decomposed twin macOS can send looks the same and would be
    another customer), and hold no code point drawn as nothing ("KH1" + U+034F looks like "KH1").
    A customer already stored stays reachable by its id as it is (re-import, DNC, reads)."""
    if ext_id.isascii():
        return None
    if match := _IGNORABLE.search(ext_id):
        return f"id contains the invisible character U+{ord(match.group()):04X}"
    if not unicodedata.is_normalized("NFC", ext_id):
        return "id is not in Unicode's composed form (NFC): send its accents composed, as one character each"
    return None
