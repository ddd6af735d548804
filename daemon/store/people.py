"""Who "the same person" is, and what the claim must know of one before dialling (DESIGN §3).

Two calls are to the same person when they go to the same number (national form, as
`daemon.phone` keeps it) or are for the same customer id, in any queue of this installation,
deleted queues included. A customer is in a call while any call is open for its id or to any
of its numbers: a number two customer rows share is one phone, and the human holding it is
on it. The daily cap counts per id and per number, across queues.

`look` answers all of it for one customer in a few indexed reads, inside the claim's
transaction (so a claim committed in the same batch or by another queue is seen).
"""

from __future__ import annotations

import dataclasses

import peewee as pw

from daemon import outcome
from daemon.store import dnc
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


def look(db: pw.Database, queue_code: str, ext_id: str, numbers: list[str], day_start: float) -> Person:
    """What the store knows of the person with `ext_id` and `numbers`, a customer of the queue
    `queue_code`, right now."""
    # An attempt is open until `ended_at` is set (schema.py: the index on open calls by number).
    on_dnc, in_call, calls_today, any_listed = execute(
        db,
        "SELECT EXISTS (SELECT 1 FROM dnc WHERE queue_code = ? AND ext_id = ?),"
        " EXISTS (SELECT 1 FROM customer c JOIN attempt a ON a.customer_id = c.id"
        " WHERE c.ext_id = ? AND a.ended_at IS NULL)"
        f" OR EXISTS (SELECT 1 FROM attempt a WHERE a.number IN ({marks(numbers)}) AND a.ended_at IS NULL),"
        " (SELECT COUNT(*) FROM customer c JOIN attempt a ON a.customer_id = c.id"
        f" WHERE c.ext_id = ? AND a.started_at >= ? AND {_COUNTED}),"
        f" EXISTS (SELECT 1 FROM dnc_number WHERE number IN ({marks(numbers)}))",
        (queue_code, ext_id, ext_id, *numbers, ext_id, day_start, *_NOT_COUNTED, *numbers),
    ).fetchone()
    number_calls = dict(
        execute(
            db,
            f"SELECT a.number, COUNT(*) FROM attempt a WHERE a.number IN ({marks(numbers)})"
            f" AND a.started_at >= ? AND {_COUNTED} GROUP BY a.number",
            (*numbers, day_start, *_NOT_COUNTED),
        ).fetchall()
    )
    listed = frozenset(dnc.listed_numbers(db, numbers)) if any_listed else frozenset()
    return Person(bool(on_dnc), bool(in_call), calls_today, number_calls, listed)
