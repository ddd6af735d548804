"""A checked template (what `parse` returns) and its rendering into one customer's Script.

`Template.render` is pure: every file was looked at when the template was loaded.
"""

import functools
import os
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from daemon import say_vi
from daemon.ivr.errors import RenderError
from daemon.ivr.script import Menu, Play, Script
from daemon.ivr.speakable import FieldCheck


@dataclass(frozen=True)
class Prompt:
    """A part of a step: the recorded prompt `name`, its file, and the words it says."""

    name: str
    path: str
    text: str


@dataclass(frozen=True)
class Say:
    """A part of a step: customer field `field`, spoken as `kind` (a say_vi kind)."""

    field: str
    kind: str


@dataclass(frozen=True)
class Draft:
    """A parsed step before rendering: its files come from `parts` and the customer."""

    step: object  # a Play/Menu with files=() or a Hangup/TransferStep
    parts: tuple = ()  # Prompt/Say to render into step.files


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
                if isinstance(part, Prompt):
                    paths.append(part.path)
                else:
                    slugs = sorted(say_vi.possible_slugs(part.kind, self.variant))
                    paths += [os.path.join(self.words_dir, slug + '.wav') for slug in slugs]
            if getattr(draft.step, 'invalid_file', None):
                paths.append(draft.step.invalid_file)
        return list(dict.fromkeys(paths))

    @functools.cached_property
    def speakable(self):
        """The FieldCheck of this version: which customers it can speak to (agrees with render)."""
        says = (
            (part.field, part.kind) for draft in self.drafts.values() for part in draft.parts if isinstance(part, Say)
        )
        return FieldCheck(self.name, says)

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
            if isinstance(part, Prompt):
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
            raise RenderError(
                f'template {self.name} step {step_id!r}: customer field {part.field!r} is missing', part.field
            )
        try:
            return say_vi.say(part.kind, value, self.variant)
        except say_vi.SayError as exc:
            raise RenderError(
                f'template {self.name} step {step_id!r}: customer field {part.field!r}: {exc}', part.field
            ) from None
