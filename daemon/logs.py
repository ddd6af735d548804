"""Logging for the entry points: plain lines on stderr, with syslog priorities under journald.

Under systemd (`$JOURNAL_STREAM` set) each line starts with `<N>` so journald files it at
its real level (`journalctl -p warning` then finds warnings) and the timestamp is left to
the journal; elsewhere lines carry their own time and level.
"""

import logging
import os
import sys

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    def format(self, record):
        return f"<{_PRIORITY.get(record.levelno, 6)}>{record.name}: {super().format(record)}"


def setup(level: str, environ=os.environ):
    handler = logging.StreamHandler(sys.stderr)
    if environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def escaped(text: str) -> str:
    """`text` as it is, but a character that could break a log line or a terminal (a newline,
    a carriage return, an escape, a bidi override) written as its Python escape."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
