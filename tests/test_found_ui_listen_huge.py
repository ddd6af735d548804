"""Found by uireview: "listen" stitched a call of any length in memory, so one huge sound file
in the pack made every click of a viewer cost the API process hundreds of megabytes.

`listen.stitch` read every file whole, joined them and built the WAV in memory, then sent it
in one piece: with a 200-minute file copied by mistake over the greeting (183 MiB, which the
template check accepts: its format is right) one request took autocall-api from 93 MB to
625 MB peak RSS, and each further slow client held another copy while it was sent; the API
serves the platform's imports in the same process. A call longer than MAX_SECONDS (15
minutes: the shipped IVR's no-key path is under one) is now refused with 409 naming the file
that takes it over, judged from the files' headers before any sound is read."""

import wave

import pytest

from api.ui import listen


def wav(path, seconds: float, rate: int = 8000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(b"\0\0" * int(rate * seconds))
    return str(path)


def test_a_call_over_the_limit_is_refused_and_names_the_file(tmp_path):
    short = wav(tmp_path / "short.wav", 1)
    huge = wav(tmp_path / "huge.wav", listen.MAX_SECONDS)
    with pytest.raises(listen.Unstitchable, match=r"huge\.wav: the call would last over 15 min"):
        listen.stitch([short, huge])
    with pytest.raises(listen.Unstitchable, match=r"the call would last over 15 min"):
        listen.stitch([short, listen.Silence(1000 * listen.MAX_SECONDS)])


def test_a_call_within_the_limit_is_stitched(tmp_path):
    short = wav(tmp_path / "short.wav", 1)
    out = listen.stitch([short, listen.Silence(500), short])
    assert len(out) == 44 + 2 * 8000 * 2 + 2 * 4000
