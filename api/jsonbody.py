"""A request's JSON body read with memory in proportion to its size.

`json.loads` builds the whole document first, and Python objects can take 24 times the bytes
that spell them (`{},` is 3 bytes, an empty dict 64): a 5 MB body of `{}` customers took
1 GB before the first check ran. Here the top-level object is read key by key, and the
arrays named in `streams` item by item: each item goes to its callback, which keeps what it
needs (a checked customer, a reason) and drops the rest before the next item is read.
Nothing is ever decoded in one piece that could outgrow its bytes many times:

- a value whose first `WINDOW` characters hold it whole is decoded from those (at most 24×
  1 KiB);
- a longer one that is an object or array is measured first, at C speed, and refused when it
  holds more than `MAX_VALUES` values (a customer has a few dozen; a long string costs only
  its length);
- a streamed array ends at `max_items` items, with a BodyError naming the cap.

The decoding itself is the standard library's (its C scanner, one value at a time), with the
same strictness: UTF-8, no NaN or Infinity, no control characters in strings, nothing after
the document. A key given twice at the top level is refused (which one would count?).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from json.decoder import scanstring  # type: ignore[attr-defined]  # the C string scanner, not in typeshed

BODY_KEY = "autocall.body"  # the WSGI environ key under which api/http.py leaves a body read whole
WINDOW = 1024  # characters tried first for one value: a customer usually fits
MAX_VALUES = 10_000  # values in one top-level value or streamed item beyond the first window

_WS = re.compile(r"[ \t\n\r]*")
# A string (skipped whole; an unclosed one runs to the end in one match, for a failed match at
# each of its escaped quotes made the walk quadratic: 60 KB of `["\"\"…` held every connection 25 s)
# or a bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]')


class BodyError(ValueError):
    """The body is not acceptable JSON; `field` is where ("body" or a top-level key)."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclasses.dataclass(frozen=True)
class Streamed:
    """What stands in the body for an array that was handed to its callback item by item."""

    count: int


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed")


_SCAN = json.JSONDecoder(parse_constant=_reject_constant).scan_once  # type: ignore[attr-defined]


def read(raw: bytes, streams: dict[str, Callable[[int, object, dict], None]], max_items: int):
    """The document in `raw`; in a top-level object, an array under a key of `streams` is
    handed to `streams[key](index, item, head)` and stands as Streamed(count); `head` holds
    the top-level keys read before it (an import's template, when it comes first). BodyError
    if the body is not UTF-8, not JSON, too dense, or a streamed array has over `max_items` items."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("body", "body is not UTF-8") from None
    return _Reader(text, streams, max_items).document()


class _Reader:
    def __init__(self, text: str, streams, max_items: int):
        self.text, self.streams, self.max_items = text, streams, max_items

    def document(self):
        pos = self._ws(0)
        if self.text.startswith("{", pos):
            value, pos = self._object(pos)
        else:
            value, pos = self._value(pos, "body")
        pos = self._ws(pos)
        if pos != len(self.text):
            raise self._error("Extra data", pos)
        return value

    def _object(self, pos: int) -> tuple[dict, int]:
        body: dict = {}
        pos = self._ws(pos + 1)
        if self.text.startswith("}", pos):
            return body, pos + 1
        while True:
            if not self.text.startswith('"', pos):
                raise self._error("Expecting property name enclosed in double quotes", pos)
            key, pos = self._string(pos)
            if key in body:
                raise BodyError(key[:80], f"the key {key[:80]!r} appears more than once")
            pos = self._ws(pos)
            if not self.text.startswith(":", pos):
                raise self._error("Expecting ':' delimiter", pos)
            pos = self._ws(pos + 1)
            if key in self.streams and self.text.startswith("[", pos):
                count, pos = self._stream(pos, key, body)
                body[key] = Streamed(count)
            else:
                body[key], pos = self._value(pos, key)
            pos = self._ws(pos)
            if self.text.startswith(",", pos):
                pos = self._ws(pos + 1)
            elif self.text.startswith("}", pos):
                return body, pos + 1
            else:
                raise self._error("Expecting ',' delimiter", pos)

    def _stream(self, pos: int, key: str, head: dict) -> tuple[int, int]:
        each, count = self.streams[key], 0
        pos = self._ws(pos + 1)
        if self.text.startswith("]", pos):
            return 0, pos + 1
        while True:
            if count == self.max_items:
                raise BodyError(key, f"more than {self.max_items:,} items; send at most {self.max_items:,} per request")
            item, pos = self._value(pos, f"{key}[{count}]")
            each(count, item, head)
            count += 1
            pos = self._ws(pos)
            if self.text.startswith(",", pos):
                pos = self._ws(pos + 1)
            elif self.text.startswith("]", pos):
                return count, pos + 1
            else:
                raise self._error("Expecting ',' delimiter", pos)

    def _value(self, pos: int, where: str):
        """The value at `pos` and the position after it, decoded within the bounds above."""
        text = self.text
        window = text[pos : pos + WINDOW]
        try:
            value, end = _SCAN(window, 0)
            # Whole in the window: a number cut by its end ("1.5e" of "1.5e10") parses short,
            # leaving at most two characters, so a value counts only if three more follow.
            if end + 2 < len(window) or pos + len(window) == len(text):
                return value, pos + end
        except (json.JSONDecodeError, StopIteration):
            pass  # longer than the window, or not JSON: measured below, or its error raised below
        if text.startswith(("{", "["), pos):
            self._measure(pos, where)
        try:
            return _SCAN(text, pos)
        except StopIteration:
            raise self._error("Expecting value", pos) from None

    def _measure(self, pos: int, where: str):
        """Refuse the object or array at `pos` if it holds more than MAX_VALUES values."""
        text, depth, containers, end = self.text, 0, 0, len(self.text)
        for token in _TOKEN.finditer(text, pos):
            bracket = text[token.start()]
            if bracket in "[{":
                depth += 1
                containers += 1
            elif bracket in "]}":
                depth -= 1
            if containers > MAX_VALUES or depth == 0:
                end = token.end()
                break
        values = containers + text.count(",", pos, end) + text.count(":", pos, end)
        if values > MAX_VALUES:
            raise BodyError(where, f"{where} holds more than {MAX_VALUES:,} values")

    def _string(self, pos: int) -> tuple[str, int]:
        try:
            return scanstring(self.text, pos + 1)
        except json.JSONDecodeError as e:
            raise self._error(e.msg, e.pos) from None

    def _ws(self, pos: int) -> int:
        match = _WS.match(self.text, pos)
        return match.end() if match else pos

    def _error(self, message: str, pos: int) -> BodyError:
        return BodyError("body", f"body is not valid JSON: {json.JSONDecodeError(message, self.text, pos)}")
