"""Templates by name on disk: where a name's file is, and `TemplateLoader`, which re-reads a
file when it changes and keeps the last good version when an edit breaks it."""

import logging
import os
import re
import time

from daemon import say_vi
from daemon.ivr.errors import TemplateInvalid, UnknownTemplate
from daemon.ivr.parse import check, load

log = logging.getLogger("autocall.ivr")

_TEMPLATE_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')


def valid_template_name(name):
    """True for plain names like IVR-1: [A-Za-z0-9][A-Za-z0-9_.-]* without '..', at most 100 long."""
    return (
        isinstance(name, str) and len(name) <= 100 and '..' not in name and _TEMPLATE_NAME.fullmatch(name) is not None
    )


def template_path(templates_dir, name):
    """Absolute path of template `name` inside `templates_dir`; UnknownTemplate for a bad name."""
    if not valid_template_name(name):
        raise UnknownTemplate(f'{name!r} is not a template name: use letters, digits, _ . - (e.g. IVR-1)')
    return os.path.join(os.path.abspath(templates_dir), name + '.toml')


def template_names(templates_dir):
    """Names of the *.toml files in `templates_dir`, sorted."""
    names = (entry[:-5] for entry in os.listdir(templates_dir) if entry.endswith('.toml'))
    return sorted(name for name in names if valid_template_name(name))


SETTLE_SECONDS = 2.0  # an edited file is taken once it has not changed for this long


class TemplateLoader:
    """Templates by name, re-read when their file changes.

    ``get`` returns the current good version. A broken edit keeps the last good version
    and is logged once per edit (file and problems named). An edit is taken once the file has
    stayed the same for `settle_seconds`: an editor saving in place, slowly, writes a file
    that is for a moment the first steps alone, a valid template that would greet a customer
    and hang up; an edit that appears while its disk is full may be a save cut short, and waits
    until the file changes again. A removed file holds its queues back (`get` raises
    UnknownTemplate) until it is back, as at a start without it. Files are looked at no more
    often than every `recheck_seconds` of `clock` time."""

    def __init__(
        self,
        templates_dir,
        sounds_dir,
        *,
        variant='north',
        destinations=None,
        clock=time.monotonic,
        recheck_seconds=1.0,
        settle_seconds=SETTLE_SECONDS,
    ):
        self.templates_dir = os.path.abspath(templates_dir)
        self.sounds_dir = os.path.abspath(sounds_dir)
        self.variant = say_vi.variant(variant) if isinstance(variant, str) else variant
        self.destinations = destinations
        self._clock, self._recheck, self._settle = clock, recheck_seconds, settle_seconds
        self._seen = {}  # name -> (stamp, clock time it was first seen) of the file as last looked at
        self._good = {}  # name -> (stamp, Template)
        self._failed = {}  # name -> (error class, args) while it has no good version
        self._broken = {}  # name -> (stamp, problems) while the file on disk is not the good version
        self._checked = {}  # name -> clock time of the last look at the file
        self._reported = {}  # name -> stamp of the broken version already logged
        self._cut = {}  # name -> stamp of an edit first seen while its disk was full

    @classmethod
    def from_config(cls, config, **kwargs):
        """The templates as the dialer sees them: `config`'s folders and variant, its transfer
        destination names (the API checks queues against the same loader)."""
        templates = config.templates
        return cls(
            templates.dir,
            templates.sounds,
            variant=templates.variant,
            destinations=[name for name, _target in config.dialer.transfer_destinations],
            **kwargs,
        )

    def names(self):
        """Names of the template files present (valid or not)."""
        return template_names(self.templates_dir)

    def check(self, name):
        """Every problem of template `name` as it is on disk now."""
        return check(
            template_path(self.templates_dir, name),
            self.sounds_dir,
            variant=self.variant,
            destinations=self.destinations,
        )

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

    def get_current(self, name):
        """The Template `name` as its file is now. Like `get`, but while the file on disk is
        broken TemplateInvalid (gone: UnknownTemplate), even though `get` still serves the last
        good version: the API accepts customers only for a template that is valid now."""
        template = self.get(name)
        broken = self._broken.get(name)
        if broken is None:
            return template
        stamp, problems = broken
        if stamp is None:
            raise UnknownTemplate(f'no template {name}: {template_path(self.templates_dir, name)} does not exist')
        raise TemplateInvalid(name, problems)

    def changing(self, name):
        """Whether an edit of `name`, valid, waits to be taken (the file has not been still for
        settle_seconds yet): what `get` gives meanwhile is about to be replaced."""
        good, seen = self._good.get(name), self._seen.get(name)
        return good is not None and seen is not None and seen[0] != good[0] and name not in self._broken

    def _refresh(self, name, path):
        stamp, good = _stamp(path), self._good.get(name)
        if good and good[0] == stamp:
            self._broken.pop(name, None)
            return
        if stamp is None:
            if good:
                del self._good[name]
                log.error('template %s: %s was removed; its queues wait until it is back', name, path)
            self._failed[name] = (UnknownTemplate, (f'no template {name}: {path} does not exist',))
            self._broken.pop(name, None)
            return
        now, seen = self._clock(), self._seen.get(name)
        if seen is None or seen[0] != stamp:
            self._seen[name] = (stamp, now)
            self._note_full_disk(name, path, stamp, first_look=seen is None)
        # Taken at the service's start (nothing to settle against), else once the file is still.
        settled = seen is None or self._settle <= 0 or (seen[0] == stamp and now - seen[1] >= self._settle)
        settled = settled and self._cut.get(name) != stamp
        try:
            template = load(path, self.sounds_dir, variant=self.variant, destinations=self.destinations)
        except TemplateInvalid as exc:  # refused at once: `get_current` says so to the API
            self._failed[name] = (TemplateInvalid, (name, exc.problems))
            self._broken[name] = (stamp, exc.problems)
            self._report_once(name, path, stamp, exc.problems, bool(good))
            return
        if not settled:  # meanwhile the last good version (or the error of none)
            self._broken.pop(name, None)  # what is on disk now is not broken
            return
        if good:
            log.info('template %s reloaded from %s', name, path)
        self._good[name] = (stamp, template)
        self._failed.pop(name, None)
        self._broken.pop(name, None)
        self._reported.pop(name, None)

    def _note_full_disk(self, name, path, stamp, *, first_look):
        """An edit that appears while its disk is full may be a save cut short, which stays still
        and may be valid (the first steps alone): it is held until the file changes again."""
        if first_look or not _disk_full(path):
            self._cut.pop(name, None)
            return
        self._cut[name] = stamp
        log.warning(
            'template %s: %s changed while the disk holding it is full, so the save may have been cut short;'
            ' not taken until it is saved again with room on the disk',
            name,
            path,
        )

    def _report_once(self, name, path, stamp, problems, have_good):
        if self._reported.get(name) == stamp:
            return
        self._reported[name] = stamp
        keeping = 'still using the last good version' if have_good else 'it cannot be used'
        log.error('template %s: %s is broken, %s: %s', name, path, keeping, '; '.join(str(p) for p in problems))


def _disk_full(path):
    """Whether the file system holding `path` has no block left for an ordinary user's writes."""
    try:
        return os.statvfs(os.path.dirname(path)).f_bavail == 0
    except OSError:
        return False


def _stamp(path):
    """What tells one version of the file from another; None when there is no file. A path
    that cannot be looked at (a symlink loop, a folder the service cannot enter) has a stamp
    of its own, so that reading it is tried, and what stops it is named as the template's problem."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return ('unreadable', e.errno)
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
