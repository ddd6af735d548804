"""IVR templates: load and check the TOML files operators edit, render one customer's call.

Flow for a caller (the daemon):
    loader = TemplateLoader(templates_dir, sounds_dir, variant='north')
    script = loader.get('IVR-1').render(customer_fields)      # RenderError: don't call
    step_id = script.start
    while step_id is not None:
        step = script.steps[step_id]
        digits = <keys pressed: during a Play step with barge_into, or the Menu; None for none>
        step_id, effects = next_step(script, step_id, digits)  # RecordResult, TransferCall, EndCall

A rendered ``Script`` is plain immutable data with absolute file paths; ``next_step``
is a pure function, so the call code holds only I/O. The template format is
documented for operators in ``ivr_templates/README.md``.
"""
import functools
import logging
import os
import re
import time
import tomllib
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from daemon import say_vi
from daemon.errors import AutocallError

log = logging.getLogger(__name__)

KNOWN_FIELDS = frozenset({
    'contract_number', 'upcoming_amount', 'upcoming_due_date', 'due_date', 'dpd',
    'number_of_ovd_inst', 'total_ovd_amount',
})
WORDS_DIR = 'vi/words'
DEFAULT_PROMPTS_DIR = 'vi/prompts'
PROMPT_TEXTS_FILE = 'texts.toml'
NO_INVALID_PROMPT = 'silence_stream://250'

_TEMPLATE_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')
_IDENT = re.compile(r'[A-Za-z][A-Za-z0-9_]*')
_FIELD = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
_PROMPT = re.compile(r'[A-Za-z0-9][A-Za-z0-9_-]*(?:/[A-Za-z0-9][A-Za-z0-9_-]*)*')
_KEY = re.compile(r'[0-9*#]+')
_DESTINATION = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')
# Characters FreeSWITCH gives meaning to in an application argument, plus anything invisible.
_UNSAFE_IN_ARG = re.compile(r'[\s!{}\'"\\$,;`]|[^\x21-\x7e]')
_STEP_TYPES = ('play', 'say', 'menu', 'hangup', 'transfer')
_STEP_KEYS = {
    'play': {'next'},
    'say': {'as', 'next'},
    'menu': {'timeout', 'tries', 'max_digits', 'digit_timeout', 'invalid', 'keys', 'no_key', 'wrong_key',
             'barge_in'},
    'hangup': set(),
    'transfer': set(),
}
_MENU_LIMITS = {  # setting: (default, lowest, highest)
    'timeout': (5, 1, 60), 'tries': (1, 1, 5), 'max_digits': (1, 1, 20), 'digit_timeout': (3, 1, 30),
}


# --- errors -------------------------------------------------------------------------------

class TemplateError(AutocallError):
    """Base of the errors of this module."""


class UnknownTemplate(TemplateError):
    """The name is not a valid template name, or no such template file exists."""


class TemplateInvalid(TemplateError):
    """A template has problems; ``problems`` lists every one of them."""

    def __init__(self, name, problems):
        self.name, self.problems = name, tuple(problems)
        super().__init__(f'template {name} is invalid: ' + '; '.join(str(p) for p in self.problems))


class RenderError(TemplateError):
    """A customer's field is missing or cannot be spoken; ``field`` names it."""

    def __init__(self, message, field_name):
        super().__init__(message)
        self.field = field_name


class UnsafeArgument(TemplateError):
    """A value would change the meaning of a FreeSWITCH application argument."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a template; ``str()`` is one line naming template and step."""
    template: str
    step: str | None
    message: str

    def __str__(self):
        where = f"{self.template}: step '{self.step}'" if self.step else self.template
        return f'{where}: {self.message}'


# --- menu actions and the effects next_step reports ---------------------------------------

@dataclass(frozen=True)
class Goto:
    step: str


@dataclass(frozen=True)
class Repeat:
    """Run the same menu again, with its tries counted afresh."""


@dataclass(frozen=True)
class Transfer:
    destination: str


@dataclass(frozen=True)
class SetResult:
    name: str
    then: object


@dataclass(frozen=True)
class HangupAction:
    pass


@dataclass(frozen=True)
class RecordResult:
    """Effect: store `name` as this customer's result."""
    name: str


@dataclass(frozen=True)
class TransferCall:
    """Effect: leave the IVR and transfer the call to the configured `destination`. Always last."""
    destination: str


@dataclass(frozen=True)
class EndCall:
    """Effect: hang up. Always last."""


# --- rendered script ----------------------------------------------------------------------

@dataclass(frozen=True)
class Play:
    """Play `files`, then go to `next`. `barge_into`: the menu this step leads into (through
    play steps only) when that menu takes barge-in; a key pressed while it plays answers that menu."""
    id: str
    files: tuple
    next: str | None
    transcript: str = ''
    barge_into: str | None = None


@dataclass(frozen=True)
class Menu:
    """Play `files` and collect keys: FreeSWITCH itself plays the prompt up to `tries` times
    (with `invalid_file` after each failed try); `next_step` then branches on the result."""
    id: str
    files: tuple
    timeout_ms: int
    tries: int
    max_digits: int
    digit_timeout_ms: int
    keys: MappingProxyType
    on_no_input: object
    on_invalid: object
    invalid_file: str | None = None
    transcript: str = ''
    barge_in: bool = True


@dataclass(frozen=True)
class Hangup:
    id: str


@dataclass(frozen=True)
class TransferStep:
    id: str
    destination: str


@dataclass(frozen=True)
class Script:
    """One customer's call: steps by id, where to start. No I/O, safe to share."""
    template: str
    start: str
    steps: MappingProxyType

    def files(self):
        """Every file the script may play, once each, in step order (check they exist before a call)."""
        paths = []
        for step in self.steps.values():
            paths += getattr(step, 'files', ())
            paths += [step.invalid_file] if getattr(step, 'invalid_file', None) else []
        return list(dict.fromkeys(paths))

    def transcript(self):
        """What a listener hears from the start along the no-key path, as Vietnamese text."""
        parts, step_id, seen = [], self.start, set()
        while step_id is not None and step_id not in seen:
            seen.add(step_id)
            parts.append(getattr(self.steps[step_id], 'transcript', ''))
            step_id, _ = next_step(self, step_id, None)
        return ' '.join(part for part in parts if part)


def next_step(script, step_id, digits=None):
    """Where the call goes after step `step_id` ended with `digits` (None or '' = no key).

    Returns (next step id or None, tuple of effects). When the id is None the effects end
    with exactly one TransferCall or EndCall. Digits after a Play step are a key pressed while
    it played: they answer the menu it leads into (`barge_into`), or are ignored."""
    step = script.steps[step_id]
    if isinstance(step, Play):
        if digits and step.barge_into:
            return next_step(script, step.barge_into, digits)
        return (step.next, ()) if step.next else (None, (EndCall(),))
    if isinstance(step, Hangup):
        return None, (EndCall(),)
    if isinstance(step, TransferStep):
        return None, (TransferCall(step.destination),)
    if not digits:
        action = step.on_no_input
    else:
        action = step.keys.get(digits, step.on_invalid)
    return _apply(action, step_id)


def _apply(action, step_id):
    if isinstance(action, Goto):
        return action.step, ()
    if isinstance(action, Repeat):
        return step_id, ()
    if isinstance(action, Transfer):
        return None, (TransferCall(action.destination),)
    if isinstance(action, SetResult):
        target, effects = _apply(action.then, step_id)
        return target, (RecordResult(action.name),) + effects
    return None, (EndCall(),)


# --- FreeSWITCH argument strings ----------------------------------------------------------

def playback_arg(files):
    """The `playback` argument for `files`: one path, or file_string://a!b!c."""
    files = [_safe(path) for path in files]
    if not files:
        raise UnsafeArgument('nothing to play')
    return files[0] if len(files) == 1 else 'file_string://' + '!'.join(files)


def playback_terminators_arg(barge_in):
    """The `set` argument that makes the next playbacks stop on any key (barge-in) or on none.

    mod_dptools' playback stops on a key listed in `playback_terminators` (unset means '*')
    and names it in `playback_terminator_used`; 'any' and 'none' are its fixed words."""
    return 'playback_terminators=' + ('any' if barge_in else 'none')


def play_and_get_digits_arg(menu, var_name):
    """The play_and_get_digits argument for `menu`:
    ``min max tries timeout terminators file invalid_file var_name regexp digit_timeout``.

    Give every execution its own `var_name` (channel variables outlive an execution).
    Only our file paths and numbers reach the string; anything else raises UnsafeArgument."""
    if not _IDENT.fullmatch(var_name or ''):
        raise UnsafeArgument(f'variable name {var_name!r} must be letters, digits and _')
    keys = sorted(menu.keys)
    if not keys or not all(_KEY.fullmatch(key) for key in keys):
        raise UnsafeArgument(f'menu {menu.id!r} keys {keys!r} must be digits, * or #')
    terminators = 'none' if any('#' in key for key in keys) else '#'
    regexp = '^(' + '|'.join(key.replace('*', '[*]') for key in keys) + ')$'
    invalid = _safe(menu.invalid_file) if menu.invalid_file else NO_INVALID_PROMPT
    return ' '.join(str(part) for part in (
        1, menu.max_digits, menu.tries, menu.timeout_ms, terminators, playback_arg(menu.files),
        invalid, var_name, regexp, menu.digit_timeout_ms))


def rest_of_menu_arg(menu, first, var_name):
    """The play_and_get_digits argument that collects the rest of a menu answer whose `first`
    key stopped a prompt (barge-in), with no prompt; None when no key of `menu` is longer and
    starts with `first` (then `first` alone is the answer)."""
    rests = sorted(key[len(first):] for key in menu.keys if key.startswith(first) and len(key) > len(first))
    if not rests:
        return None
    if not _IDENT.fullmatch(var_name or '') or not all(_KEY.fullmatch(rest) for rest in rests):
        raise UnsafeArgument(f'menu {menu.id!r}: cannot collect after key {first!r} into {var_name!r}')
    terminators = 'none' if any('#' in key for key in menu.keys) else '#'
    regexp = '^(' + '|'.join(rest.replace('*', '[*]') for rest in rests) + ')$'
    # 'silence' is switch_ivr_read's word for "no prompt": the wait for the next key starts at once.
    return ' '.join(str(part) for part in (
        1, menu.max_digits - len(first), 1, menu.digit_timeout_ms, terminators, 'silence', NO_INVALID_PROMPT,
        var_name, regexp, menu.digit_timeout_ms))


def _safe(path):
    if not isinstance(path, str) or not os.path.isabs(path) or _UNSAFE_IN_ARG.search(path):
        raise UnsafeArgument(f'file path {path!r} is not an absolute path of plain characters')
    return path


# --- template names -----------------------------------------------------------------------

def valid_template_name(name):
    """True for plain names like IVR-1: [A-Za-z0-9][A-Za-z0-9_.-]* without '..', at most 100 long."""
    return (isinstance(name, str) and len(name) <= 100 and '..' not in name
            and _TEMPLATE_NAME.fullmatch(name) is not None)


def template_path(templates_dir, name):
    """Absolute path of template `name` inside `templates_dir`; UnknownTemplate for a bad name."""
    if not valid_template_name(name):
        raise UnknownTemplate(f'{name!r} is not a template name: use letters, digits, _ . - (e.g. IVR-1)')
    return os.path.join(os.path.abspath(templates_dir), name + '.toml')


def template_names(templates_dir):
    """Names of the *.toml files in `templates_dir`, sorted."""
    names = (entry[:-5] for entry in os.listdir(templates_dir) if entry.endswith('.toml'))
    return sorted(name for name in names if valid_template_name(name))


# --- the parsed template ------------------------------------------------------------------

@dataclass(frozen=True)
class _Prompt:
    name: str
    path: str
    text: str


@dataclass(frozen=True)
class _Say:
    field: str
    kind: str


@dataclass(frozen=True)
class _Draft:
    step: object          # a Play/Menu with files=() or a Hangup/TransferStep
    parts: tuple = ()     # _Prompt/_Say to render into step.files


@dataclass(frozen=True)
class Template:
    """A checked template. ``render`` is pure: no file is read after loading."""
    name: str
    path: str
    description: str
    start: str
    drafts: MappingProxyType
    words_dir: str
    variant: say_vi.Variant
    fields: frozenset = field(default_factory=frozenset)

    def files(self):
        """Every file a call of this template may play, whatever the customer: its prompts,
        wrong-key prompts, and every word file its spoken fields may need, once each."""
        paths = []
        for draft in self.drafts.values():
            for part in draft.parts:
                if isinstance(part, _Prompt):
                    paths.append(part.path)
                else:
                    slugs = sorted(say_vi.possible_slugs(part.kind, self.variant))
                    paths += [os.path.join(self.words_dir, slug + '.wav') for slug in slugs]
            if getattr(draft.step, 'invalid_file', None):
                paths.append(draft.step.invalid_file)
        return list(dict.fromkeys(paths))

    @functools.cached_property
    def spoken_fields(self):
        """Customer fields this template says aloud: a customer must have every one."""
        return frozenset(part.field for draft in self.drafts.values()
                         for part in draft.parts if isinstance(part, _Say))

    def render(self, customer):
        """The Script for one customer's fields; RenderError naming the field if one cannot be said."""
        if not hasattr(customer, 'get'):
            raise RenderError(f'customer fields must be a mapping, not {type(customer).__name__}', None)
        steps = {step_id: self._render_step(draft, customer) for step_id, draft in self.drafts.items()}
        return Script(self.name, self.start, MappingProxyType(steps))

    def _render_step(self, draft, customer):
        if not isinstance(draft.step, (Play, Menu)):
            return draft.step
        files, words = [], []
        for part in draft.parts:
            if isinstance(part, _Prompt):
                files.append(part.path)
                words.append(part.text)
            else:
                slugs = self._say(part, draft.step.id, customer)
                files += [os.path.join(self.words_dir, slug + '.wav') for slug in slugs]
                words.append(say_vi.text(slugs))
        return replace(draft.step, files=tuple(files), transcript=' '.join(words))

    def _say(self, part, step_id, customer):
        value = customer.get(part.field)
        if value is None or value == '':
            raise RenderError(f'template {self.name} step {step_id!r}: customer field '
                              f'{part.field!r} is missing', part.field)
        try:
            return say_vi.say(part.kind, value, self.variant)
        except say_vi.SayError as exc:
            raise RenderError(f'template {self.name} step {step_id!r}: customer field '
                              f'{part.field!r}: {exc}', part.field) from None


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
        with open(path, 'rb') as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        return None, [Problem(name, None, f'no such file {path}')]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, None, f'cannot read {path}: {exc}')]
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(name, None, f'TOML syntax error: {exc}')]
    parser = _Parser(name, os.path.abspath(sounds_dir), var, destinations)
    template = parser.parse(doc, os.path.abspath(path))
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
            _Graph(self, drafts, start).check()
        self._check_sounds(drafts)
        return Template(self.name, path, str(head.get('description', '')), start,
                        MappingProxyType(_with_barge_in(drafts)), os.path.join(self.sounds_dir, WORDS_DIR),
                        self.var, frozenset(self.fields - KNOWN_FIELDS))

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
            self.problem(None, f"[template] prompts {prompts!r} must be a folder inside the sounds folder, "
                               "like \"vi/prompts\"")
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
            with open(path, 'rb') as fh:
                texts = tomllib.load(fh)
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            self.problem(None, f'cannot read the prompt texts {path}: {exc}')
            return {}
        return {key: value for key, value in texts.items() if isinstance(value, str)}

    def _step_ids(self, tables):
        ids, seen = [], set()
        for index, table in enumerate(tables, 1):
            step_id = table.get('id')
            if not isinstance(step_id, str) or not _IDENT.fullmatch(step_id):
                self.problem(None, f'step number {index} needs an id of letters, digits and _ '
                                   f'(like id = "greeting"), not {step_id!r}')
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
            self.problem(step_id, f'unknown step type: a step has exactly one of '
                                  f'{", ".join(_STEP_TYPES)} (found: {found})')
            return None
        kind = types[0]
        for key in sorted(set(table) - {'id', kind} - _STEP_KEYS[kind]):
            self.problem(step_id, f"unknown setting '{key}' for a {kind} step")
        return getattr(self, f'_parse_{kind}')(step_id, table, following, ids)

    def _next(self, step_id, table, following, ids):
        target = table.get('next', following)
        if target is not None and target not in ids:
            self.problem(step_id, f"next step '{target}' does not exist")
        return target

    def _parse_play(self, step_id, table, following, ids):
        items = table['play']
        items = [items] if isinstance(items, (str, dict)) else items
        if not isinstance(items, list) or not items:
            self.problem(step_id, 'play must list prompt names and fields, like ["greeting", { money = "upcoming_amount" }]')
            items = []
        parts = tuple(part for part in (self._part(step_id, item) for item in items) if part)
        step = Play(step_id, (), self._next(step_id, table, following, ids))
        return _Draft(step, parts)

    def _parse_say(self, step_id, table, following, ids):
        part = self._say_part(step_id, table['say'], table.get('as'))
        step = Play(step_id, (), self._next(step_id, table, following, ids))
        return _Draft(step, (part,) if part else ())

    def _parse_hangup(self, step_id, table, following, ids):
        if table['hangup'] is not True:
            self.problem(step_id, 'write hangup = true')
        return _Draft(Hangup(step_id))

    def _parse_transfer(self, step_id, table, following, ids):
        destination = self._destination(step_id, table['transfer'])
        return _Draft(TransferStep(step_id, destination or ''))

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
        on_invalid = (self._action(step_id, 'wrong_key', table['wrong_key'], ids) if 'wrong_key' in table
                      else on_no_input)
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
        step = Menu(step_id, (), int(limits['timeout'] * 1000), int(limits['tries']), int(limits['max_digits']),
                    int(limits['digit_timeout'] * 1000), MappingProxyType(keys), on_no_input, on_invalid,
                    invalid_file, barge_in=barge_in)
        return _Draft(step, parts)

    def _number(self, step_id, table, key):
        default, low, high = _MENU_LIMITS[key]
        value = table.get(key, default)
        whole = key in ('tries', 'max_digits')
        ok_type = isinstance(value, int) if whole else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not low <= value <= high:
            unit = '' if whole else ' seconds'
            self.problem(step_id, f"{key} must be a {'whole ' if whole else ''}number from {low} to "
                                  f'{high}{unit}, not {value!r}')
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
            return HangupAction()
        if len(words) == 2 and words[0] == 'goto':
            if words[1] not in ids:
                self.problem(step_id, f"{where}: goto to missing step '{words[1]}'")
            return Goto(words[1])
        if len(words) == 2 and words[0] == 'transfer':
            return Transfer(self._destination(step_id, words[1]) or '')
        if len(words) >= 4 and words[0] == 'result' and words[2] == 'then':
            if not _IDENT.fullmatch(words[1]):
                self.problem(step_id, f"{where}: result name '{words[1]}' must be letters, digits and _")
            return SetResult(words[1], self._action(step_id, where, ' '.join(words[3:]), ids))
        self.problem(step_id, f'{where}: unknown action {text!r}; use repeat, hangup, goto STEP, '
                              'transfer DESTINATION or result NAME then <one of those>')
        return HangupAction()

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
            (kind, field_name), = item.items()
            return self._say_part(step_id, field_name, kind)
        if not isinstance(item, str) or not _PROMPT.fullmatch(item.removesuffix('.wav')):
            self.problem(step_id, f'prompt {item!r} must be a file name of letters, digits, _ and -')
            return None
        name = item.removesuffix('.wav')
        path = os.path.join(self.prompts_dir, name + '.wav')
        return _Prompt(name, path, self.prompt_texts.get(name, f'[{name}]'))

    def _say_part(self, step_id, field_name, kind):
        if kind not in say_vi.KINDS:
            self.problem(step_id, f"unknown way to say a field {kind!r}: use one of {', '.join(say_vi.KINDS)}")
            return None
        if not isinstance(field_name, str) or field_name not in self.fields:
            self.problem(step_id, f'unknown customer field {field_name!r} (known: {", ".join(sorted(self.fields))}; '
                                  'declare others in [template] fields)')
            return None
        return _Say(field_name, kind)

    def _check_sounds(self, drafts):
        for step_id, draft in drafts.items():
            paths = [part.path for part in draft.parts if isinstance(part, _Prompt)]
            paths += [draft.step.invalid_file] if getattr(draft.step, 'invalid_file', None) else []
            for path in paths:
                if _UNSAFE_IN_ARG.search(path):
                    self.problem(step_id, f'sound file path {path} has spaces or characters FreeSWITCH misreads')
                elif not os.path.isfile(path):
                    self.problem(step_id, f'missing sound file {path}')
            for part in draft.parts:
                if isinstance(part, _Say):
                    self._check_words(step_id, part)

    def _check_words(self, step_id, part):
        words_dir = os.path.join(self.sounds_dir, WORDS_DIR)
        missing = sorted(slug for slug in say_vi.possible_slugs(part.kind, self.var)
                         if not os.path.isfile(os.path.join(words_dir, slug + '.wav')))
        if missing:
            self.problem(step_id, f"saying field '{part.field}' as {part.kind} needs word files missing from "
                                  f"{words_dir}: {', '.join(slug + '.wav' for slug in missing)}")
        if _UNSAFE_IN_ARG.search(words_dir):
            self.problem(step_id, f'word folder {words_dir} has spaces or characters FreeSWITCH misreads')


def _with_barge_in(drafts):
    """The drafts, each Play step marked with the barge-in menu it leads into (if any)."""
    steps = {step_id: draft.step for step_id, draft in drafts.items()}
    marked = {}
    for step_id, draft in drafts.items():
        menu = _menu_ahead(steps, step_id) if isinstance(draft.step, Play) else None
        marked[step_id] = replace(draft, step=replace(draft.step, barge_into=menu)) if menu else draft
    return marked


def _menu_ahead(steps, step_id):
    """The menu reached from `step_id` through Play steps only, if it takes barge-in."""
    seen = set()
    while isinstance(steps.get(step_id), Play) and step_id not in seen:
        seen.add(step_id)
        step_id = steps[step_id].next
    step = steps.get(step_id)
    return step.id if isinstance(step, Menu) and step.barge_in else None


class _Graph:
    """Checks of a template's flow: every step reachable, no trap, a silent callee's call ends."""
    EXIT = None

    def __init__(self, parser, drafts, start):
        self.parser, self.start = parser, start
        self.steps = {step_id: draft.step for step_id, draft in drafts.items()}

    def check(self):
        edges = {step_id: self._targets(step) for step_id, step in self.steps.items()}
        reached = self._reach(self.start, edges)
        for step_id in self.steps:
            if step_id not in reached:
                self.parser.problem(step_id, 'unreachable: no step leads here')
        exits = {step_id for step_id, targets in edges.items() if self.EXIT in targets}
        escaping = self._backwards(exits, edges)
        trapped = [step_id for step_id in self.steps if step_id in reached and step_id not in escaping]
        if trapped:
            self.parser.problem(trapped[0], f"steps {', '.join(trapped)} loop forever with no way out: "
                                            'nothing among them hangs up or transfers')
        self._check_silent_path()

    def _targets(self, step):
        if isinstance(step, Play):
            return {self._known(step.next)}
        if isinstance(step, Menu):
            actions = list(step.keys.values()) + [step.on_no_input, step.on_invalid]
            return {self._action_target(action, step.id) for action in actions}
        return {self.EXIT}

    def _action_target(self, action, step_id):
        while isinstance(action, SetResult):
            action = action.then
        if isinstance(action, Goto):
            return self._known(action.step)
        return step_id if isinstance(action, Repeat) else self.EXIT

    def _known(self, step_id):
        """`step_id`, or EXIT for a missing step (reported elsewhere) so the walk stays inside."""
        return step_id if step_id in self.steps else self.EXIT

    @staticmethod
    def _reach(start, edges):
        reached, todo = set(), [start]
        while todo:
            step_id = todo.pop()
            if step_id is None or step_id in reached:
                continue
            reached.add(step_id)
            todo.extend(edges.get(step_id, ()))
        return reached

    @staticmethod
    def _backwards(exits, edges):
        escaping, changed = set(exits), True
        while changed:
            changed = False
            for step_id, targets in edges.items():
                if step_id not in escaping and targets & escaping:
                    escaping.add(step_id)
                    changed = True
        return escaping

    def _check_silent_path(self):
        path, step_id = [], self.start
        while step_id is not None:
            if step_id in path:
                loop = ' → '.join(path[path.index(step_id):] + [step_id])
                self.parser.problem(step_id, f'a callee who presses no key loops forever: {loop}; '
                                             "make a menu's no_key end the call or go on to another step")
                return
            path.append(step_id)
            step = self.steps[step_id]
            if isinstance(step, Play):
                step_id = self._known(step.next)
            elif isinstance(step, Menu):
                step_id = self._action_target(step.on_no_input, step.id)
            else:
                step_id = None


# --- loader with reload -------------------------------------------------------------------

class TemplateLoader:
    """Templates by name, re-read when their file changes.

    ``get`` returns the current good version. A broken edit keeps the last good version
    and is logged once per edit (file and problems named). Files are looked at no more
    often than every `recheck_seconds` of `clock` time."""

    def __init__(self, templates_dir, sounds_dir, *, variant='north', destinations=None,
                 clock=time.monotonic, recheck_seconds=1.0):
        self.templates_dir = os.path.abspath(templates_dir)
        self.sounds_dir = os.path.abspath(sounds_dir)
        self.variant = say_vi.variant(variant) if isinstance(variant, str) else variant
        self.destinations = destinations
        self._clock, self._recheck = clock, recheck_seconds
        self._good = {}       # name -> (stamp, Template)
        self._failed = {}     # name -> (error class, args) while it has no good version
        self._checked = {}    # name -> clock time of the last look at the file
        self._reported = {}   # name -> stamp of the broken version already logged

    def names(self):
        """Names of the template files present (valid or not)."""
        return template_names(self.templates_dir)

    def check(self, name):
        """Every problem of template `name` as it is on disk now."""
        return check(template_path(self.templates_dir, name), self.sounds_dir,
                     variant=self.variant, destinations=self.destinations)

    def get(self, name):
        """The current good Template `name`.

        UnknownTemplate: bad name, or no file and never loaded. TemplateInvalid: never valid."""
        path = template_path(self.templates_dir, name)
        now = self._clock()
        if now - self._checked.get(name, float('-inf')) >= self._recheck:
            self._checked[name] = now
            self._refresh(name, path)
        if name in self._good:
            return self._good[name][1]
        error, args = self._failed[name]
        raise error(*args)

    def _refresh(self, name, path):
        stamp, good = _stamp(path), self._good.get(name)
        if good and good[0] == stamp:
            return
        if stamp is None and not good:
            self._failed[name] = (UnknownTemplate, (f'no template {name}: {path} does not exist',))
            return
        try:
            template = load(path, self.sounds_dir, variant=self.variant, destinations=self.destinations)
        except TemplateInvalid as exc:
            self._failed[name] = (TemplateInvalid, (name, exc.problems))
            self._report_once(name, path, stamp, exc.problems, bool(good))
            return
        if good:
            log.info('template %s reloaded from %s', name, path)
        self._good[name] = (stamp, template)
        self._failed.pop(name, None)
        self._reported.pop(name, None)

    def _report_once(self, name, path, stamp, problems, have_good):
        if self._reported.get(name) == stamp:
            return
        self._reported[name] = stamp
        keeping = 'still using the last good version' if have_good else 'it cannot be used'
        log.error('template %s: %s is broken, %s: %s', name, path, keeping, '; '.join(str(p) for p in problems))


def _stamp(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
