"""FreeSWITCH stand-in for tests, demos and benchmarks: speaks ESL inbound as FreeSWITCH 1.10.12
does on the wire (held to real captures by tests/test_simulator*.py). See docs/simulator.md.

`Simulator`, `Scenario`, `Behaviour` and `ScenarioError` are importable from here; they load on
first use so that the template generator can run before templates.py exists.
"""

_EXPORTS = {
    'Simulator': 'simulator.server',
    'Scenario': 'simulator.scenario',
    'Behaviour': 'simulator.scenario',
    'ScenarioError': 'simulator.scenario',
}
__all__ = sorted(_EXPORTS) + ['main']


def main(argv=None):
    """Console entry point `autocall-simulator`."""
    from simulator.cli import main as run

    return run(argv)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
