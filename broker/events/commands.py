"""``broker worker``: delivers the lifecycle-event outbox to each app's webhook URL.

Run it next to ``broker serve``. The embedded Redis belongs to the ``serve`` process (one owner per
data directory); the worker finds it from the data directory and uses it (or ``BROKER_REDIS_URL``).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click

from broker.errors import CommandError
from broker.observability.metrics import serve as serve_metrics_on
from broker.storage.embedded import EmbeddedRedisError

log = logging.getLogger("broker.worker")


def serve_metrics(port: int, host: str) -> None:
    try:
        serve_metrics_on(port, host)
    except OSError as exc:
        where = f"{host}:{port}"
        raise CommandError(f"BROKER_WORKER_METRICS_PORT: cannot listen on {where} ({exc.strerror})") from None
    log.info("metrics on http://%s:%s/metrics", host, port)


@click.command("worker", help="deliver lifecycle events to app webhooks (signed, retried)")
@click.option("--once", is_flag=True, help="one pass over every outbox, then exit")
def worker(once: bool) -> int:
    from broker.events.webhooks import Worker
    from broker.runtime import configure_logging, load_settings, open_store

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        with open_store(settings) as store:
            delivery = Worker(store, settings)
            if once:
                outcomes = delivery.run_once()
                delivery.close()
                print(f"webhook pass done: {len(outcomes)} app(s) handled")
                return 0
            stop = threading.Event()

            def _stop(signum: int, _frame: Any) -> None:
                log.info("webhook worker stopping (signal %s)", signum)
                stop.set()

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            from broker.core.keyring import Keyring
            from broker.ledger.sequencer import start_in_background

            start_in_background(
                store, Keyring(settings.signing_keys_file, create=not settings.production), settings, stop
            )
            if settings.worker_metrics_port:
                serve_metrics(settings.worker_metrics_port, settings.metrics_host)
            log.info("webhook worker started (poll every %s ms)", settings.webhook_poll_ms)
            delivery.run(stop)
            return 0
    except EmbeddedRedisError as exc:
        if settings.redis_url:
            raise
        raise CommandError(
            f"{exc}. The broker that owns the data directory did not answer on its Redis: check that "
            "it runs, or set BROKER_REDIS_URL to the server's Redis (shown above) and run it again"
        ) from None
