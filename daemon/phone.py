"""Vietnamese phone numbers: accept what integrators send, keep one national form.

Accepted: `0xxxxxxxxx` (mobile, 10 digits), `02xxxxxxxxx` (landline, 11 digits), and the
same with the country code as `+84…`, `84…` or `0084…`. Spaces, dots, dashes and
parentheses between digits are ignored. The result is the national form with its
leading 0 (what Vietnamese carriers expect), digits only, so it is safe on the ESL wire.
"""

import re

from daemon.errors import AutocallError

_SEPARATORS = re.compile(r"[ .\-()]")
# Mobile prefixes in use since the 2018 renumbering: 03x, 05x, 07x, 08x, 09x.
_MOBILE = re.compile(r"0[35789][0-9]{8}")
_LANDLINE = re.compile(r"02[0-9]{9}")
_NATIONAL = re.compile(r"0[35789][0-9]{8}|02[0-9]{9}")
# in_national_form(text): a match (true) when the string `text` is what normalize returns for it;
# TypeError for anything but a string.
in_national_form = _NATIONAL.fullmatch


class InvalidPhone(AutocallError):
    """The value is not a Vietnamese phone number; the message says why."""


def normalize(value) -> str:
    """Return `value` in national form (e.g. '0982596021') or raise InvalidPhone."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidPhone(f"expected a string, got {type(value).__name__}")
    text = str(value).strip(" ")
    if _NATIONAL.fullmatch(text):  # the common case, already in national form
        return text
    if len(text) > 32:
        raise InvalidPhone("too long to be a phone number")
    digits = _SEPARATORS.sub("", text)
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("0084"):
        digits = "0" + digits[4:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        digits = "0" + digits[2:]
    if not digits.isascii() or not digits.isdigit():
        raise InvalidPhone(f"{text!r} holds characters other than digits")
    if _MOBILE.fullmatch(digits) or _LANDLINE.fullmatch(digits):
        return digits
    if not digits.startswith("0"):
        raise InvalidPhone(f"{text!r} starts with neither 0 nor the country code 84")
    raise InvalidPhone(f"{text!r} is not a Vietnamese mobile (10 digits) or landline (11 digits, 02…)")
