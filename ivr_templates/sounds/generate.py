"""Generate the demo sound pack with espeak-ng's Vietnamese voice.

    apt-get install -y espeak-ng sox          # Debian packages
    .venv/bin/python ivr_templates/sounds/generate.py [--voice vi] [--force]

Writes 8 kHz mono 16-bit WAV files, silence trimmed at both ends:
  vi/words/<slug>.wav   every word daemon/say_vi.py can ask for (say_vi.WORDS)
  vi/prompts/<name>.wav every prompt listed in vi/prompts/texts.toml
Existing files are kept unless --force, so studio recordings dropped in are never overwritten.
--list prints every file name with the words it must say (the table in README.md).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repo, for daemon.say_vi

from daemon import say_vi  # noqa: E402

# Trim leading and trailing silence below 0.5% of full scale.
TRIM = ['silence', '1', '0.02', '0.5%', 'reverse', 'silence', '1', '0.02', '0.5%', 'reverse']


def speak(text, out_path, voice, speed):
    """Write `text` spoken by espeak-ng `voice` to `out_path` as 8 kHz mono 16-bit WAV."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, 'raw.wav')
        subprocess.run(['espeak-ng', '-v', voice, '-s', str(speed), '-w', raw, text], check=True)
        subprocess.run(['sox', raw, '-r', '8000', '-c', '1', '-b', '16', out_path, *TRIM, 'norm', '-3'], check=True)


def jobs():
    """(relative path, text) for every file of the pack."""
    for slug, text in say_vi.WORDS.items():
        yield f'vi/words/{slug}.wav', text
    with open(os.path.join(HERE, 'vi', 'prompts', 'texts.toml'), 'rb') as fh:
        for name, text in tomllib.load(fh).items():
            yield f'vi/prompts/{name}.wav', text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--voice', default='vi', help='espeak-ng voice: vi, vi-vn-x-central, vi-vn-x-south')
    parser.add_argument('--speed', type=int, default=150, help='words per minute (default 150)')
    parser.add_argument('--force', action='store_true', help='overwrite existing files')
    parser.add_argument('--list', action='store_true', help='print the files and their words, make nothing')
    args = parser.parse_args(argv)
    if args.list:
        for rel, text in jobs():
            print(f'| `{rel}` | {text} |')
        return 0
    for tool in ('espeak-ng', 'sox'):
        if shutil.which(tool) is None:
            print(f'{tool} is not installed: apt-get install -y espeak-ng sox', file=sys.stderr)
            return 1
    made = 0
    for rel, text in jobs():
        path = os.path.join(HERE, rel)
        if os.path.exists(path) and not args.force:
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        speak(text, path, args.voice, args.speed)
        made += 1
    print(f'{made} files written under {HERE}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
