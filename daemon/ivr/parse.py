"""TOML → Template: read the file operators edit and check it, collecting every problem.

`check(path, sounds_dir)` lists what is wrong (empty: good); `load` returns the Template or
raises TemplateInvalid with every problem. The checks that need the whole flow are in `graph`,
those of the sound files in `sounds`. The format is documented for operators in
`ivr_templates/README.md`.
"""

import logging
import os
import re
import tomllib
from types import MappingProxyType

from daemon import say_vi
from daemon.config_values import NotSmallFile, read_small, toml_text
from daemon.ivr.errors import Problem, TemplateInvalid
from daemon.ivr.graph import Graph, with_barge_in
from daemon.ivr.script import EndCall, Goto, Hangup, Menu, Play, Repeat, SetResult, TransferCall, TransferStep
from daemon.ivr.sounds import sound_problems
from daemon.ivr.template import Draft, Prompt, Say, Template

log = logging.getLogger('autocall.ivr')

KNOWN_FIELDS = frozenset(
    {
        'contract_number',
        'upcoming_amount',
        'upcoming_due_date',
        'due_date',
        'dpd',
        'number_of_ovd_inst',
        'total_ovd_amount',
    }
)
WORDS_DIR = 'vi/words'
DEFAULT_PROMPTS_DIR = 'vi/prompts'
PROMPT_TEXTS_FILE = 'texts.toml'

_IDENT = re.compile(r'[A-Za-z][A-Za-z0-9_]*')
_FIELD = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
_PROMPT = re.compile(r'[A-Za-z0-9][A-Za-z0-9_-]*(?:/[A-Za-z0-9][A-Za-z0-9_-]*)*')
_KEY = re.compile(r'[0-9*#]+')
_DESTINATION = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')
_STEP_TYPES = ('play', 'say', 'menu', 'hangup', 'transfer')
_STEP_KEYS = {
    'play': {'next'},
    'say': {'as', 'next'},
    'menu': {'timeout', 'tries', 'max_digits', 'digit_timeout', 'invalid', 'keys', 'no_key', 'wrong_key', 'barge_in'},
    'hangup': set(),
    'transfer': set(),
}
_MENU_LIMITS = {  # setting: (default, lowest, highest)
    'timeout': (5, 1, 60),
    'tries': (1, 1, 5),
    'max_digits': (1, 1, 20),
    'digit_timeout': (3, 1, 30),
}


def check(path, sounds_dir, *, variant='north', destinations=None):
    """Every problem of the template file at `path` (empty list: it is good).

    `destinations`: the transfer destinations configured; None accepts any plain name."""
    return _build(path, sounds_dir, variant, destinations)[1]


def load(path, sounds_dir, *, variant='north', destinations=None):
    """The Template at `path`; TemplateInvalid listing every problem otherwise."""
    template, problems = _build(path, sounds_dir, variant, destinations)
    if problems:
        raise TemplateInvalid(_name_of(path), problems)
    return template


def _name_of(path):
    return os.path.basename(path)[:-5] if path.endswith('.toml') else os.path.basename(path)


def _build(path, sounds_dir, variant, destinations):
    name = _name_of(path)
    var = variant if isinstance(variant, say_vi.Variant) else say_vi.variant(variant)
    try:
        doc = tomllib.loads(toml_text(read_small(path)))
    except FileNotFoundError:
        return None, [Problem(name, None, f'no such file {path}')]
    except (OSError, UnicodeDecodeError, NotSmallFile) as exc:
        return None, [Problem(name, None, f'cannot read {path}: {exc}')]
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(name, None, f'TOML syntax error: {exc}')]
    parser = _Parser(name, os.path.abspath(sounds_dir), var, destinations)
    try:
        template = parser.parse(doc, os.path.abspath(path))
    except Exception as exc:  # noqa: BLE001 - a check we lack must not take the dialer down with it
        log.exception('checking template %s failed', path)
        return None, [*parser.problems, Problem(name, None, f'could not be checked ({type(exc).__name__}: {exc})')]
    return (None if parser.problems else template), parser.problems


class _Parser:
    """Turns a TOML document into a Template, collecting every problem instead of stopping."""

    def __init__(self, name, sounds_dir, var, destinations):
        self.name, self.sounds_dir, self.var = name, sounds_dir, var
        self.destinations = None if destinations is None else frozenset(destinations)
        self.problems = []
        self.fields = set(KNOWN_FIELDS)
        self.prompts_dir = os.path.join(sounds_dir, DEFAULT_PROMPTS_DIR)
        self.prompt_texts = {}

    def problem(self, step, message):
        self.problems.append(Problem(self.name, step, message))

    def parse(self, doc, path):
        for key in sorted(set(doc) - {'template', 'step'}):
            self.problem(None, f"unknown top-level setting '{key}' (expected [template] and [[step]])")
        head = doc.get('template', {})
        if not isinstance(head, dict):
            self.problem(None, "'template' must be a table: [template]")
            head = {}
        self._parse_head(head)
        tables = doc.get('step', [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables) or not tables:
            self.problem(None, 'a template needs at least one [[step]]')
            return None
        ids = self._step_ids(tables)
        drafts = {}
        for index, table in enumerate(tables):
            step_id = ids[index]
            following = ids[index + 1] if index + 1 < len(ids) else None
            draft = self._parse_step(step_id, table, following, set(ids))
            if draft is not None and step_id not in drafts:
                drafts[step_id] = draft
        start = head.get('start', ids[0])
        if start not in ids:
            self.problem(None, f"start step '{start}' does not exist")
            return None
        if len(drafts) == len(tables):
            Graph(self, drafts, start).check()
        words_dir = os.path.join(self.sounds_dir, WORDS_DIR)
        for step_id, message in sound_problems(drafts, words_dir, self.var):
            self.problem(step_id, message)
        return Template(
            self.name,
            path,
            str(head.get('description', '')),
            start,
            MappingProxyType(with_barge_in(drafts)),
            words_dir,
            self.var,
            frozenset(self.fields - KNOWN_FIELDS),
        )

    def _parse_head(self, head):
        for key in sorted(set(head) - {'description', 'start', 'fields', 'prompts'}):
            self.problem(None, f"unknown setting '{key}' in [template] (known: description, start, fields, prompts)")
        extra = head.get('fields', [])
        if not isinstance(extra, list) or not all(isinstance(f, str) and _FIELD.fullmatch(f) for f in extra):
            self.problem(None, "[template] fields must be a list of field names like [\"customer_name\"]")
        else:
            self.fields |= set(extra)
        prompts = head.get('prompts', DEFAULT_PROMPTS_DIR)
        if not isinstance(prompts, str) or not _PROMPT.fullmatch(prompts):
            self.problem(
                None, f"[template] prompts {prompts!r} must be a folder inside the sounds folder, like \"vi/prompts\""
            )
        else:
            self.prompts_dir = os.path.join(self.sounds_dir, prompts)
        self.prompt_texts = self._read_prompt_texts()
        if not isinstance(head.get('description', ''), str):
            self.problem(None, '[template] description must be text in quotes')
        if not isinstance(head.get('start', ''), str):
            self.problem(None, "[template] start must be a step id in quotes")

    def _read_prompt_texts(self):
        path = os.path.join(self.prompts_dir, PROMPT_TEXTS_FILE)
        try:
            texts = tomllib.loads(toml_text(read_small(path)))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, NotSmallFile) as exc:
            self.problem(None, f'cannot read the prompt texts {path}: {exc}')
            return {}
        return {key: value for key, value in texts.items() if isinstance(value, str)}

    def _step_ids(self, tables):
        ids, seen = [], set()
        for index, table in enumerate(tables, 1):
            step_id = table.get('id')
            if not isinstance(step_id, str) or not _IDENT.fullmatch(step_id):
                self.problem(
                    None,
                    f'step number {index} needs an id of letters, digits and _ (like id = "greeting"), not {step_id!r}',
                )
                step_id = f'#{index}'
            elif step_id in seen:
                self.problem(step_id, 'two steps have this id')
            seen.add(step_id)
            ids.append(step_id)
        return ids

    def _parse_step(self, step_id, table, following, ids):
        types = [key for key in _STEP_TYPES if key in table]
        if len(types) != 1:
            found = ', '.join(sorted(set(table) - {'id'})) or 'nothing'
            self.problem(
                step_id, f'unknown step type: a step has exactly one of {", ".join(_STEP_TYPES)} (found: {found})'
            )
            return None
        kind = types[0]
        for key in sorted(set(table) - {'id', kind} - _STEP_KEYS[kind]):
            self.problem(step_id, f"unknown setting '{key}' for a {kind} step")
        return getattr(self, f'_parse_{kind}')(step_id, table, following, ids)

    def _next(self, step_id, table, following, ids):
        target = table.get('next', following)
        if target is not None and not isinstance(target, str):
            self.problem(step_id, f'next must be the id of a step, like next = "end" (found {target!r})')
            return None
        if target is not None and target not in ids:
            self.problem(step_id, f"next step '{target}' does not exist")
        return target

    def _parse_play(self, step_id, table, following, ids):
        items = table['play']
        items = [items] if isinstance(items, (str, dict)) else items
        if not isinstance(items, list) or not items:
            self.problem(
                step_id, 'play must list prompt names and fields, like ["greeting", { money = "upcoming_amount" }]'
            )
            items = []
        parts = tuple(part for part in (self._part(step_id, item) for item in items) if part)
        step = Play(step_id, (), self._next(step_id, table, following, ids))
        return Draft(step, parts)

    def _parse_say(self, step_id, table, following, ids):
        part = self._say_part(step_id, table['say'], table.get('as'))
        step = Play(step_id, (), self._next(step_id, table, following, ids))
        return Draft(step, (part,) if part else ())

    def _parse_hangup(self, step_id, table, following, ids):
        if table['hangup'] is not True:
            self.problem(step_id, 'write hangup = true')
        return Draft(Hangup(step_id))

    def _parse_transfer(self, step_id, table, following, ids):
        destination = self._destination(step_id, table['transfer'])
        return Draft(TransferStep(step_id, destination or ''))

    def _parse_menu(self, step_id, table, following, ids):
        items = table['menu']
        items = [items] if isinstance(items, str) else items
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            self.problem(step_id, 'menu must list prompt names, like ["menu_options"]')
            items = []
        parts = tuple(part for part in (self._part(step_id, item) for item in items) if part)
        limits = {key: self._number(step_id, table, key) for key in _MENU_LIMITS}
        keys = self._keys(step_id, table.get('keys'), limits['max_digits'], ids)
        on_no_input = self._action(step_id, 'no_key', table.get('no_key', 'hangup'), ids)
        on_invalid = (
            self._action(step_id, 'wrong_key', table['wrong_key'], ids) if 'wrong_key' in table else on_no_input
        )
        invalid_file = None
        if isinstance(table.get('invalid'), str):
            invalid = self._part(step_id, table['invalid'])
            invalid_file = invalid.path if invalid else None
        elif 'invalid' in table:
            self.problem(step_id, 'invalid must be one prompt name, like "wrong_key"')
        barge_in = table.get('barge_in', True)
        if not isinstance(barge_in, bool):
            self.problem(step_id, f'barge_in must be true or false, not {barge_in!r}')
            barge_in = True
        step = Menu(
            step_id,
            (),
            int(limits['timeout'] * 1000),
            int(limits['tries']),
            int(limits['max_digits']),
            int(limits['digit_timeout'] * 1000),
            MappingProxyType(keys),
            on_no_input,
            on_invalid,
            invalid_file,
            barge_in=barge_in,
        )
        return Draft(step, parts)

    def _number(self, step_id, table, key):
        default, low, high = _MENU_LIMITS[key]
        value = table.get(key, default)
        whole = key in ('tries', 'max_digits')
        ok_type = isinstance(value, int) if whole else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not low <= value <= high:
            unit = '' if whole else ' seconds'
            self.problem(
                step_id, f"{key} must be a {'whole ' if whole else ''}number from {low} to {high}{unit}, not {value!r}"
            )
            return default
        return value

    def _keys(self, step_id, keys, max_digits, ids):
        if not isinstance(keys, dict) or not keys:
            self.problem(step_id, 'a menu needs keys, like keys = { 1 = "repeat", 9 = "hangup" }')
            return {}
        actions = {}
        for key, text in keys.items():
            if key in _STEP_KEYS['menu']:
                self.problem(step_id, f"'{key}' is inside [step.keys]: move it above the [step.keys] line")
                continue
            if not _KEY.fullmatch(key) or len(key) > max_digits:
                self.problem(step_id, f"key '{key}' must be up to {max_digits} of 0-9 * #")
                continue
            actions[key] = self._action(step_id, f"key '{key}'", text, ids)
        return actions

    def _action(self, step_id, where, text, ids):
        """Parse 'repeat' | 'hangup' | 'goto STEP' | 'transfer DEST' | 'result NAME then ACTION'."""
        words = text.split() if isinstance(text, str) else []
        if words == ['repeat']:
            return Repeat()
        if words == ['hangup']:
            return EndCall()
        if len(words) == 2 and words[0] == 'goto':
            if words[1] not in ids:
                self.problem(step_id, f"{where}: goto to missing step '{words[1]}'")
            return Goto(words[1])
        if len(words) == 2 and words[0] == 'transfer':
            return TransferCall(self._destination(step_id, words[1]) or '')
        if len(words) >= 4 and words[0] == 'result' and words[2] == 'then':
            if not _IDENT.fullmatch(words[1]):
                self.problem(step_id, f"{where}: result name '{words[1]}' must be letters, digits and _")
            return SetResult(words[1], self._action(step_id, where, ' '.join(words[3:]), ids))
        self.problem(
            step_id,
            f'{where}: unknown action {text!r}; use repeat, hangup, goto STEP, '
            'transfer DESTINATION or result NAME then <one of those>',
        )
        return EndCall()

    def _destination(self, step_id, destination):
        if not isinstance(destination, str) or not _DESTINATION.fullmatch(destination):
            self.problem(step_id, f'transfer destination {destination!r} must be a name like "agents" or "team-2"')
            return None
        if self.destinations is not None and destination not in self.destinations:
            known = ', '.join(sorted(self.destinations)) or 'none configured'
            self.problem(step_id, f"transfer destination '{destination}' is not configured (known: {known})")
        return destination

    def _part(self, step_id, item):
        if isinstance(item, dict):
            if len(item) != 1:
                self.problem(step_id, f'{item!r}: say one field at a time, like {{ money = "upcoming_amount" }}')
                return None
            ((kind, field_name),) = item.items()
            return self._say_part(step_id, field_name, kind)
        if not isinstance(item, str) or not _PROMPT.fullmatch(item.removesuffix('.wav')):
            self.problem(step_id, f'prompt {item!r} must be a file name of letters, digits, _ and -')
            return None
        name = item.removesuffix('.wav')
        path = os.path.join(self.prompts_dir, name + '.wav')
        return Prompt(name, path, self.prompt_texts.get(name, f'[{name}]'))

    def _say_part(self, step_id, field_name, kind):
        if kind not in say_vi.KINDS:
            self.problem(step_id, f"unknown way to say a field {kind!r}: use one of {', '.join(say_vi.KINDS)}")
            return None
        if not isinstance(field_name, str) or field_name not in self.fields:
            self.problem(
                step_id,
                f'unknown customer field {field_name!r} (known: {", ".join(sorted(self.fields))}; '
                'declare others in [template] fields)',
            )
            return None
        return Say(field_name, kind)
