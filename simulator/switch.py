"""What a channel gets from the switch around it, and what it is asked to run."""

import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass


class ExecRequest:
    """An application to run: from sendmsg (with its headers, echoed in PRIVATE_COMMAND) or uuid_broadcast."""

    def __init__(self, app, arg='', app_uuid=None, sendmsg_text=None):
        self.app = app
        self.arg = arg or ''
        self.app_uuid = app_uuid or str(uuidlib.uuid4())
        self.sendmsg_text = sendmsg_text


@dataclass(frozen=True)
class Switch:
    """What a channel may use of the switch around it: its clock, files and scenario, the
    switch-wide event fields, and callbacks. The channel never sees the whole Simulator."""

    clock: object  # now() in simulated seconds, real(seconds) to sleep
    media: object  # which files the switch can open, and for how long
    scenario: object
    base_fields: dict  # Core-UUID, hostname, addresses: in every event
    fire: Callable  # fire(template_key, fields, body=None)
    record_app: Callable  # record_app(channel, request)
    job_done: Callable  # job_done(job, command, args, result)
    gone: Callable  # gone(channel): its life is over
    api: Callable  # api(command, args) -> reply: an api command run by the channel (its hangup hook)
    session_id: int  # this channel's session number (the switch counts them)
