"""Which sound files FreeSWITCH itself can open, asked with `api file_exists <path>`.

The switch runs as another user than the daemon: a file the daemon reads may sit in a folder
the switch cannot enter, and then `playback` answers FILE NOT FOUND while `file_string://`
skips it without a word. So the files of a template are checked as FreeSWITCH sees them
(mod_commands' file_exists stats the path as the switch's user), once per version of a file.
"""
from __future__ import annotations

import os

from daemon.esl import ESLError, commands


class SwitchFiles:
    """Remembers the files FreeSWITCH said it can see, per (path, mtime, ctime, size).

    A file it cannot see is asked again next time: the fix is often a folder's permission,
    which changes nothing of the file itself."""

    def __init__(self):
        self._seen: set[tuple] = set()

    def unplayable(self, client, paths) -> list[str]:
        """The `paths` FreeSWITCH cannot see (or that do not exist at all), in order.
        `client` is a connected ESLClient; its ESLError passes through, and an answer other
        than true/false raises ESLError."""
        missing = []
        for path in paths:
            key = _version(path)
            if key is None:
                missing.append(path)
            elif key not in self._seen:
                answer = client.api(commands.file_exists(path)).strip()
                if answer == "true":
                    self._seen.add(key)
                elif answer == "false":
                    missing.append(path)
                else:  # e.g. "-ERR file_exists Command not found!" without mod_commands
                    raise ESLError(f"file_exists {path}: unexpected answer {answer[:80]!r}")
        return missing


def _version(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
