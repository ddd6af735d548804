"""Which sound files FreeSWITCH itself can open, asked with `api file_exists <path>`.

The switch runs as another user than the daemon: a file the daemon reads may sit in a folder
the switch cannot enter, and then `playback` answers FILE NOT FOUND while `file_string://`
skips it without a word. So the files of a template are checked as FreeSWITCH sees them
(mod_commands' file_exists stats the path as the switch's user), once per version of a file.
`prepare(claim, ...)` is the gate every call passes: its script rendered, every file there.
"""

from __future__ import annotations

import logging
import os

from daemon import ivr
from daemon.esl import ESLError, ESLTimeout, commands
from daemon.store.records import Claim
from daemon.template_gate import template_unusable

log = logging.getLogger("autocall.playable")

UNPLAYABLE_RECHECK = 5.0  # seconds before the switch is asked again about a template it could not play


class SwitchFiles:
    """Remembers the files FreeSWITCH said it can see, per (path, mtime, ctime, size).

    A file it cannot see is asked again next time: the fix is often a folder's permission,
    which changes nothing of the file itself."""

    def __init__(self):
        self._seen: set[tuple] = set()

    def unplayable(self, client, paths) -> list[str]:
        """The `paths` FreeSWITCH cannot see (or that do not exist at all), in order.
        `client` is a connected ESLClient; its ESLError passes through, and an answer other
        than true/false raises ESLError."""
        missing = []
        for path in paths:
            key = _version(path)
            if key is None:
                missing.append(path)
            elif key not in self._seen:
                answer = client.api(commands.file_exists(path)).strip()
                if answer == "true":
                    self._seen.add(key)
                elif answer == "false":
                    missing.append(path)
                else:  # e.g. "-ERR file_exists Command not found!" without mod_commands
                    raise ESLError(f"file_exists {path}: unexpected answer {answer[:80]!r}")
        return missing


class TemplateCheck:
    """Which files of a template FreeSWITCH cannot play, remembered per loaded template version."""

    def __init__(self, switch_files: SwitchFiles | None = None):
        self.switch_files = switch_files or SwitchFiles()
        self._verdicts: dict[str, tuple] = {}  # template name -> (Template, files it cannot play, when)

    def forget(self, name: str | None = None):
        """Ask the switch again: about template `name`, or (None) about every file of every template."""
        if name is None:
            self.switch_files, self._verdicts = SwitchFiles(), {}
        else:
            self._verdicts.pop(name, None)
            self.switch_files = SwitchFiles()

    def check_all(self, client, templates, now: float):
        """Ask about every file of every good template (start-up and reconnect); the answers
        are kept, so claims later ask only about templates edited since."""
        for name in templates.names():
            try:
                template = templates.get(name)
            except ivr.TemplateError:
                continue  # the loader has logged why
            self.unplayable(client, template, now)

    def unplayable(self, client, template, now: float) -> list[str]:
        """The files of `template` FreeSWITCH cannot play. Asked once per loaded version while
        they are all playable; while some are not, again UNPLAYABLE_RECHECK after monotonic
        `now` (the fix, a folder's permission, changes nothing the loader sees)."""
        checked, unplayable, at = self._verdicts.get(template.name, (None, [], 0.0))
        if checked is template and (not unplayable or now - at < UNPLAYABLE_RECHECK):
            return unplayable
        try:
            unplayable = self.switch_files.unplayable(client, template.files())
        except ESLError as e:
            log.warning("template %s: cannot ask FreeSWITCH about its files (%s); not checked", template.name, e)
            if client.is_alive() and not isinstance(e, ESLTimeout):  # it cannot tell: ask no more
                self._verdicts[template.name] = (template, [], now)
            return []
        self._verdicts[template.name] = (template, unplayable, now)
        if unplayable:
            log.error(
                "template %s: FreeSWITCH cannot play %d of its files: %s",
                template.name,
                len(unplayable),
                ", ".join(unplayable),
            )
        return unplayable


def _version(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class Unprepared(Exception):
    """A claim that cannot be called: what `ledger.abandon` records for it, the customer kept
    in its place (pending). `stop_reason` stops the queue; `wait_reason` holds it back until
    the cause is gone; `unspeakable` is the template that cannot speak to this customer (the
    dialer counts who else it cannot speak to, and stops the queue: daemon/template_gate.py)."""

    def __init__(
        self,
        cause: str,
        *,
        stop_reason: str | None = None,
        wait_reason: str | None = None,
        unspeakable: ivr.Template | None = None,
    ):
        super().__init__(stop_reason or wait_reason or cause)
        self.cause = cause
        self.stop_reason, self.wait_reason, self.unspeakable = stop_reason, wait_reason, unspeakable


def prepare(claim: Claim, templates: ivr.TemplateLoader, unplayable=lambda template: []) -> ivr.Script:
    """The claim's rendered script, once every file it may play exists and `unplayable(template)`
    (the files FreeSWITCH cannot play) is empty. Raises Unprepared, the customer always kept
    pending: fields the template cannot say (it changed since the import checked them), a
    template that cannot be loaded (the queue waits), a missing file (the queue stops)."""
    try:
        template = templates.get(claim.template)
    except ivr.TemplateError as e:
        raise Unprepared("TEMPLATE_ERROR", wait_reason=template_unusable(claim.template, e)) from None
    try:
        script = template.render(claim.fields)
    except ivr.RenderError as e:
        if templates.changing(claim.template):  # an edit, perhaps the fix, is taken in a moment
            raise Unprepared(
                f"TEMPLATE_CHANGED: {e}",
                wait_reason=f"waiting: template {claim.template} was edited; its new version is read in a moment",
            ) from None
        raise Unprepared(f"TEMPLATE_CHANGED: {e}", unspeakable=template) from None
    missing = [path for path in script.files() if not os.path.exists(path)]
    if missing:
        raise Unprepared("SOUND_FILE_MISSING", stop_reason=f"sound files missing: {', '.join(missing[:5])}")
    cannot = unplayable(template)
    if cannot:
        raise Unprepared(
            "SOUND_FILE_UNPLAYABLE",
            stop_reason=f"template {claim.template}: FreeSWITCH cannot play {', '.join(cannot[:5])}",
        )
    return script
