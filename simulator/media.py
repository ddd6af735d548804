"""What the switch can play and for how long: WAV length from the `wave` module, tone streams,
file_string:// members, and the files it cannot open although they exist (`unreadable`)."""

import fnmatch
import os
import re
import wave


class Media:
    """Durations (seconds) of playable things; `None` means FreeSWITCH would answer FILE NOT FOUND.

    Relative paths are looked up under `sound_dir`. Non-WAV files that exist count as 1 s.
    `unreadable` holds absolute paths or globs the switch's user cannot reach (a directory it
    cannot enter): such files are not found, whatever the disk says. A pattern naming a
    directory covers everything below it. The list may change at run time (`set_unreadable`).
    """

    def __init__(self, sound_dir='.', unreadable=()):
        self.sound_dir = sound_dir
        self.unreadable = tuple(unreadable)
        self._cache = {}

    def set_unreadable(self, patterns):
        self.unreadable = tuple(patterns)

    def duration(self, path):
        if path.startswith('file_string://'):
            found = [seconds for _member, seconds in self.members(path) if seconds is not None]
            return sum(found) if found else None
        if path.startswith('tone_stream://'):
            numbers = [int(n) for n in re.findall(r'\d+', path.split('(', 1)[-1].split(')', 1)[0])]
            return sum(numbers[:2]) / 1000.0 if numbers else 0.0
        if path.startswith('silence_stream://'):
            match = re.match(r'silence_stream://(\d+)', path)
            return int(match.group(1)) / 1000.0 if match else 0.0
        return self._file(path)

    def members(self, path):
        """[(member, seconds or None)]: the parts of a file_string://a!b, or the path alone."""
        if not path.startswith('file_string://'):
            return [(path, self.duration(path))]
        return [(member, self.duration(member)) for member in path[len('file_string://') :].split('!')]

    def exists(self, path):
        """What `api file_exists` says: the file is there and the switch can reach it."""
        full = self._full(path)
        return os.path.exists(full) and self._readable(full)

    def _full(self, path):
        return path if os.path.isabs(path) else os.path.join(self.sound_dir, path)

    def _readable(self, full):
        for pattern in self.unreadable:
            if fnmatch.fnmatchcase(full, pattern) or full.startswith(pattern.rstrip('/') + '/'):
                return False
        return True

    def _file(self, path):
        full = self._full(path)
        if not self._readable(full):
            return None
        if full in self._cache:
            return self._cache[full]
        duration = _file_duration(full)
        if duration is not None:  # a missing file may appear later; only found ones are cached
            self._cache[full] = duration
        return duration


def _file_duration(path):
    if not os.path.isfile(path):
        return None
    try:
        with wave.open(path, 'rb') as wav:
            return wav.getnframes() / float(wav.getframerate())
    except (wave.Error, EOFError):
        return 1.0
