"""``broker backup`` and ``broker restore``: everything that is state, in one archive.

What is state
    * the Redis data, every primary of a cluster;
    * the key material outside Redis: the pairwise key (lose it and every pairwise id changes), the
      token hash key (lose it and every token, code and client secret stops matching), the session
      key, the platform API key (``dev-secrets.json`` in development, the environment in
      production), and the signing keys file (id_tokens, receipts and checkpoints);
    * the other files of the data directory (e.g. the demo's credentials).

How the Redis data is captured
    With ``SYNC``, the command a replica uses to join its primary: the primary forks and streams one
    RDB snapshot of a single instant, taken while it keeps serving. So the backup is consistent (no
    write half in, half out; the journals, grants and ledger agree) and the broker need not stop. It
    works the same for the embedded store, an external Redis and each primary of a cluster, needs no
    access to the server's files, and the bytes are the engine's own format, checked by it when
    loaded. (``DUMP`` of every key while writes go on would not be one instant; ``BGSAVE`` needs
    the server's disk.) On a cluster, each primary's snapshot is its own instant: every key of one
    flow is in one hash slot (DESIGN invariant 6), so each flow is consistent.

How it is restored
    The snapshot is loaded by a private, temporary redis-server (the embedded binary), and every key
    is copied with ``DUMP``/``RESTORE`` (absolute expiry kept) into the target: the embedded store of
    the new data directory, or the empty Redis (or cluster) ``BROKER_REDIS_URL`` names.

Archive (tar.gz, mode 0600): ``manifest.json`` (format, broker version, data-schema version, created,
engine, sha256 and size of every member), ``redis/primary-<n>.rdb``, ``files/<name>`` (the data
directory's files), ``keys/signing-keys.json`` when the keys file lives elsewhere, and
``secrets/secrets.json`` when the secrets come from the environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from broker import __version__
from broker.config import Settings
from broker.errors import CommandError
from broker.migrations import SCHEMA_VERSION, read_version
from broker.ops.engine import server_version
from broker.storage.embedded import EmbeddedRedis, redis_server_binary
from broker.storage.store import Store

FORMAT = 1
SECRET_NAMES = (
    "BROKER_SECRET_KEY",
    "BROKER_TOKEN_HASH_KEY",
    "BROKER_PAIRWISE_KEY",
    "BROKER_PLATFORM_API_KEY",
)
_SKIP = {"broker.lock"}  # data-directory files that are not state
_NOT_STATE = (".tmp", ".tar.gz", ".tgz")  # half-written files, and backups kept there (never nested)
_SYNC_TIMEOUT = 600.0
_BATCH = 500

Progress = Callable[[str], None]


class BackupError(CommandError):
    """A backup or restore cannot go on; the message says why."""


# -- capture --------------------------------------------------------------------------------------


def _primaries(store: Store) -> list[redis.Redis]:
    """One client per primary: the cluster's primaries, or the one node (Sentinel's current primary)."""
    if isinstance(store.redis, RedisCluster):
        return [store.redis.get_redis_connection(node) for node in store.redis.get_primaries()]
    return [store.redis]


class _Counted(io.RawIOBase):
    """Exactly ``length`` bytes of ``source``, hashed on the way (the snapshot goes from the socket
    into the archive without being held in memory)."""

    def __init__(self, source: Any, length: int) -> None:
        self.source, self.left = source, length
        self.sha256 = hashlib.sha256()
        self.head = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.source.read(size) if size else b""
        self.left -= len(data)
        self.sha256.update(data)
        if len(self.head) < 5:
            self.head += data[: 5 - len(self.head)]
        return data


def sync_snapshot(client: redis.Redis, tar: tarfile.TarFile, name: str, manifest: dict[str, Any]) -> int:
    """One RDB snapshot of the node ``client`` talks to, streamed by ``SYNC`` (see the module doc)
    into ``tar`` as ``name``; returns its size.

    A connection of the client's own pool class (so its address, password, TLS and Sentinel lookup
    apply); after the handshake the reply is read from the socket as the replication protocol sends
    it: optional newlines while the primary forks, ``$<length>\r\n``, then ``length`` bytes.
    """
    pool = client.connection_pool
    conn: Any = pool.make_connection()
    try:
        conn.connect()
        conn.send_command("SYNC")
        sock: socket.socket = conn._sock
        sock.settimeout(_SYNC_TIMEOUT)
        with sock.makefile("rb") as reader:
            while True:
                line = reader.readline()
                if not line:
                    raise BackupError("the Redis server closed the connection before sending its snapshot")
                if line.strip():
                    break  # else a keep-alive newline while the snapshot is being written
            if line.startswith(b"-"):
                raise BackupError(
                    f"the Redis server refused SYNC ({line[1:].decode(errors='replace').strip()}); the "
                    "backup user needs the SYNC command (a replica's right)"
                )
            if not line.startswith(b"$") or line.startswith(b"$EOF:"):
                raise BackupError(f"unexpected answer to SYNC: {line[:40]!r}")
            length = int(line[1:].strip())
            body = _Counted(reader, length)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = length, 0o600, int(time.time())
            try:
                tar.addfile(info, body)
            except OSError as exc:  # tarfile: "unexpected end of data"
                raise BackupError(f"the snapshot sent by the Redis server is truncated ({exc})") from None
            if body.head != b"REDIS":
                raise BackupError("the snapshot sent by the Redis server is not an RDB file")
        manifest["members"][name] = {"sha256": body.sha256.hexdigest(), "size": length}
        return length
    finally:
        conn.disconnect()


def _data_files(settings: Settings) -> Iterator[Path]:
    """The regular files at the top of the data directory that are state (not Redis's own, not locks)."""
    if not settings.data_dir.is_dir():
        return
    for path in sorted(settings.data_dir.iterdir()):
        name = path.name
        if not path.is_file() or name in _SKIP or name.startswith(".") or name.endswith(_NOT_STATE):
            continue
        yield path


def _add(tar: tarfile.TarFile, name: str, data: bytes, manifest: dict[str, Any]) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
    tar.addfile(info, io.BytesIO(data))
    manifest["members"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def backup(store: Store, settings: Settings, target: Path, progress: Progress = print) -> dict[str, Any]:
    """Write the archive to ``target`` (atomically, mode 0600); returns its manifest."""
    version = read_version(store)
    primaries = _primaries(store)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "broker_version": __version__,
        "schema_version": version if version is not None else 0,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "engine": server_version(primaries[0]),
        "redis": {"mode": "cluster" if len(primaries) > 1 or store.cluster else "single"},
        "members": {},
    }
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for index, client in enumerate(primaries):
                progress(f"redis: snapshot of primary {index + 1}/{len(primaries)} (SYNC) ...")
                size = sync_snapshot(client, tar, f"redis/primary-{index}.rdb", manifest)
                progress(f"redis: primary {index + 1}/{len(primaries)}: {size} bytes")
            # After the snapshot: key files only ever gain keys (a rotated key stays), so keys that
            # signed anything in the snapshot are in the file read now.
            names = []
            for path in _data_files(settings):
                _add(tar, f"files/{path.name}", path.read_bytes(), manifest)
                names.append(path.name)
            keys_file = settings.signing_keys_file
            if not keys_file.is_file():
                # No broker has signed anything with these settings yet (it creates the file at its
                # first start); said, so that a wrong BROKER_SIGNING_KEYS_FILE does not go unnoticed.
                progress(f"WARNING: no signing keys file at {keys_file}: none backed up")
            elif keys_file.parent.resolve() != settings.data_dir.resolve() or keys_file.name not in names:
                _add(tar, "keys/signing-keys.json", keys_file.read_bytes(), manifest)
                names.append(f"{keys_file} (signing keys)")
            from_env = [name for name in SECRET_NAMES if name not in settings.dev_defaults]
            if from_env:
                values = {
                    "BROKER_SECRET_KEY": settings.secret_key,
                    "BROKER_TOKEN_HASH_KEY": settings.token_hash_key,
                    "BROKER_PAIRWISE_KEY": settings.pairwise_key,
                    "BROKER_PLATFORM_API_KEY": settings.platform_api_key,
                }
                secrets = {name: values[name] for name in from_env}
                _add(tar, "secrets/secrets.json", json.dumps(secrets, indent=2).encode(), manifest)
                names.append(f"secrets from the environment ({', '.join(from_env)})")
            progress(f"files: {', '.join(names)}")
            body = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mode, info.mtime = len(body), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(body))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return manifest


# -- restore --------------------------------------------------------------------------------------


@dataclass
class Archive:
    manifest: dict[str, Any]
    members: dict[str, bytes]  # the small members (files, keys, secrets)
    snapshots: list[Path]  # the Redis snapshots, extracted to a work directory


def read_archive(path: Path, workdir: Path) -> Archive:
    """The archive's members, each checked against the manifest's checksum; the snapshots are
    extracted into ``workdir`` (never held in memory)."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    members: dict[str, bytes] = {}
    digests: dict[str, str] = {}
    snapshots: list[Path] = []
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                handle = tar.extractfile(info)
                assert handle is not None
                if info.name.startswith("redis/"):
                    target = workdir / f"snapshot-{len(snapshots)}.rdb"
                    hasher = hashlib.sha256()
                    with open(target, "wb") as out:
                        while chunk := handle.read(1 << 20):
                            hasher.update(chunk)
                            out.write(chunk)
                    snapshots.append(target)
                    digests[info.name] = hasher.hexdigest()
                else:
                    members[info.name] = handle.read()
                    digests[info.name] = hashlib.sha256(members[info.name]).hexdigest()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BackupError(f"{path}: not a readable broker backup ({exc})") from None
    try:
        manifest = json.loads(members.pop("manifest.json"))
        digests.pop("manifest.json")
    except (KeyError, ValueError):
        raise BackupError(f"{path}: no readable manifest.json: not a broker backup") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: backup format {manifest.get('format')!r}, this broker reads {FORMAT}")
    listed = manifest.get("members", {})
    if set(listed) != set(digests):
        raise BackupError(f"{path}: the members do not match the manifest: the archive is incomplete")
    for name, found in digests.items():
        if found != listed[name]["sha256"]:
            raise BackupError(f"{path}: {name} does not match its checksum: the archive is damaged")
    schema = int(manifest.get("schema_version", 0))
    if schema > SCHEMA_VERSION:
        raise BackupError(
            f"{path}: the data has schema version {schema}, newer than this broker reads "
            f"({SCHEMA_VERSION}): restore it with broker {manifest.get('broker_version')} or newer"
        )
    return Archive(manifest, members, snapshots)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def check_empty_data_dir(data_dir: Path) -> None:
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupError(
            f"--data-dir {data_dir} is not empty: restore only into a new or empty directory "
            "(nothing was changed)"
        )


def restore_files(archive: Archive, data_dir: Path) -> list[str]:
    """The data directory's files, the signing keys and (production) a secrets file; returns notes."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    notes = []
    for name, data in archive.members.items():
        if name.startswith("files/"):
            target = data_dir / Path(name).name
            _write_private(target, data)
    keys = archive.members.get("keys/signing-keys.json")
    if keys is not None:
        target = data_dir / "signing-keys.json"
        if not target.exists():
            _write_private(target, keys)
        notes.append(f"signing keys: {target} (set BROKER_SIGNING_KEYS_FILE to it)")
    secrets = archive.members.get("secrets/secrets.json")
    if secrets is not None:
        values = json.loads(secrets)
        env = "".join(f"{name}={value}\n" for name, value in values.items())
        target = data_dir / "restored-secrets.env"
        _write_private(target, env.encode())
        notes.append(
            f"secrets: {target} holds {', '.join(values)} as they were: give them to the broker's "
            "environment (the same values, or every pairwise id and credential changes), then delete it"
        )
    return notes


@contextlib.contextmanager
def _loaded(rdb: Path, binary: str = "") -> Iterator[redis.Redis]:
    """A private redis-server (the embedded engine: ``BROKER_REDIS_SERVER``, resolved, or the default)
    that has loaded the snapshot ``rdb``, for the block."""
    server = redis_server_binary(binary)
    tmp = Path(tempfile.mkdtemp(prefix="broker-restore-"))
    try:
        shutil.copyfile(rdb, tmp / "dump.rdb")
        sock = tmp / "r.sock"
        proc = subprocess.Popen(
            [
                server,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--dir",
                str(tmp),
                "--dbfilename",
                "dump.rdb",
                "--appendonly",
                "no",
                "--save",
                "",
                "--logfile",
                str(tmp / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=30)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    log = (tmp / "redis.log").read_text(errors="replace").splitlines()[-5:]
                    raise BackupError(
                        "the snapshot could not be loaded by " + server + ": " + " | ".join(log)
                    )
                with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError, OSError):
                    if client.ping():
                        break
                if time.monotonic() > deadline:
                    raise BackupError("the snapshot did not load within 60s")
                time.sleep(0.05)
            yield client
        finally:
            client.close()
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def copy_keys(source: redis.Redis, target: Any, progress: Progress) -> int:
    """Every key of ``source`` into ``target`` (DUMP/RESTORE, absolute expiry); returns the count."""
    copied = 0
    batch: list[bytes] = []

    def flush() -> None:
        nonlocal copied
        read = source.pipeline(transaction=False)
        for key in batch:
            read.dump(key)
            read.pttl(key)
        answers = read.execute()
        now_ms = int(time.time() * 1000)
        write = target.pipeline(transaction=False)
        for i, key in enumerate(batch):
            payload, pttl = answers[2 * i], answers[2 * i + 1]
            if payload is None:
                continue  # expired since the scan
            if pttl > 0:
                write.restore(key, now_ms + pttl, payload, absttl=True)
            else:
                write.restore(key, 0, payload)
            copied += 1
        write.execute()
        batch.clear()

    for key in source.scan_iter(count=1000):
        batch.append(key)
        if len(batch) >= _BATCH:
            flush()
            progress(f"redis: {copied} keys restored")
    if batch:
        flush()
    return copied


def _raw_target(url: str, cluster: bool) -> Any:
    """A client for the restore target that keeps values as bytes (DUMP payloads are binary)."""
    if cluster:
        return RedisCluster.from_url(url, socket_timeout=30)
    return redis.Redis.from_url(url, socket_timeout=30)


def _is_empty(client: Any) -> bool:
    return next(iter(client.scan_iter(count=100)), None) is None


def check_target(settings: Settings) -> None:
    """Before anything is written: an external target (``BROKER_REDIS_URL``) answers and is empty."""
    if settings.redis_sentinels:
        raise BackupError(
            "restore into a Sentinel deployment: set BROKER_REDIS_URL to the primary's address "
            "for the restore"
        )
    if not settings.redis_url:
        return  # the new data directory's embedded store: empty by construction
    probe = Store.from_url(
        settings.redis_url, cluster=settings.redis_cluster, timeout_ms=settings.redis_timeout_ms
    )
    try:
        if not probe.ping():
            raise BackupError("BROKER_REDIS_URL: no Redis answered; nothing was changed")
        target = _raw_target(settings.redis_url, probe.cluster)
        try:
            if not _is_empty(target):
                raise BackupError(
                    "the target Redis (BROKER_REDIS_URL) is not empty: restore only into an empty one "
                    "(nothing was changed)"
                )
        finally:
            target.close()
    finally:
        probe.close()


def restore_redis(archive: Archive, settings: Settings, progress: Progress = print) -> int:
    """Load every snapshot of the archive into the settings' Redis (which must be empty)."""
    check_target(settings)
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if not url:
        embedded = EmbeddedRedis(settings.data_dir, settings.redis_server)
        url = embedded.start()
    try:
        probe = Store.from_url(url, cluster=settings.redis_cluster, timeout_ms=settings.redis_timeout_ms)
        cluster = probe.cluster
        probe.close()
        target = _raw_target(url, cluster)
        try:
            if not _is_empty(target):
                raise BackupError(
                    "the target Redis is not empty: restore only into an empty one (nothing was changed)"
                )
            total = 0
            snapshots = archive.snapshots
            for index, snapshot in enumerate(snapshots, 1):
                progress(f"redis: loading snapshot {index}/{len(snapshots)} ...")
                with _loaded(snapshot, settings.redis_server) as source:
                    total += copy_keys(source, target, progress)
            progress(f"redis: {total} keys restored")
            return total
        finally:
            target.close()
    finally:
        if embedded is not None:
            embedded.stop()
