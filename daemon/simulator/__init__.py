"""FreeSWITCH stand-in for tests, demos and benchmarks: speaks ESL inbound as FreeSWITCH 1.10.12
does on the wire (held to real captures by tests/test_simulator*.py). See docs/simulator.md."""
from daemon.simulator.cli import main
from daemon.simulator.scenario import Behaviour, Scenario, ScenarioError
from daemon.simulator.server import Simulator

__all__ = ['Behaviour', 'Scenario', 'ScenarioError', 'Simulator', 'main']
