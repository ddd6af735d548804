"""Who "the same person" is, and what the claim must know of one before dialling (DESIGN §3).

Two calls are to the same person when they go to the same number (national form, as
`daemon.phone` keeps it) or are for the same customer id, in any queue of this installation,
deleted queues included. A customer is in a call while any call is open for its id or to any
of its numbers: a number two customer rows share is one phone, and the human holding it is
on it. The daily cap counts per id and per number, across queues.

`look_many` reads all of it for every candidate of a claim at once, in one statement of
indexed reads inside the claim's transaction (so a claim committed by another queue or node
is seen; on PostgreSQL each statement is a round trip to the server, and a claim of 32 read
one customer at a time made some 130 of them). The claim tells the `Crowd` of each call it
takes (`took`), so a later candidate of the same batch sees that call as a fresh read would.
"""

from __future__ import annotations

import collections
import dataclasses

import peewee as pw

from daemon import outcome
from daemon.store.schema import execute, marks

_NOT_COUNTED = tuple(sorted(outcome.NOT_COUNTED))
_COUNTED = f"(a.outcome IS NULL OR a.outcome NOT IN ({marks(_NOT_COUNTED)}))"


@dataclasses.dataclass(frozen=True)
class Person:
    on_dnc: bool  # the id is on the DNC list of the queue's code
    in_call: bool  # a call is open for the id or to one of the numbers
    calls_today: int  # calls for the id since day_start, every queue
    number_calls: dict[str, int]  # calls to each number since day_start, whoever was called
    dnc_numbers: frozenset[str]  # the numbers on the DNC number list


@dataclasses.dataclass
class Crowd:
    """What the store knew of several customers' ids and numbers when `look_many` read it,
    plus the calls taken since in the same transaction (`took`)."""

    dnc_ids: set[str]
    open_ids: set[str]
    open_numbers: set[str]
    id_calls: collections.Counter
    number_calls: collections.Counter
    dnc_numbers: set[str]

    def person(self, ext_id: str, numbers: list[str]) -> Person:
        """What the store knows of the person with `ext_id` and `numbers` right now."""
        return Person(
            on_dnc=ext_id in self.dnc_ids,
            in_call=ext_id in self.open_ids or any(n in self.open_numbers for n in numbers),
            calls_today=self.id_calls[ext_id],
            number_calls={n: self.number_calls[n] for n in numbers if self.number_calls[n]},
            dnc_numbers=frozenset(n for n in numbers if n in self.dnc_numbers),
        )

    def took(self, ext_id: str, number: str):
        """A call opened in this transaction (its attempt has no outcome yet: it counts)."""
        self.open_ids.add(ext_id)
        self.open_numbers.add(number)
        self.id_calls[ext_id] += 1
        self.number_calls[number] += 1


def look_many(db: pw.Database, queue_code: str, candidates: list[tuple[str, list[str]]], day_start: float) -> Crowd:
    """What the store knows of each (ext_id, numbers), customers of the queue `queue_code`:
    its id on that code's DNC list, calls open for the id or to a number, calls since
    `day_start` per id and per number (every queue), and which numbers are on the DNC list."""
    rows = execute(db, *look_sql(queue_code, candidates, day_start)).fetchall()
    found: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for kind, key, n in rows:
        found[kind][key] += n
    return Crowd(
        set(found["dnc_id"]),
        set(found["open_id"]),
        set(found["open_number"]),
        found["id_calls"],
        found["number_calls"],
        set(found["dnc_number"]),
    )


def look_sql(queue_code: str, candidates: list[tuple[str, list[str]]], day_start: float) -> tuple[str, tuple]:
    """`look_many`'s one statement and its parameters (rows of kind, id or number, count)."""
    ids = sorted({ext_id for ext_id, _ in candidates})
    numbers = sorted({n for _, mobiles in candidates for n in mobiles})
    return (
        f"SELECT 'dnc_id', ext_id, 1 FROM dnc WHERE queue_code = ? AND ext_id IN ({marks(ids)})"
        " UNION ALL SELECT 'open_id', c.ext_id, 1 FROM customer c JOIN attempt a ON a.customer_id = c.id"
        f" WHERE c.ext_id IN ({marks(ids)}) AND a.ended_at IS NULL"
        f" UNION ALL SELECT 'open_number', a.number, 1 FROM attempt a WHERE a.number IN ({marks(numbers)})"
        " AND a.ended_at IS NULL"
        " UNION ALL SELECT 'id_calls', c.ext_id, COUNT(*) FROM customer c JOIN attempt a ON a.customer_id = c.id"
        f" WHERE c.ext_id IN ({marks(ids)}) AND a.started_at >= ? AND {_COUNTED} GROUP BY c.ext_id"
        " UNION ALL SELECT 'number_calls', a.number, COUNT(*) FROM attempt a"
        f" WHERE a.number IN ({marks(numbers)}) AND a.started_at >= ? AND {_COUNTED} GROUP BY a.number"
        f" UNION ALL SELECT 'dnc_number', number, 1 FROM dnc_number WHERE number IN ({marks(numbers)})",
        (
            queue_code,
            *ids,
            *ids,
            *numbers,
            *ids,
            day_start,
            *_NOT_COUNTED,
            *numbers,
            day_start,
            *_NOT_COUNTED,
            *numbers,
        ),
    )
