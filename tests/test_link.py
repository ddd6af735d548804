"""daemon/link.py: one ESL client kept alive, with backoff and health on an injected clock."""

import gevent.event
import pytest

from daemon.errors import ConfigError
from daemon.esl import ESLAuthError, ESLConnectionLost, ESLError
from daemon.link import AUTH_TRIES, BACKOFF_FIRST, BACKOFF_MAX, Link


class FakeClient:
    def __init__(self, heartbeat=0.0):
        self.dead = gevent.event.Event()
        self.last_heartbeat = heartbeat

    def is_alive(self):
        return not self.dead.is_set()

    def close(self):
        self.dead.set()


class Switch:
    """connect() answers with the next of `answers`: a FakeClient, or an exception to raise."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.tries = 0

    def connect(self):
        self.tries += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_first_try_connects_at_once():
    client = FakeClient()
    link = Link(Switch(client).connect, heartbeat_timeout=60)
    assert link.wait(100.0) == 0
    assert link.open(100.0) is client and link.up


def test_a_failed_try_waits_half_a_second_before_the_next():
    switch = Switch(ESLConnectionLost("refused"), FakeClient())
    link = Link(switch.connect, heartbeat_timeout=60)
    assert link.open(100.0) is None and not link.up
    assert link.wait(100.0) == BACKOFF_FIRST
    assert link.open(100.0 + BACKOFF_FIRST - 0.01) is None and switch.tries == 1  # not due: no try
    assert link.open(100.0 + BACKOFF_FIRST) is not None and switch.tries == 2


def test_the_backoff_doubles_up_to_thirty_seconds():
    link = Link(Switch(*[OSError("unreachable")] * 10).connect, heartbeat_timeout=60)
    now, waits = 0.0, []
    for _ in range(10):
        link.open(now)
        waits.append(link.wait(now))
        now += waits[-1]
    assert waits == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert max(waits) == BACKOFF_MAX


def test_a_connection_after_failures_starts_the_backoff_again():
    first, _second = FakeClient(), FakeClient()
    link = Link(Switch(OSError("x"), OSError("x"), first, OSError("x")).connect, heartbeat_timeout=60)
    link.open(0.0)
    link.open(0.5)
    assert link.open(1.5) is first
    first.close()  # the connection dies
    assert not link.up and link.wait(2.0) == 0
    link.open(2.0)
    assert link.wait(2.0) == BACKOFF_FIRST


def test_a_failure_of_then_closes_the_new_client_and_backs_off():
    client = FakeClient()
    link = Link(Switch(client).connect, heartbeat_timeout=60)

    def reconcile(_client):
        raise ESLError("show channels: unexpected reply")

    assert link.open(0.0, then=reconcile) is None
    assert client.dead.is_set() and not link.up and link.wait(0.0) == BACKOFF_FIRST


def test_refusing_the_password_three_times_in_a_row_is_a_configuration_error():
    refused = ESLAuthError("FreeSWITCH refused the ESL password (-ERR invalid)")
    link = Link(Switch(*[refused] * AUTH_TRIES).connect, heartbeat_timeout=60)
    now = 0.0
    for _ in range(AUTH_TRIES - 1):
        assert link.open(now) is None
        now += link.wait(now)
    with pytest.raises(ConfigError, match="esl.password: FreeSWITCH refused it 3 times in a row"):
        link.open(now)


def test_an_unreachable_switch_is_retried_for_as_long_as_it_takes():
    link = Link(Switch(*[OSError("unreachable")] * 50, FakeClient()).connect, heartbeat_timeout=60)
    now = 0.0
    while link.open(now) is None:
        now += link.wait(now)
    assert link.up


@pytest.mark.parametrize("heartbeat_age, healthy", [(0.0, True), (59.9, True), (60.0, False), (300.0, False)])
def test_healthy_needs_a_heartbeat_within_the_timeout(heartbeat_age, healthy):
    link = Link(Switch(FakeClient(heartbeat=1000.0)).connect, heartbeat_timeout=60)
    link.open(1000.0)
    assert link.healthy(1000.0 + heartbeat_age) is healthy


def test_a_dead_connection_is_not_healthy_however_fresh_its_heartbeat():
    client = FakeClient(heartbeat=1000.0)
    link = Link(Switch(client).connect, heartbeat_timeout=60)
    link.open(1000.0)
    client.close()
    assert not link.healthy(1000.0)


def test_no_connection_yet_is_not_healthy():
    assert not Link(Switch().connect, heartbeat_timeout=60).healthy(0.0)
