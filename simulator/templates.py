"""The event templates, generated from the real captures into events.txt (see gen_templates.py)."""

import re
from importlib import resources

DATA = 'events.txt'


def parse(text):
    """{key: template} from the text of events.txt."""
    parts = re.split(r'^### (.*)\n', text, flags=re.M)[1:]
    return {key: body[:-1] for key, body in zip(parts[::2], parts[1::2])}  # each ends in one extra newline


def load():
    return parse(resources.files('simulator').joinpath(DATA).read_text(encoding='utf-8'))


EVENTS = load()
