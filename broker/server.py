"""Running the service: configuration, the (embedded) Redis, and the production WSGI server.

gunicorn with gthread workers was chosen over granian (see README, "Why gunicorn"): the app is
preloaded once in the master, which also owns the embedded redis-server.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from broker.app import create_app
from broker.config import Settings
from broker.observability import logs, metrics
from broker.runtime import ServeError, open_store
from broker.storage.embedded import after_fork_in_child
from broker.storage.store import Store

log = logging.getLogger("broker.server")


ORPHAN_WAIT = 10.0  # seconds a restart waits for a killed broker's workers to let go of the port


def check_port_free(host: str, port: int, orphan_wait: float = ORPHAN_WAIT) -> None:
    """Fail with a clear message unless ``host:port`` can be bound.

    Right after a ``kill -9`` of a broker, its workers may still hold the listening socket for a
    moment (they die by ``PR_SET_PDEATHSIG``); while every holder is such an orphaned broker
    worker, wait for them (at most ``orphan_wait`` seconds) instead of refusing. SO_REUSEPORT is
    not used: it would let two brokers share a port.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + orphan_wait
    waited = False
    unseen_since: float | None = None
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise ServeError(
                        f"BROKER_HOST/BROKER_PORT: cannot listen on {host}:{port} ({exc.strerror})"
                    ) from None
            else:
                return
        holders = _listening_pids(port)
        now = time.monotonic()
        # No visible holder: a process in the middle of exiting (its descriptors are gone, its
        # socket not yet), or one of another user. Give the first a moment, then refuse.
        if holders:
            unseen_since = None
            orphaned = all(map(_orphaned_broker, holders))
        else:
            unseen_since = now if unseen_since is None else unseen_since
            orphaned = now - unseen_since < 1.0
        if now >= deadline or not orphaned:
            raise ServeError(f"BROKER_PORT: {host}:{port} is already in use; choose another port")
        if not waited:
            log.warning(
                "port %s is still held by %s; waiting for it to be released",
                port,
                f"the workers {holders} of a stopped broker" if holders else "an exiting process",
            )
            waited = True
        time.sleep(0.05)


def _listening_pids(port: int) -> list[int]:
    """Processes (of this user; others are not visible) with a TCP socket listening on ``port``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in wanted for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
    return pids


def _orphaned_broker(pid: int) -> bool:
    """A ``broker serve``/``demo`` worker whose master is gone (its parent is no broker), or a
    process on its way out (the kernel drops its memory, hence its command line, before its files).
    """

    def argv(p: int) -> list[str]:
        try:
            raw = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            return []
        return [a for a in raw.decode(errors="replace").split("\0") if a]

    def is_broker(args: list[str]) -> bool:
        return any(os.path.basename(a) == "broker" or a.startswith("gunicorn: ") for a in args)

    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return True  # gone while we looked
    own = argv(pid)
    return not own or (is_broker(own) and not is_broker(argv(ppid)))


class _Gunicorn(BaseApplication):
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def _post_fork(server: Any, worker: Any) -> None:
    after_fork_in_child()


def _post_worker_init(worker: Any) -> None:
    """Each worker runs the ledger sequencer beside its request threads (one holds the lock), and,
    for ``broker demo``, the webhook delivery loop (per-app leases keep deliveries one at a time)."""
    from broker.ledger.sequencer import start_in_background

    app = worker.app.application
    store, settings = app.extensions["broker.store"], app.extensions["broker.settings"]
    start_in_background(store, app.extensions["broker.keyring"], settings)
    if app.extensions.get("broker.deliver_webhooks"):
        from broker.events.webhooks import Worker

        stop = threading.Event()
        thread = threading.Thread(
            target=Worker(store, settings).run, args=(stop,), name="webhooks", daemon=True
        )
        app.extensions["broker.webhooks_thread"] = (stop, thread)
        thread.start()


def _worker_exit(server: Any, worker: Any) -> None:
    """Stop the demo's webhook loop before the interpreter tears its thread pools down; the worker's
    live metric gauges stop counting (its counters stay in the totals)."""
    running = worker.app.application.extensions.get("broker.webhooks_thread")
    if running:
        stop, thread = running
        stop.set()
        thread.join(timeout=10)
    metrics.mark_process_dead(worker.pid)


def _metrics_listener(settings: Settings) -> Callable[[Any], None]:
    """gunicorn's ``when_ready`` (in the master, before the workers fork): with
    ``BROKER_METRICS_PORT``, serve ``/metrics`` of every worker on that separate, private port."""

    def when_ready(server: Any) -> None:
        if settings.metrics_port:
            metrics.serve(settings.metrics_port, settings.metrics_host)
            log.info("metrics on http://%s:%s/metrics", settings.metrics_host, settings.metrics_port)

    return when_ready


def run(
    settings: Settings,
    *,
    on_ready: Callable[[Store, Flask], None] | None = None,
    deliver_webhooks: bool = False,
) -> int:
    """Serve until SIGTERM/SIGINT; the embedded Redis is shut down cleanly afterwards.

    ``deliver_webhooks`` also runs the webhook delivery loop in every server worker (the demo's
    one-command set-up); production runs ``broker worker`` beside the server instead.
    """
    check_port_free(settings.host, settings.port)
    if settings.metrics_port:
        check_port_free(settings.metrics_host, settings.metrics_port)
    settings.warn_dev_defaults()
    # before the app exists and before any fork: every process writes its metrics to one directory
    metrics.enable_multiprocess(settings.data_dir / "metrics")
    try:
        return _serve(settings, on_ready, deliver_webhooks)
    finally:
        metrics.disable_multiprocess()


def _serve(
    settings: Settings, on_ready: Callable[[Store, Flask], None] | None, deliver_webhooks: bool
) -> int:
    with open_store(settings, server=True) as store:
        app = create_app(settings, store)
        app.extensions["broker.deliver_webhooks"] = deliver_webhooks
        if on_ready is not None:
            on_ready(store, app)
        options = {
            "bind": f"{settings.host}:{settings.port}",
            "workers": settings.workers,
            "worker_class": "gthread",
            "threads": settings.threads,
            "preload_app": True,
            "graceful_timeout": 10,
            "timeout": 30,
            # The app writes the access line itself (broker.web.shared.hooks: the URL rule, never the
            # raw path, whose query may carry a token); gunicorn's own would print the raw path.
            "accesslog": None,
            "errorlog": "-",
            "loglevel": settings.log_level.lower(),
            "logconfig_dict": logs.gunicorn_logconfig(settings.log_level, settings.log_format),
            "when_ready": _metrics_listener(settings),
            "proc_name": "broker",
            "limit_request_line": 8190,
            "control_socket_disable": True,  # else every broker shares ~/.gunicorn/gunicorn.ctl
            "post_fork": _post_fork,
            "post_worker_init": _post_worker_init,
            "worker_exit": _worker_exit,
        }
        try:
            _Gunicorn(app, options).run()
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0
