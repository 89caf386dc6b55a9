"""A circuit breaker in front of Redis: while Redis hangs or is gone, fail in microseconds, not seconds.

Without it every request waits the full socket timeout (``BROKER_REDIS_TIMEOUT_MS``) while Redis is
stopped, and a worker's threads all pile up behind the same dead socket. With it:

* **closed** (normal): calls go through. A connection or timeout failure on any connection of the
  pool opens the breaker.
* **open**: :meth:`BreakerConnectionPool.get_connection` raises :class:`CircuitOpen` at once, for
  ``open_seconds`` after a timeout (the costly failure), for at most ``FAST_FAILURE_OPEN`` after
  a failure that was quick anyway (connection refused, socket gone: e.g. a redis-server that is
  being restarted), so that recovery is not delayed by a full open period. ``CircuitOpen`` is a
  :class:`redis.ConnectionError`, so everything that already turns an unreachable Redis into 503
  ``temporarily_unavailable`` (with ``Retry-After``) does the same for it: no 500 comes out of it.
* **half-open**: after the open period one call (the probe) goes through; the others still fail
  fast. Any answer from Redis (even an error reply) closes the breaker; another failure opens it
  again.

redis-py 8.1 ships a circuit breaker only for its multi-database failover client
(``redis.multidb.circuit``, built on ``pybreaker``, switching between several databases); its
``Retry``/``backoff`` retry a call, which makes a hung Redis slower, not faster. Hence this small
one, hooked into the connection pool so plain commands, pipelines and scripts are all covered.

The state is per process (each server worker learns on its own) and is reset in a forked child.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import redis
from redis.connection import ConnectionPool

from broker.observability import metrics

log = logging.getLogger("broker.storage.breaker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
FAST_FAILURE_OPEN = 0.1  # seconds

# What says "Redis is not there" (as opposed to "Redis answered with an error").
_FAILURES = (redis.ConnectionError, redis.TimeoutError, OSError)


class CircuitOpen(redis.ConnectionError):
    """Redis failed a moment ago; the call was refused without trying (the breaker is open)."""


class CircuitBreaker:
    def __init__(self, open_seconds: float, probe_timeout: float) -> None:
        self.open_seconds = open_seconds
        self.probe_timeout = probe_timeout  # a probe that never reports frees its slot after this
        self.state = CLOSED
        self.opened_at = 0.0
        self.open_for = open_seconds
        self.probe_started = 0.0
        self.failures = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def enabled(self) -> bool:
        return self.open_seconds > 0

    def _guard(self) -> threading.Lock:
        if self._pid != os.getpid():  # a forked worker starts closed, with a fresh lock
            self._lock = threading.Lock()
            self._pid = os.getpid()
            self.state, self.failures = CLOSED, 0
        return self._lock

    def before_call(self) -> None:
        """Raise :class:`CircuitOpen` unless this call may go to Redis."""
        if not self.enabled or self.state == CLOSED:
            return
        now = time.monotonic()
        with self._guard():
            if self.state == CLOSED:
                return
            if self.state == OPEN and now - self.opened_at >= self.open_for:
                self.state, self.probe_started = HALF_OPEN, now
                return  # this call is the probe
            if self.state == HALF_OPEN and now - self.probe_started >= self.probe_timeout:
                self.probe_started = now
                return  # the previous probe never reported: let another one try
        metrics.redis_error("circuit_open")
        raise CircuitOpen("Redis is unreachable (circuit open); not trying again yet")

    def record_failure(self, exc: BaseException) -> None:
        metrics.redis_error(exc)
        if not self.enabled or isinstance(exc, CircuitOpen):
            return
        slow = isinstance(exc, (redis.TimeoutError, TimeoutError))
        open_for = self.open_seconds if slow else min(self.open_seconds, FAST_FAILURE_OPEN)
        with self._guard():
            self.failures += 1
            if self.state == CLOSED:  # a failed probe (half-open) is not news
                log.warning(
                    "redis unreachable (%s); failing fast for %.0f ms before probing again",
                    type(exc).__name__,
                    open_for * 1000,
                )
            self.state, self.opened_at, self.open_for = OPEN, time.monotonic(), open_for

    def record_success(self) -> None:
        if self.state == CLOSED:
            return
        with self._guard():
            if self.state != CLOSED:
                log.info("redis reachable again after %d failed call(s); circuit closed", self.failures)
            self.state, self.failures = CLOSED, 0

    @property
    def is_open(self) -> bool:
        """True while calls are being refused (open, or half-open waiting for a probe)."""
        return self.enabled and self.state != CLOSED


class _BreakerConnection:
    """Mixed in before a redis-py connection class: report each failure and each answer."""

    breaker: CircuitBreaker

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().connect(*args, **kwargs)  # type: ignore[misc]
        except _FAILURES as exc:
            self.breaker.record_failure(exc)
            raise

    def send_packed_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().send_packed_command(*args, **kwargs)  # type: ignore[misc]
        except _FAILURES as exc:
            self.breaker.record_failure(exc)
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        except _FAILURES as exc:
            self.breaker.record_failure(exc)
            raise
        except redis.RedisError:
            self.breaker.record_success()  # an error reply is still an answer
            raise
        self.breaker.record_success()
        return response


class BreakerConnectionPool(ConnectionPool):
    """A :class:`redis.ConnectionPool` whose connections feed, and are gated by, one breaker.

    Works for every scheme ``from_url`` understands (``redis://``, ``rediss://``, ``unix://``):
    the URL's connection class gets the breaker mixed in.
    """

    def __init__(self, *args: Any, breaker: CircuitBreaker | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.breaker = breaker or CircuitBreaker(0, 0)
        base = self.connection_class
        self.connection_class = type(
            f"Breaker{base.__name__}", (_BreakerConnection, base), {"breaker": self.breaker}
        )

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.breaker.before_call()
        return super().get_connection(*args, **kwargs)
