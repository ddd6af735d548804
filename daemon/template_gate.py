"""What the dialer does when a queue's template does not fit it (docs/daemon.md, "Templates
that change under a queue"), so that no template change fails customers in bulk:

- a template that cannot be loaded (broken on disk since before this daemon started, or
  gone) holds its queue back: the queue stays `running`, nobody of it is called, its read
  says why (`stop_reason` of a running queue), and it goes on by itself once the file is fixed;
- a template that cannot speak to a claimed customer (edited since the import checked the
  customers, or switched by a re-import) stops the queue with a reason naming each missing
  field and how many pending customers lack it; they all keep their place.
"""

from __future__ import annotations

from daemon import ivr
from daemon.store.records import QueueInfo


def template_unusable(name: str, error: ivr.TemplateError) -> str:
    """Why a queue of template `name` waits while the template cannot be loaded (its read says so)."""
    return (
        f"waiting: template {name} cannot be used ({error}); nobody of this queue is called"
        " until the file is fixed (see: autocall templates check)"
    )


class TemplateGate:
    """`ready(queue)` before claiming, `stop(queue, template)` when a claim cannot be spoken to.
    `ledger` is the dialer's (its methods run off the loop); `clock` is wall time."""

    def __init__(self, templates: ivr.TemplateLoader, ledger, clock):
        self.templates, self.ledger, self.clock = templates, ledger, clock
        self._written: dict[int, tuple[QueueInfo, str | None]] = {}  # queue id -> (as read, what we wrote)

    def ready(self, queue: QueueInfo) -> bool:
        """Whether the queue's template can be loaded now. If not, the queue waits and the
        reason is written for its read; once it can, the reason is cleared."""
        try:
            self.templates.get(queue.template)
        except ivr.TemplateError as e:
            self._note(queue, template_unusable(queue.template, e))
            return False
        self._note(queue, None)
        return True

    def _note(self, queue: QueueInfo, reason: str | None):
        """Write `reason` when the store says otherwise, once per read of the queues (the dialer
        reads them every second; a start or stop by the API clears the reason)."""
        if queue.waiting == reason or self._written.get(queue.id) == (queue, reason):
            return
        self.ledger.set_waiting(queue.id, queue.code, reason, now=self.clock())
        self._written[queue.id] = (queue, reason)

    def stop(self, queue: QueueInfo, template: ivr.Template):
        """Stop the queue: `template` cannot speak to a customer claimed (now pending again),
        and the reason says to how many of its pending customers, field by field."""
        tally = self.ledger.tally_pending(queue.id, template.speakable)
        reason = (
            f"template {template.name} cannot speak to {tally.unspeakable} of {tally.total} pending customers"
            f" ({tally.summary()}); they keep their place: re-import them with what is missing, or fix the"
            " template, then start the queue"
        )
        self.ledger.stop_queue(queue.id, queue.code, reason, now=self.clock())
