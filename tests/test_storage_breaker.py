"""The circuit breaker's state machine (broker/storage/breaker.py), on a controlled clock.

The breaker against a real, hung redis-server is in tests/e2e/test_selfheal.py.
"""

from __future__ import annotations

import pytest
import redis

from broker.storage import breaker as breaker_mod
from broker.storage.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(breaker_mod.time, "monotonic", fake)
    return fake


def test_a_timeout_opens_it_for_the_full_period_then_one_probe_closes_it(clock: Clock) -> None:
    cb = CircuitBreaker(1.0, probe_timeout=5.0)
    cb.before_call()
    cb.record_failure(redis.TimeoutError("slow"))
    assert cb.state == OPEN and cb.is_open
    clock.now += 0.9
    with pytest.raises(CircuitOpen):
        cb.before_call()
    clock.now += 0.2
    cb.before_call()  # the probe
    assert cb.state == HALF_OPEN
    with pytest.raises(CircuitOpen):  # only one probe at a time
        cb.before_call()
    cb.record_success()
    assert cb.state == CLOSED and not cb.is_open
    cb.before_call()


def test_a_failed_probe_opens_it_again(clock: Clock) -> None:
    cb = CircuitBreaker(1.0, probe_timeout=5.0)
    cb.record_failure(redis.TimeoutError("slow"))
    clock.now += 1.0
    cb.before_call()
    cb.record_failure(redis.TimeoutError("still slow"))
    assert cb.state == OPEN
    with pytest.raises(CircuitOpen):
        cb.before_call()


def test_a_quick_failure_opens_it_only_briefly(clock: Clock) -> None:
    cb = CircuitBreaker(1.0, probe_timeout=5.0)
    cb.record_failure(redis.ConnectionError("refused"))
    with pytest.raises(CircuitOpen):
        cb.before_call()
    clock.now += breaker_mod.FAST_FAILURE_OPEN
    cb.before_call()  # probe already
    assert cb.state == HALF_OPEN


def test_a_probe_that_never_reports_frees_its_slot(clock: Clock) -> None:
    cb = CircuitBreaker(1.0, probe_timeout=5.0)
    cb.record_failure(redis.TimeoutError("slow"))
    clock.now += 1.0
    cb.before_call()
    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        cb.before_call()
    clock.now += 0.2
    cb.before_call()  # another probe


def test_circuit_open_is_a_storage_error_and_does_not_count_as_a_failure(clock: Clock) -> None:
    assert issubclass(CircuitOpen, redis.ConnectionError)  # -> 503 temporarily_unavailable
    cb = CircuitBreaker(1.0, probe_timeout=5.0)
    cb.record_failure(CircuitOpen("refused without trying"))
    assert cb.state == CLOSED


def test_zero_turns_it_off(clock: Clock) -> None:
    cb = CircuitBreaker(0, probe_timeout=5.0)
    cb.record_failure(redis.TimeoutError("slow"))
    cb.before_call()
    assert not cb.is_open


def test_a_forked_child_starts_closed(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    cb = CircuitBreaker(1.0, probe_timeout=5.0)
    cb.record_failure(redis.TimeoutError("slow"))
    monkeypatch.setattr(breaker_mod.os, "getpid", lambda: -1)
    cb.before_call()  # the child's own state: closed
    assert cb.state == CLOSED
