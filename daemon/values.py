"""The one grammar for the customer values we read aloud: dates and whole numbers.

The API validates an import with it and `say_vi` speaks with it, so a value the API accepts is
a value the voice can say, and the two can never drift apart.
"""

from __future__ import annotations

import datetime
import functools
import re

ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
VN_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
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
