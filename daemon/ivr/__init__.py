"""IVR templates: load and check the TOML files operators edit, render one customer's call.

    script.py    the rendered call: Script, its steps, menu actions and effects (data, no I/O)
    flow.py      next_step: where the call goes after a step and the keys pressed (pure)
    template.py  a checked Template and its render(customer) into a Script
    speakable.py FieldCheck (template.speakable): which customers a template can speak to, cheaply
    parse.py     TOML → Template, collecting every problem (check, load)
    graph.py     what needs the whole flow: its checks (reachable, no trap, the no-key path), barge-in
    sounds.py    the sound checks: every file a call may play exists, at a path FreeSWITCH reads
    loader.py    TemplateLoader: by name, hot reload, last good version; from_config(config)
    errors.py    TemplateError and its kinds, Problem

Flow for a caller (the daemon):
    loader = TemplateLoader.from_config(config)
    script = loader.get('IVR-1').render(customer_fields)      # RenderError: don't call
    step_id = script.start
    while step_id is not None:
        step = script.steps[step_id]
        digits = <keys pressed: during a Play step with barge_into, or the Menu; None for none>
        step_id, effects = next_step(script, step_id, digits)  # RecordResult, TransferCall, EndCall

This package knows nothing of FreeSWITCH: the strings it reads are built from these steps
by `daemon.esl.commands`.
"""

from daemon.ivr.errors import Problem, RenderError, TemplateError, TemplateInvalid, UnknownTemplate
from daemon.ivr.flow import accepts, next_step
from daemon.ivr.loader import TemplateLoader, template_names, template_path, valid_template_name
from daemon.ivr.parse import KNOWN_FIELDS, check, load
from daemon.ivr.script import (
    EndCall,
    Goto,
    Hangup,
    Menu,
    Play,
    RecordResult,
    Repeat,
    Script,
    SetResult,
    TransferCall,
    TransferStep,
)
from daemon.ivr.speakable import FieldCheck, Tally
from daemon.ivr.template import Template

__all__ = [
    'Problem',
    'RenderError',
    'TemplateError',
    'TemplateInvalid',
    'UnknownTemplate',
    'accepts',
    'next_step',
    'TemplateLoader',
    'template_names',
    'template_path',
    'valid_template_name',
    'KNOWN_FIELDS',
    'check',
    'load',
    'Template',
    'FieldCheck',
    'Tally',
    'EndCall',
    'Goto',
    'Hangup',
    'Menu',
    'Play',
    'RecordResult',
    'Repeat',
    'Script',
    'SetResult',
    'TransferCall',
    'TransferStep',
]
