"""A rendered call: its steps, the actions of menu keys and the effects `next_step` reports.

Plain immutable data with absolute file paths, no I/O: a `Script` is safe to share between
greenlets. Each step and action says in words what it does (`describe()`), for
`autocall templates render`.

Transfer and hang-up have two names each, one per role: the step a template declares
(`TransferStep`, `Hangup`) and the action/effect that ends the IVR (`TransferCall`, `EndCall`),
which a menu key names and `next_step` reports.
"""

from dataclasses import dataclass
from types import MappingProxyType

# --- what a menu key does; TransferCall and EndCall are also the final effects -------------


@dataclass(frozen=True)
class Goto:
    """Action: go to step `step`."""

    step: str

    def describe(self):
        return f'goto {self.step}'


@dataclass(frozen=True)
class Repeat:
    """Action: run the same menu again, with its tries counted afresh."""

    def describe(self):
        return 'repeat this menu'


@dataclass(frozen=True)
class SetResult:
    """Action: record result `name`, then do action `then`."""

    name: str
    then: object

    def describe(self):
        return f'record result {self.name}, then {self.then.describe()}'


@dataclass(frozen=True)
class TransferCall:
    """Action, and effect: leave the IVR and transfer the call to the configured `destination`.
    As an effect, always last."""

    destination: str

    def describe(self):
        return f'transfer to {self.destination}'


@dataclass(frozen=True)
class EndCall:
    """Action, and effect: hang up. As an effect, always last."""

    def describe(self):
        return 'hang up'


@dataclass(frozen=True)
class RecordResult:
    """Effect: store `name` as this customer's result."""

    name: str


# --- steps ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Play:
    """Play `files`, then go to `next`. `barge_into`: the menu this step leads into (through
    play steps only) when that menu takes barge-in; a key pressed while it plays answers that menu."""

    id: str
    files: tuple
    next: str | None
    transcript: str = ''
    barge_into: str | None = None

    def describe(self):
        early = f' (a key pressed meanwhile answers {self.barge_into})' if self.barge_into else ''
        return f'play, then {self.next or "hang up"}{early}'


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

    def describe(self):
        invalid = f', wrong-key prompt {self.invalid_file}' if self.invalid_file else ''
        return (
            f'menu: wait {self.timeout_ms / 1000:g} s for up to {self.max_digits} key(s), {self.tries} tries{invalid}'
        )


@dataclass(frozen=True)
class Hangup:
    """Step: hang up."""

    id: str

    def describe(self):
        return 'hang up'


@dataclass(frozen=True)
class TransferStep:
    """Step: transfer the call to the configured `destination`."""

    id: str
    destination: str

    def describe(self):
        return f'transfer to {self.destination}'


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
        from daemon.ivr.flow import next_step  # flow reads these classes; the walk needs flow

        parts, step_id, seen = [], self.start, set()
        while step_id is not None and step_id not in seen:
            seen.add(step_id)
            parts.append(getattr(self.steps[step_id], 'transcript', ''))
            step_id, _ = next_step(self, step_id, None)
        return ' '.join(part for part in parts if part)
