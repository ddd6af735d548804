"""How long a playback lasts: WAV length from the `wave` module, file_string:// sums, tone streams."""
import os
import re
import wave


class Media:
    """Durations (seconds) of playable things; `None` means FreeSWITCH would answer FILE NOT FOUND.

    Relative paths are looked up under `sound_dir`. Non-WAV files that exist count as 1 s.
    A file_string:// member that is missing is skipped silently, as the real switch does; the
    whole file_string is "not found" only when no member exists.
    """

    def __init__(self, sound_dir='.'):
        self.sound_dir = sound_dir
        self._cache = {}

    def duration(self, path):
        if path.startswith('file_string://'):
            parts = [self.duration(member) for member in path[len('file_string://'):].split('!')]
            found = [p for p in parts if p is not None]
            return sum(found) if found else None
        if path.startswith('tone_stream://'):
            numbers = [int(n) for n in re.findall(r'\d+', path.split('(', 1)[-1].split(')', 1)[0])]
            return sum(numbers[:2]) / 1000.0 if numbers else 0.0
        if path.startswith('silence_stream://'):
            match = re.match(r'silence_stream://(\d+)', path)
            return int(match.group(1)) / 1000.0 if match else 0.0
        return self._file(path)

    def _file(self, path):
        full = path if os.path.isabs(path) else os.path.join(self.sound_dir, path)
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
