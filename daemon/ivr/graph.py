"""What needs a template's whole graph of steps: the flow checks (`Graph`) and the barge-in
marking (`with_barge_in`)."""

from dataclasses import replace

from daemon.ivr.script import Goto, Menu, Play, Repeat, SetResult


class Graph:
    """Checks of a template's flow: every step reachable, no trap, a silent callee's call ends."""

    EXIT = None

    def __init__(self, parser, drafts, start):
        self.parser, self.start = parser, start
        self.steps = {step_id: draft.step for step_id, draft in drafts.items()}

    def check(self):
        edges = {step_id: self._targets(step) for step_id, step in self.steps.items()}
        reached = self._reach(self.start, edges)
        for step_id in self.steps:
            if step_id not in reached:
                self.parser.problem(step_id, 'unreachable: no step leads here')
        exits = {step_id for step_id, targets in edges.items() if self.EXIT in targets}
        escaping = self._backwards(exits, edges)
        trapped = [step_id for step_id in self.steps if step_id in reached and step_id not in escaping]
        if trapped:
            self.parser.problem(
                trapped[0],
                f"steps {', '.join(trapped)} loop forever with no way out: nothing among them hangs up or transfers",
            )
        self._check_silent_path()

    def _targets(self, step):
        if isinstance(step, Play):
            return {self._known(step.next)}
        if isinstance(step, Menu):
            actions = list(step.keys.values()) + [step.on_no_input, step.on_invalid]
            return {self._action_target(action, step.id) for action in actions}
        return {self.EXIT}

    def _action_target(self, action, step_id):
        while isinstance(action, SetResult):
            action = action.then
        if isinstance(action, Goto):
            return self._known(action.step)
        return step_id if isinstance(action, Repeat) else self.EXIT

    def _known(self, step_id):
        """`step_id`, or EXIT for a missing step (reported elsewhere) so the walk stays inside."""
        return step_id if step_id in self.steps else self.EXIT

    @staticmethod
    def _reach(start, edges):
        reached, todo = set(), [start]
        while todo:
            step_id = todo.pop()
            if step_id is None or step_id in reached:
                continue
            reached.add(step_id)
            todo.extend(edges.get(step_id, ()))
        return reached

    @staticmethod
    def _backwards(exits, edges):
        escaping, changed = set(exits), True
        while changed:
            changed = False
            for step_id, targets in edges.items():
                if step_id not in escaping and targets & escaping:
                    escaping.add(step_id)
                    changed = True
        return escaping

    def _check_silent_path(self):
        path, step_id = [], self.start
        while step_id is not None:
            if step_id in path:
                loop = ' → '.join(path[path.index(step_id) :] + [step_id])
                self.parser.problem(
                    step_id,
                    f'a callee who presses no key loops forever: {loop}; '
                    "make a menu's no_key end the call or go on to another step",
                )
                return
            path.append(step_id)
            step = self.steps[step_id]
            if isinstance(step, Play):
                step_id = self._known(step.next)
            elif isinstance(step, Menu):
                step_id = self._action_target(step.on_no_input, step.id)
            else:
                step_id = None


def with_barge_in(drafts):
    """The drafts, each Play step marked with the barge-in menu it leads into (if any)."""
    steps = {step_id: draft.step for step_id, draft in drafts.items()}
    marked = {}
    for step_id, draft in drafts.items():
        menu = _menu_ahead(steps, step_id) if isinstance(draft.step, Play) else None
        marked[step_id] = replace(draft, step=replace(draft.step, barge_into=menu)) if menu else draft
    return marked


def _menu_ahead(steps, step_id):
    """The menu reached from `step_id` through Play steps only, if it takes barge-in."""
    seen = set()
    while isinstance(steps.get(step_id), Play) and step_id not in seen:
        seen.add(step_id)
        step_id = steps[step_id].next
    step = steps.get(step_id)
    return step.id if isinstance(step, Menu) and step.barge_in else None
