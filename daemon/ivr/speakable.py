"""Which customers a template can speak to: `FieldCheck`, compiled once per Template.

A call fails before it starts when the template says a field the customer lacks, or one
whose value cannot be read aloud as the template says it (`"150.000đ"`, `-5` or `true` as a
number, `1500.5` as money). The API checks each customer of an import with its template's
check (a per-customer `fail`, not a later `failed`); the dialer counts with it the pending
customers a changed template can no longer speak to (the stop reason of the queue).

The check agrees with `Template.render`: `problem(fields)` is None exactly when rendering
those fields succeeds (both read the value as `say_vi.say` does). It looks only at the
fields the template speaks, each (field, way of saying it) once.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from daemon import say_vi


@dataclasses.dataclass
class Tally:
    """What a check found over many customers: how many it looked at, how many it cannot
    speak to, and per problem (e.g. "'dpd' missing") the number of customers who have it."""

    total: int = 0
    unspeakable: int = 0
    problems: Counter = dataclasses.field(default_factory=Counter)

    def summary(self, limit: int = 5) -> str:
        """`'dpd' missing for 221, 'fee' not sayable as money for 3` (the most common first)."""
        return ', '.join(f'{what} for {n}' for what, n in self.problems.most_common(limit))


class FieldCheck:
    """What template `template` (its name) says of a customer: the (field, kind) pairs in `says`,
    each with its fast test; see the module's docstring."""

    def __init__(self, template: str, says):
        self.template = template
        self.says = tuple(dict.fromkeys(says))  # (field, kind) in the order the call says them
        self._tests = tuple((field, kind, say_vi.plainly_sayable(kind)) for field, kind in self.says)

    def problem(self, fields) -> str | None:
        """Why this template cannot speak to a customer with `fields` (the first problem, as
        one sentence), or None when it can."""
        for field, kind, plain in self._tests:
            if not plain(fields.get(field)):  # the usual value passes here, without a look at say_vi
                why = _why(kind, fields.get(field))
                if why is not None:
                    return f'template {self.template} says {field!r} as {kind}: {why}'
        return None

    def tally(self, many_fields) -> Tally:
        """Every problem of every customer in `many_fields` (an iterable of field mappings)."""
        tally = Tally()
        for fields in many_fields:
            tally.total += 1
            found = {_short(field, kind, why) for field, kind, why in self._problems(fields)}
            if found:
                tally.unspeakable += 1
                tally.problems.update(found)
        return tally

    def _problems(self, fields):
        for field, kind, plain in self._tests:
            value = fields.get(field)
            why = None if plain(value) else _why(kind, value)
            if why is not None:
                yield field, kind, why


def _why(kind: str, value) -> str | None:
    return 'missing or empty' if value is None or value == '' else say_vi.problem(kind, value)


def _short(field: str, kind: str, why: str) -> str:
    return f'{field!r} missing' if why == 'missing or empty' else f'{field!r} not sayable as {kind}'
