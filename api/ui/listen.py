"""What a callee who presses no key hears, as one WAV file stitched from the sound pack.

The path is the transcript's (`Script.transcript`): from the start, each step's files, and a
menu as play_and_get_digits plays it when no key comes: `tries` times its prompt, then
`timeout` of silence, then the wrong-key prompt if it has one (docs/ivr.md, simulator/apps.py).
Every file must have the format of the first one (the pack's is 8 kHz mono 16-bit PCM);
another is an error that names it, never a resampled guess.
"""

from __future__ import annotations

import dataclasses
import io
import wave

from daemon import ivr

# Longest call "listen" stitches: the shipped IVR's no-key path is under a minute; a file far
# longer (a recording copied over a prompt) would be held whole in the API's memory per click.
MAX_SECONDS = 15 * 60


class Unstitchable(Exception):
    """A file of the call cannot be read or differs in format from the others; says which."""


@dataclasses.dataclass(frozen=True)
class Silence:
    ms: int


def no_key_path(script: ivr.Script) -> list[str | Silence]:
    """The files and silences of the call along its no-key path, in order."""
    parts: list[str | Silence] = []
    step_id, seen = script.start, set()
    while step_id is not None and step_id not in seen:
        seen.add(step_id)
        step = script.steps[step_id]
        if isinstance(step, ivr.Menu):
            for _ in range(step.tries):
                parts += step.files
                parts.append(Silence(step.timeout_ms))
                if step.invalid_file:
                    parts.append(step.invalid_file)
        else:
            parts += getattr(step, "files", ())
        step_id, _ = ivr.next_step(script, step_id, None)
    return parts


def stitch(parts: list[str | Silence]) -> bytes:
    """One WAV of `parts` played one after the other."""
    params = None
    frames: list[bytes] = []
    seconds = 0.0
    for part in parts:
        if isinstance(part, Silence):
            seconds += part.ms / 1000
            _within_limit(seconds, "a menu's wait for a key")
            if params is None:
                continue  # silence before any sound: nothing to take its format from
            width, channels, rate = params
            frames.append(b"\0" * (rate * part.ms // 1000) * width * channels)
            continue
        try:
            with wave.open(part, "rb") as w:
                these = (w.getsampwidth(), w.getnchannels(), w.getframerate())
                if params is not None and these != params:
                    raise Unstitchable(f"{part}: {_format(these)}, but the call's first file is {_format(params)}")
                seconds += w.getnframes() / max(1, w.getframerate())
                _within_limit(seconds, part)  # from its header, before its sound is read
                data = w.readframes(w.getnframes())
        except (OSError, EOFError, wave.Error) as e:
            raise Unstitchable(f"{part}: cannot be read as WAV ({e})") from None
        params = params or these
        frames.append(data)
    if params is None:
        raise Unstitchable("the call plays no sound file")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setsampwidth(params[0])
        w.setnchannels(params[1])
        w.setframerate(params[2])
        w.writeframes(b"".join(frames))
    return out.getvalue()


def _within_limit(seconds: float, what: str):
    if seconds > MAX_SECONDS:
        raise Unstitchable(f"{what}: the call would last over {MAX_SECONDS // 60} min, too long to listen to here")


def _format(params) -> str:
    width, channels, rate = params
    return f"{rate} Hz, {channels} channel(s), {8 * width}-bit"
