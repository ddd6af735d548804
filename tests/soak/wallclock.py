"""The wall clock of the daemon and the API, steppable as NTP or an operator's `date -s` would.

Both processes run under Debian's libfaketime (package `faketime`), which reads the clock's
offset from a file; monotonic time stays real (FAKETIME_DONT_FAKE_MONOTONIC), as it does when a
real clock is stepped. Both share the one file because on a PBX they share the one clock.
"""

from __future__ import annotations

import glob
from pathlib import Path

LIBRARY = "/usr/lib/*/faketime/libfaketime.so.1"
INSTALL = "apt-get install faketime"


def library() -> str:
    """libfaketime's path, or an error saying how to get it."""
    found = sorted(glob.glob(LIBRARY))
    if not found:
        raise RuntimeError(f"the clock_step fault needs libfaketime ({INSTALL})")
    return found[0]


class WallClock:
    def __init__(self, workdir: Path):
        self.file = workdir / "faketime"
        self.offset = 0
        self._write()
        self.env = {
            "LD_PRELOAD": library(),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_CACHE_DURATION": "1",  # a step is seen within a second (no cache: 9 µs a look)
        }

    def step(self, seconds: int):
        self.offset += seconds
        self._write()

    def _write(self):
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{self.offset:+d}\n")
        tmp.replace(self.file)  # never a half-written file under a reader
