"""``broker worker``: delivers the lifecycle-event outbox to each app's webhook URL;
``broker webhooks dead list|replay|purge``: an app's failed deliveries, for the operator.

Run it next to ``broker serve``. The embedded Redis belongs to the ``serve`` process (one owner per
data directory); the worker finds it from the data directory and uses it (or ``BROKER_REDIS_URL``).
"""

from __future__ import annotations

import logging
import signal
import sys
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
                swept = delivery.sweep()
                delivery.close()
                print(
                    f"webhook pass done: {len(outcomes)} app(s) handled, "
                    f"{swept['dead_trimmed']} dead letter(s) past retention deleted, "
                    f"{swept['overflowed']} overflowing event(s) dead-lettered"
                )
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


# --- broker webhooks dead list|replay|purge ----------------------------------------------------------


@click.group("webhooks", help="operate on webhook deliveries")
def webhooks() -> None:
    pass


@webhooks.group("dead", help="an app's failed deliveries (dead letters): list, replay, purge")
def dead() -> None:
    pass


_APP = click.option("--app", "client_id", required=True, help="the app's client id")
_IDS = click.option("--id", "event_ids", multiple=True, help="an event id (repeat for several)")
_ALL = click.option("--all", "every", is_flag=True, help="every dead letter of the app")


def _selection(event_ids: tuple[str, ...], every: bool) -> list[str] | None:
    if every == bool(event_ids):
        raise click.UsageError("name the dead letters: --id EVENT_ID (repeatable) or --all, not both")
    return None if every else list(event_ids)


def _require_app(store: Any, client_id: str) -> None:
    from broker.storage import keys

    if not store.redis.exists(keys.app(client_id)):
        raise CommandError(f"no app with client id {client_id!r}")


@dead.command("list", help="the app's dead letters, newest first")
@_APP
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def dead_list(client_id: str, limit: int, as_json: bool) -> int:
    import json
    import time

    from broker.events import webhooks as delivery
    from broker.runtime import load_settings, open_store

    settings = load_settings()
    with open_store(settings) as store:
        _require_app(store, client_id)
        letters = delivery.dead_letters(store, client_id, limit)
        total = delivery.dead_count(store, client_id)
    for doc in letters:
        if as_json:
            print(json.dumps(doc, separators=(",", ":"), ensure_ascii=False))
            continue
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(doc.get("dead_at") or 0)))
        event = doc["event"]
        print(
            f"{event.get('id')}\t{event.get('type', '-')}\t{when}\tattempts={doc.get('attempts')}"
            f"\tstatus={doc.get('last_status') or '-'}\terror={doc.get('last_error') or '-'}"
        )
    if not as_json:
        print(f"{len(letters)} of {total} dead letter(s) of {client_id}", file=sys.stderr)
    return 0


@dead.command("replay", help="queue dead letters for delivery again (a new attempt series, same event ids)")
@_APP
@_IDS
@_ALL
def dead_replay(client_id: str, event_ids: tuple[str, ...], every: bool) -> int:
    return _change("replay", client_id, _selection(event_ids, every))


@dead.command("purge", help="delete dead letters for good")
@_APP
@_IDS
@_ALL
def dead_purge(client_id: str, event_ids: tuple[str, ...], every: bool) -> int:
    return _change("purge", client_id, _selection(event_ids, every))


def _change(action: str, client_id: str, event_ids: list[str] | None) -> int:
    from broker.errors import BrokerError
    from broker.events import webhooks as delivery
    from broker.runtime import configure_logging, load_settings, open_store

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    with open_store(settings) as store:
        _require_app(store, client_id)
        change = delivery.replay if action == "replay" else delivery.purge
        try:
            ids = change(store, client_id, event_ids, by="cli")
        except BrokerError as exc:
            raise CommandError(f"{exc.detail}; nothing was changed") from None
    done = "queued for delivery" if action == "replay" else "deleted"
    print(f"{len(ids)} dead letter(s) of {client_id} {done}" + (f": {' '.join(ids)}" if ids else ""))
    return 0
