"""The sound checks of a template: every file a call may play exists, at a path FreeSWITCH reads.

They run once, when the template is loaded, so that `Template.render` never looks at the disk.
"""

import os

from daemon import say_vi
from daemon.esl import commands
from daemon.ivr.template import Prompt, Say


def sound_problems(drafts, words_dir, variant):
    """(step id, message) for every sound file of `drafts` that is missing or misreadable:
    prompts, wrong-key prompts, and the word files each spoken field may need in `variant`."""
    for step_id, draft in drafts.items():
        paths = [part.path for part in draft.parts if isinstance(part, Prompt)]
        paths += [draft.step.invalid_file] if getattr(draft.step, 'invalid_file', None) else []
        for path in paths:
            if not commands.plain_arg(path):
                yield step_id, f'sound file path {path} has spaces or characters FreeSWITCH misreads'
            elif not os.path.isfile(path):
                yield step_id, f'missing sound file {path}'
        for part in draft.parts:
            if isinstance(part, Say):
                yield from _word_problems(step_id, part, words_dir, variant)


def _word_problems(step_id, part, words_dir, variant):
    missing = sorted(
        slug
        for slug in say_vi.possible_slugs(part.kind, variant)
        if not os.path.isfile(os.path.join(words_dir, slug + '.wav'))
    )
    if missing:
        yield (
            step_id,
            f"saying field '{part.field}' as {part.kind} needs word files missing from "
            f"{words_dir}: {', '.join(slug + '.wav' for slug in missing)}",
        )
    if not commands.plain_arg(words_dir):
        yield step_id, f'word folder {words_dir} has spaces or characters FreeSWITCH misreads'
