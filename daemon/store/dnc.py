"""The two do-not-call lists: customer ids per queue code (the seed's `/queue/dnc`) and numbers
for every queue (`/dnc/numbers`). Only ever added to; nothing here writes a customer's state
(`customers.block` does, beside its call of `add_ids`).

Ids are kept by queue *code*, not by queue row: a DNC outlives a delete and re-import of the
queue, and one sent before the queue exists waits for it.
"""

from __future__ import annotations

import time

import peewee as pw

from daemon.store.schema import execute, executemany, in_parts, marks


def add_ids(db: pw.Database, code: str, ext_ids: list[str], at: float):
    """Put `ext_ids` on queue `code`'s list (inside the caller's transaction)."""
    executemany(
        db,
        "INSERT INTO dnc (queue_code, ext_id, created_at) VALUES (?, ?, ?) ON CONFLICT (queue_code, ext_id) DO NOTHING",
        [(code, ext_id, at) for ext_id in ext_ids],
    )


def listed_ids(db: pw.Database, code: str, ext_ids: list[str]) -> set[str]:
    """Those of `ext_ids` on queue `code`'s list."""
    if execute(db, "SELECT 1 FROM dnc WHERE queue_code = ? LIMIT 1", (code,)).fetchone() is None:
        return set()  # the usual case, answered by the index alone
    return {
        row[0]
        for part in in_parts(ext_ids)
        for row in execute(
            db, f"SELECT ext_id FROM dnc WHERE queue_code = ? AND ext_id IN ({marks(part)})", [code, *part]
        )
    }


def is_listed(db: pw.Database, code: str, ext_id: str) -> bool:
    return execute(db, "SELECT 1 FROM dnc WHERE queue_code = ? AND ext_id = ?", (code, ext_id)).fetchone() is not None


def at_once(db: pw.Database):
    """The default `run` of the chunked commands: `step(db, *args)`, here and now."""
    return lambda step, *args: step(db, *args)


def block_numbers(db: pw.Database, numbers: list[str], *, chunk: int = 2000, now=time.time, run=None):
    """Put `numbers` (national form) on the DNC number list, `chunk` per transaction: from each
    commit on, no claim dials them and imports drop them. `run(step, *args)` runs each
    transaction as `step(db, *args)` (store.commands: by default at once on `db`)."""
    run = run or at_once(db)
    for start in range(0, len(numbers), chunk):
        run(_add_numbers, numbers[start : start + chunk], now())


def _add_numbers(db, numbers: list[str], at: float):
    with db.atomic():
        executemany(
            db,
            "INSERT INTO dnc_number (number, created_at) VALUES (?, ?) ON CONFLICT (number) DO NOTHING",
            [(n, at) for n in numbers],
        )


def listed_numbers(db: pw.Database, numbers) -> set[str]:
    """Those of `numbers` on the DNC number list."""
    numbers = list(numbers)
    return {
        row[0]
        for part in in_parts(numbers)
        for row in execute(db, f"SELECT number FROM dnc_number WHERE number IN ({marks(part)})", part)
    }
