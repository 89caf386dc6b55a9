"""Backup while the broker runs, restore into a new data directory, serve it there (issue 16, item 4):
the same people keep the same pairwise ids, tokens issued before the backup still work, and the
ledger verifies. Real processes throughout (``broker demo``, ``broker backup``, ``broker restore``,
``broker serve``, ``broker ledger verify``)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import requests

from broker.migrations import SCHEMA_VERSION
from tests.support.broker_process import Broker
from tests.support.environment import ROOT
from tests.support.environment import broker_cli as cli
from tests.support.journey import org_token, person_tokens
from tests.support.redis_servers import server_binary

pytestmark = pytest.mark.slow


def test_a_backup_taken_while_serving_restores_the_same_people_tokens_and_ledger(
    tmp_path: Path, brokers: list[Broker]
) -> None:
    creds_file = tmp_path / "creds.json"
    source = Broker(tmp_path)
    source.args = ("demo", "--port", str(source.port), "--credentials-out", str(creds_file))
    del source.env["BROKER_ISSUER"]
    brokers.append(source.start())
    creds = json.loads(creds_file.read_text())
    bob = person_tokens(source.url, creds, "bob")
    alice = person_tokens(source.url, creds, "alice")
    org_access = org_token(source.url, creds, "acme")

    archive = tmp_path / "data" / "backup.tar.gz"  # kept in the data directory: never backed up again
    (tmp_path / "data" / "older-backup.tar.gz").write_bytes(b"an earlier archive")
    made = cli(tmp_path, "backup", str(archive))  # the demo still runs
    assert made.returncode == 0, made.stderr
    assert "backup written" in made.stdout
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert not [name for name in names if name.endswith(".tar.gz")]
    assert {
        "manifest.json",
        "redis/primary-0.rdb",
        "files/dev-secrets.json",
        "files/signing-keys.json",
    } <= names
    assert manifest["broker_version"] == "0.2.0" and manifest["schema_version"] == SCHEMA_VERSION
    assert set(manifest["members"]) == names - {"manifest.json"}
    assert requests.get(f"{source.url}/readyz", timeout=10).status_code == 200  # never stopped

    # Written after the backup: not in it.
    carol = person_tokens(source.url, creds, "carol")
    assert source.stop() == 0

    # A non-empty directory is refused, and nothing is written there.
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    refused = cli(tmp_path, "restore", str(archive), "--data-dir", str(occupied))
    assert refused.returncode == 2
    assert f"--data-dir {occupied} is not empty" in refused.stderr
    assert sorted(p.name for p in occupied.iterdir()) == ["keep.txt"]

    elsewhere = tmp_path / "elsewhere"
    restored = cli(tmp_path, "restore", str(archive), "--data-dir", str(elsewhere / "data"))
    assert restored.returncode == 0, restored.stderr
    assert "restored into" in restored.stdout

    verified = cli(elsewhere, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    target = Broker(elsewhere)
    brokers.append(target.start())
    assert target.port != source.port
    for person, username in ((bob, "bob"), (alice, "alice")):
        # the token issued before the backup still works, and names the same pairwise id
        me = requests.get(
            f"{target.url}/v1/me", headers={"Authorization": f"Bearer {person['access_token']}"}, timeout=10
        )
        assert me.status_code == 200, me.text
        assert me.json()["user_id"] == person["sub"]
        # signing in again, on the restored broker, gives the same pairwise id
        assert person_tokens(target.url, creds, username)["sub"] == person["sub"]
    members = f"{target.url}/v1/orgs/{creds['orgs']['acme']['id']}/members"
    assert (
        requests.get(members, headers={"Authorization": f"Bearer {org_access}"}, timeout=10).status_code
        == 200
    )
    # carol's token was issued after the backup: the restored broker never saw it
    late = requests.get(
        f"{target.url}/v1/me", headers={"Authorization": f"Bearer {carol['access_token']}"}, timeout=10
    )
    assert late.status_code == 401
    assert target.stop() == 0
    again = cli(elsewhere, "ledger", "verify")
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_damaged_backup_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(b"not a backup")
    result = cli(tmp_path, "restore", str(archive), "--data-dir", str(tmp_path / "new"))
    assert result.returncode == 2
    assert "not a readable broker backup" in result.stderr
    assert not (tmp_path / "new").exists()


def _value(client: Any, key: bytes) -> Any:
    """A key's value, whatever its type (DUMP payloads are not canonical: a set's order may differ)."""
    kind = client.type(key).decode()
    read = {
        "string": lambda: client.get(key),
        "hash": lambda: client.hgetall(key),
        "set": lambda: client.smembers(key),
        "zset": lambda: client.zrange(key, 0, -1, withscores=True),
        "list": lambda: client.lrange(key, 0, -1),
        "stream": lambda: client.xrange(key),
    }[kind]
    return kind, read()


def test_every_primary_is_backed_up_and_restored_key_for_key(
    tmp_path: Path, store: Any, redis_server: Any
) -> None:
    """An external Redis, or a 3-primary cluster: one snapshot per primary, and the restored store
    holds the same keys with the same values and expiry."""
    import redis
    from redis.cluster import RedisCluster

    from broker.migrations import require_current
    from broker.ops.backup import _loaded, copy_keys
    from broker.storage.embedded import EmbeddedRedis

    fixture = ROOT / "tests" / "fixtures" / "release-0.1.0" / "dump.rdb"
    raw: Any = (
        RedisCluster.from_url(redis_server.url) if store.cluster else redis.Redis.from_url(redis_server.url)
    )
    with _loaded(fixture) as source:
        copy_keys(source, raw, lambda _m: None)
    raw.set("b:ttl-check", "x", px=3_600_000)
    require_current(store)
    before = {key: (_value(raw, key), raw.pttl(key)) for key in raw.scan_iter(count=1000)}
    raw.close()

    archive = tmp_path / "cluster.tar.gz"
    made = cli(tmp_path, "backup", str(archive), BROKER_REDIS_URL=redis_server.url)
    assert made.returncode == 0, made.stderr
    with tarfile.open(archive) as tar:
        snapshots = [n for n in tar.getnames() if n.startswith("redis/")]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert len(snapshots) == (3 if store.cluster else 1)
    assert manifest["redis"]["mode"] == ("cluster" if store.cluster else "single")

    new = tmp_path / "new"
    restored = cli(new, "restore", str(archive), "--data-dir", str(new / "data"))
    assert restored.returncode == 0, restored.stderr
    assert f"{len(before)} keys" in restored.stdout
    embedded = EmbeddedRedis(new / "data", server_binary())
    client = redis.Redis.from_url(embedded.start())
    try:
        after = {key: (_value(client, key), client.pttl(key)) for key in client.scan_iter(count=1000)}
    finally:
        client.close()
        embedded.stop()
    assert set(after) == set(before)
    for key, (value, pttl) in before.items():
        assert after[key][0] == value, key
        assert (after[key][1] > 0) == (pttl > 0), key
        assert after[key][1] <= pttl + 5000, key  # the expiry is kept, not restarted

    # Into the (emptied) external Redis or cluster itself, which BROKER_REDIS_URL names
    store.redis.flushdb()
    into = cli(tmp_path / "x", "restore", str(archive), "--data-dir", str(tmp_path / "x" / "data"),
               BROKER_REDIS_URL=redis_server.url)  # fmt: skip
    assert into.returncode == 0, into.stderr
    raw = RedisCluster.from_url(redis_server.url) if store.cluster else redis.Redis.from_url(redis_server.url)
    try:
        back = {key: (_value(raw, key), raw.pttl(key) > 0) for key in raw.scan_iter(count=1000)}
    finally:
        raw.close()
    assert back == {key: (value, pttl > 0) for key, (value, pttl) in before.items()}
    # and never into one that holds data
    twice = cli(tmp_path / "y", "restore", str(archive), "--data-dir", str(tmp_path / "y" / "data"),
                BROKER_REDIS_URL=redis_server.url)  # fmt: skip
    assert twice.returncode == 2
    assert "the target Redis (BROKER_REDIS_URL) is not empty" in twice.stderr
    assert not (tmp_path / "y" / "data").exists()  # refused before anything was written


def test_in_production_the_secrets_and_the_keys_file_outside_the_data_dir_are_backed_up(
    tmp_path: Path,
) -> None:
    """The secrets come from the environment and the keys file lives elsewhere: both are state."""
    keys_file = tmp_path / "secrets" / "signing-keys.json"
    keys_file.parent.mkdir()
    env = {
        "BROKER_ENV": "production",
        "BROKER_SECRET_KEY": "s" * 40,
        "BROKER_TOKEN_HASH_KEY": "t" * 40,
        "BROKER_PAIRWISE_KEY": "p" * 40,
        "BROKER_PLATFORM_API_KEY": "a" * 40,
        "BROKER_SIGNING_KEYS_FILE": str(keys_file),
    }
    assert cli(tmp_path, "keys", "init", **env).returncode == 0
    archive = tmp_path / "prod.tar.gz"
    made = cli(tmp_path, "backup", str(archive), **env)
    assert made.returncode == 0, made.stderr
    assert "p" * 40 not in made.stdout + made.stderr  # never printed
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"keys/signing-keys.json", "secrets/secrets.json"} <= names

    new = tmp_path / "new" / "data"
    restored = cli(tmp_path, "restore", str(archive), "--data-dir", str(new), **env)
    assert restored.returncode == 0, restored.stderr
    assert (new / "signing-keys.json").read_bytes() == keys_file.read_bytes()
    secrets = (new / "restored-secrets.env").read_text().splitlines()
    assert sorted(secrets) == sorted(
        f"{name}={value}" for name, value in env.items() if name.endswith("_KEY")
    )
    assert oct((new / "restored-secrets.env").stat().st_mode & 0o777) == "0o600"
    assert "restored-secrets.env" in restored.stdout and "p" * 40 not in restored.stdout

    # One changed byte in a member: refused by its checksum, before anything is written
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "keys/signing-keys.json":
                data = data.replace(b'"kid"', b'"kiD"', 1)
            dst.addfile(info, io.BytesIO(data))
    refused = cli(tmp_path, "restore", str(tampered), "--data-dir", str(tmp_path / "t"), **env)
    assert refused.returncode == 2
    assert "keys/signing-keys.json does not match its checksum: the archive is damaged" in refused.stderr
    assert not (tmp_path / "t").exists()


def test_a_sentinel_primary_is_backed_up_beside_its_replica(tmp_path: Path) -> None:
    """With Sentinel (and WAIT 1), the backup asks the sentinels for the primary and snapshots it;
    taking the snapshot as a replica would does not disturb the real replica."""
    from tests.support.replication import SERVICE, ReplicaSet

    replica_set = ReplicaSet(tmp_path / "redis", replicas=1, sentinels=1)
    try:
        replica_set.start()
        primary = replica_set.primary.client
        primary.set("b:schema", "1")
        for i in range(50):
            primary.hset(f"b:{{u:usr_{i}}}:user", mapping={"id": f"usr_{i}", "status": "active"})
        sentinels = ",".join(f"{host}:{port}" for host, port in replica_set.sentinel_addresses)
        env = {
            "BROKER_REDIS_SENTINELS": sentinels,
            "BROKER_REDIS_SENTINEL_SERVICE": SERVICE,
            "BROKER_REDIS_WAIT_REPLICAS": "1",
        }
        archive = tmp_path / "sentinel.tar.gz"
        made = cli(tmp_path, "backup", str(archive), **env)
        assert made.returncode == 0, made.stderr
        replica = replica_set.replicas[0].client
        assert replica.info("replication")["master_link_status"] == "up"
        assert primary.execute_command("WAIT", 1, 5000) == 1  # the replica still acknowledges
    finally:
        replica_set.stop()

    new = tmp_path / "new"
    restored = cli(new, "restore", str(archive), "--data-dir", str(new / "data"))
    assert restored.returncode == 0, restored.stderr
    assert "51 keys" in restored.stdout
