"""Running the service: configuration, the (embedded) Redis, and the production WSGI server.

The server is granian (WSGI interface, ``BROKER_WORKERS`` processes x ``BROKER_THREADS`` Python
threads), chosen by measurement over gunicorn gthread (README, "Why granian"). What gunicorn gave
the broker is kept, by hand where granian has no hook:

* the app is built once, in the master (the ``broker serve`` process), which also owns the embedded
  redis-server and the data-directory lock; workers are forked from it (multiprocessing's
  fork start method, set explicitly) and load nothing: granian calls :func:`_worker_loader` in each
  worker, which is gunicorn's ``post_fork`` + ``post_worker_init``;
* a worker dies with the master (``PR_SET_PDEATHSIG`` = SIGKILL, then a check that the master did
  not die before that was set), so a ``kill -9`` of the master leaves nothing running;
* :func:`_worker_main` wraps granian's own WSGI worker so that the worker's exit (SIGTERM from the
  master after the in-flight requests drained, or a crash) runs gunicorn's ``worker_exit``: the
  demo's webhook loop stops, the worker's live gauges stop counting;
* a worker that crashes is replaced (``respawn_failed_workers``), SIGHUP replaces every worker
  gracefully, SIGTERM/SIGINT stop the server and then the embedded Redis.

Each worker listens on its own socket with ``SO_REUSEPORT`` (granian on Linux): the kernel spreads
connections over the workers, where gunicorn's gthread workers each accepted what they could, so
that all connections often landed in one worker.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.mp import MPServer

from broker.app import create_app
from broker.config import Settings
from broker.observability import logs, metrics
from broker.runtime import ServeError, open_store
from broker.storage.embedded import after_fork_in_child
from broker.storage.store import Store

log = logging.getLogger("broker.server")


ORPHAN_WAIT = 10.0  # seconds a restart waits for a killed broker's workers to let go of the port
GRACEFUL_TIMEOUT = 15  # seconds a stopping worker has to finish its requests before SIGKILL


def check_port_free(host: str, port: int, orphan_wait: float = ORPHAN_WAIT) -> None:
    """Fail with a clear message unless ``host:port`` can be bound.

    Right after a ``kill -9`` of a broker, its workers may still hold the listening socket for a
    moment (they die by ``PR_SET_PDEATHSIG``); while every holder is such an orphaned broker
    worker, wait for them (at most ``orphan_wait`` seconds) instead of refusing.

    The probe binds *without* ``SO_REUSEPORT``: the server's workers listen with it (one socket
    each), and a probe with it would succeed beside a running broker, letting two share a port.
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
        # ``python -m broker serve`` or ``.../bin/broker serve`` (workers are forks: the same argv),
        # or the process titles granian sets when setproctitle is installed ("broker worker-1")
        return any(os.path.basename(a) == "broker" or a.startswith("broker worker-") for a in args)

    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return True  # gone while we looked
    own = argv(pid)
    return not own or (is_broker(own) and not is_broker(argv(ppid)))


def bind_address(host: str) -> str:
    """The IP address to listen on for ``BROKER_HOST`` (an address or a host name, as gunicorn
    took it; granian takes addresses only)."""
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise ServeError(f"BROKER_HOST: cannot resolve {host!r} ({exc})") from None
    return str(infos[0][4][0])


# -- in each worker -------------------------------------------------------------------------------

# The app a worker serves (set by its loader, read by its exit); None in the master.
_worker_app: Flask | None = None


def _worker_loader(app: Flask, master: int) -> Callable[[], Any]:
    """What granian calls in each freshly forked worker for its WSGI callable: gunicorn's
    ``post_fork`` and ``post_worker_init``, then the app the master built (nothing is imported or
    built again)."""

    def load() -> Any:
        global _worker_app
        after_fork_in_child()  # die with the master; drop its data-directory lock
        if os.getppid() != master:  # the master died before PR_SET_PDEATHSIG was in place
            os._exit(0)
        _worker_app = app
        _start_background_work(app)
        return without_process_environment(app)

    return load


def _start_background_work(app: Flask) -> None:
    """Each worker runs the ledger sequencer beside its request threads (one holds the lock), and,
    for ``broker demo``, the webhook delivery loop (per-app leases keep deliveries one at a time)."""
    from broker.ledger.sequencer import start_in_background

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


def _worker_main(*args: Any, **kwargs: Any) -> None:
    """A worker process: granian's own WSGI worker, then gunicorn's ``worker_exit``.

    granian's worker returns once SIGTERM (from the master) stopped it and its in-flight requests
    are answered; a worker that crashes raises through here. Either way, stop the demo's webhook
    loop before the process ends, and let the worker's live metric gauges stop counting (its
    counters stay in the totals).
    """
    try:
        MPServer._spawn_wsgi_worker(*args, **kwargs)
    finally:
        _worker_exit()


def _worker_exit() -> None:
    app = _worker_app
    running = app.extensions.get("broker.webhooks_thread") if app is not None else None
    if running:
        stop, thread = running
        stop.set()
        thread.join(timeout=10)
    metrics.mark_process_dead(os.getpid())


def without_process_environment(app: Callable[..., Any]) -> Callable[..., Any]:
    """``app`` with the server process's environment variables taken out of every WSGI environ.

    granian starts each request's environ from a copy of ``os.environ``: every ``BROKER_*``
    secret would sit in every request, and a variable such as ``HTTP_X_REQUEST_ID`` or
    ``HTTP_PROXY`` would pass for a header the client never sent. A key is dropped when it holds
    exactly the process's value (a request header with the very same name and value is the only
    thing dropped with it, and it could not be told apart).
    """
    inherited = dict(os.environ)
    names = frozenset(inherited)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        for name in names & environ.keys():
            if environ[name] == inherited[name]:
                del environ[name]
        return app(environ, start_response)

    return application


# -- the master -----------------------------------------------------------------------------------


class _Granian(MPServer):
    """granian's multi-process server; a SIGINT/SIGTERM of the master marks every worker as
    stopped by it at once, so that one that got the signal too (Ctrl-C reaches the whole process
    group) and exits on its own is not reported as a crash and replaced."""

    def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
        for worker in self.wrks:
            worker.interrupt_by_parent = True
        super().signal_handler_interrupt(*args, **kwargs)


def _not_the_thread_count_warning(record: logging.LogRecord) -> bool:
    """granian warns at every start when a worker may run more Python threads than 2 x CPUs + 1;
    ``BROKER_THREADS`` is that number on purpose (concurrent requests feed the AOF group commit)."""
    return not record.getMessage().startswith("Configuration allows spawning")


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
    address = bind_address(settings.host)
    check_port_free(address, settings.port)
    if settings.metrics_port:
        check_port_free(settings.metrics_host, settings.metrics_port)
    settings.warn_dev_defaults()
    # before the app exists and before any fork: every process writes its metrics to one directory
    metrics.enable_multiprocess(settings.data_dir / "metrics")
    try:
        return _serve(settings, address, on_ready, deliver_webhooks)
    finally:
        metrics.disable_multiprocess()


def _serve(
    settings: Settings,
    address: str,
    on_ready: Callable[[Store, Flask], None] | None,
    deliver_webhooks: bool,
) -> int:
    with open_store(settings, server=True) as store:
        app = create_app(settings, store)
        app.extensions["broker.deliver_webhooks"] = deliver_webhooks
        if on_ready is not None:
            on_ready(store, app)
        if settings.metrics_port:
            # in the master, before the workers fork: /metrics of every worker on a private port
            metrics.serve(settings.metrics_port, settings.metrics_host)
            log.info("metrics on http://%s:%s/metrics", settings.metrics_host, settings.metrics_port)
        # Workers must be forks of this process (the app is built, the Redis is ours); Python 3.14
        # makes "forkserver" the default, with which granian would spawn fresh interpreters.
        multiprocessing.set_start_method("fork", force=True)
        server = _Granian(
            "broker",  # a name only: the workers get the app from the loader below
            address=address,
            port=settings.port,
            interface=Interfaces.WSGI,
            websockets=False,
            workers=settings.workers,
            blocking_threads=settings.threads,
            respawn_failed_workers=True,
            workers_kill_timeout=GRACEFUL_TIMEOUT,
            # The app writes the access line itself (broker.web.shared.hooks: the URL rule, never
            # the raw path, whose query may carry a token); granian's would print the raw path.
            log_access=False,
            log_level=LogLevels(settings.log_level.lower()),
            log_dictconfig=logs.server_logconfig(settings.log_level, settings.log_format),
            # with setproctitle installed granian names its processes; make them say "broker"
            process_name="broker" if _granian_sets_titles() else None,
        )
        logging.getLogger("_granian").addFilter(_not_the_thread_count_warning)
        try:
            server.serve(
                spawn_target=_worker_main,
                target_loader=_worker_loader(app, os.getpid()),
                wrap_loader=False,
            )
        except SystemExit as exc:  # granian's exit with a code (a worker crash loop)
            return int(exc.code or 0)
    return 0


def _granian_sets_titles() -> bool:
    from granian._imports import setproctitle

    return setproctitle is not None
