"""The errors of the IVR package, and `Problem`: one thing the checker found wrong."""

from dataclasses import dataclass

from daemon.errors import AutocallError


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


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a template; ``str()`` is one line naming template and step."""

    template: str
    step: str | None
    message: str

    def __str__(self):
        where = f"{self.template}: step '{self.step}'" if self.step else self.template
        return f'{where}: {self.message}'
