"""Where a call goes next: `next_step`, a pure function of a Script, a step and the keys pressed."""

from daemon.ivr.script import EndCall, Goto, Hangup, Play, RecordResult, Repeat, SetResult, TransferCall, TransferStep


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


def accepts(script, step_id, digits) -> bool:
    """Whether `digits` after step `step_id` are keys a menu accepts (listed among its keys;
    after a Play step, the menu it leads into): what a queue's `retry_when = ["no_key"]` asks."""
    step = script.steps[step_id]
    if isinstance(step, Play):
        step = script.steps[step.barge_into] if digits and step.barge_into else None
    return bool(digits) and hasattr(step, 'keys') and digits in step.keys


def _apply(action, step_id):
    if isinstance(action, Goto):
        return action.step, ()
    if isinstance(action, Repeat):
        return step_id, ()
    if isinstance(action, TransferCall):
        return None, (action,)
    if isinstance(action, SetResult):
        target, effects = _apply(action.then, step_id)
        return target, (RecordResult(action.name),) + effects
    return None, (EndCall(),)
