"""Secrets sealed at rest (issue 15 item 4): a copy of Redis (every key and value, DUMP payloads and
the append-only files on disk) holds no webhook secret in usable form, for secrets registered now,
rotated, and written in clear by the previous release then migrated. The sealing key is not there
either. Runs on one node and on a 3-master cluster."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from broker.apps import registry
from broker.config import ConfigError, Settings
from broker.core.keyring import Keyring
from broker.core.sealing import Sealer
from broker.events.webhook_secrets import seal_existing_webhook_secrets, sealer_for
from broker.events.webhooks import Worker
from broker.storage import keys
from tests.support.apps import org_payload
from tests.support.environment import ROOT, broker_env
from tests.support.factories import make_user
from tests.support.webhook_receiver import Receiver

LEGACY = "brk_whsec_" + "q" * 20 + "Zlegacy" + "w" * 16  # as the previous release issued them


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The receivers here are on loopback: allow it, as development does (BROKER_WEBHOOK_ALLOW_PRIVATE)."""
    return replace(settings, webhook_allow_private=True)


def _nodes(redis_server: Any) -> list[Any]:
    return list(getattr(redis_server, "nodes", [redis_server]))


def _wait_for_aof_rewrites(redis_server: Any) -> None:
    """Bounded poll until no node has an AOF rewrite running or scheduled."""
    clients = [redis.Redis(port=node.port) for node in _nodes(redis_server)]
    for _ in range(600):
        infos = [c.info("persistence") for c in clients]
        if all(not i["aof_rewrite_in_progress"] and not i["aof_rewrite_scheduled"] for i in infos):
            assert all(i["aof_last_bgrewrite_status"] == "ok" for i in infos)
            return
        time.sleep(0.05)
    raise AssertionError("an AOF rewrite did not finish")


def _redis_copy(redis_server: Any) -> bytes:
    """Everything an attacker with a copy of Redis has: each key, DUMP of each, every value read
    back by type, and every file in the servers' data directories (AOF, RDB preamble)."""
    parts: list[bytes] = []
    for node in _nodes(redis_server):
        raw = redis.Redis(port=node.port)
        for key in raw.scan_iter(count=1000):
            parts.append(key)
            parts.append(raw.dump(key) or b"")
            kind = raw.type(key)
            if kind == b"hash":
                parts.extend(x for kv in raw.hgetall(key).items() for x in kv)
            elif kind == b"string":
                parts.append(raw.get(key) or b"")
            elif kind == b"set":
                parts.extend(raw.smembers(key))
            elif kind == b"zset":
                parts.extend(raw.zrange(key, 0, -1))
            elif kind == b"list":
                parts.extend(raw.lrange(key, 0, -1))
            elif kind == b"stream":
                parts.extend(x for _id, fields in raw.xrange(key) for kv in fields.items() for x in kv)
    for path in sorted(Path(redis_server.directory).rglob("*")):
        if path.is_file() and not path.name.endswith(".log"):
            parts.append(path.read_bytes())
    return b"\n".join(parts)


def _usable_forms(secret: str) -> list[bytes]:
    """Every form a leaked secret could be used in: as issued, its key bytes, base64 and hex."""
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    return [
        secret.encode(),
        key,
        base64.b64encode(key),
        base64.urlsafe_b64encode(key).rstrip(b"="),
        key.hex().encode(),
        b"whsec_" + base64.b64encode(key),
    ]


def _sealing_key_forms(settings: Settings) -> list[bytes]:
    entries = json.loads(Path(settings.sealing_keys_file).read_text())["keys"]
    out = []
    for entry in entries:
        k = base64.urlsafe_b64decode(entry["k"] + "=" * (-len(entry["k"]) % 4))
        out += [entry["k"].encode(), k, base64.b64encode(k), k.hex().encode()]
    return out


def test_a_copy_of_redis_holds_no_usable_webhook_secret(
    client: Any, store: Any, settings: Settings, redis_server: Any
) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    rx = Receiver()
    try:
        # Two apps registered now over the platform API; one rotates (both secrets then sign).
        issued: list[str] = []
        client_ids = []
        for _ in range(2):
            body = client.post(
                "/internal/v1/apps", json=org_payload(make_user(store), webhook_url=rx.url), headers=auth
            ).get_json()
            client_ids.append(body["client_id"])
            issued.append(body["webhook_secret"])
        rotated = client.post(f"/internal/v1/apps/{client_ids[0]}/webhook-secret", headers=auth).get_json()
        issued.append(rotated["webhook_secret"])

        # A third app as the previous release left it: its secret in clear in the app hash.
        legacy_app = client.post(
            "/internal/v1/apps", json=org_payload(make_user(store), webhook_url=rx.url), headers=auth
        ).get_json()["client_id"]
        store.redis.hset(keys.app(legacy_app), "webhook_secret", LEGACY)
        store.redis.hdel(keys.app(legacy_app), "webhook_secret_previous")
        before = _redis_copy(redis_server)
        assert LEGACY.encode() in before  # the search finds a clear secret when there is one

        sealer = sealer_for(settings)
        assert seal_existing_webhook_secrets(store, sealer) == 1
        assert seal_existing_webhook_secrets(store, sealer) == 0  # idempotent
        _wait_for_aof_rewrites(redis_server)

        # Every secret still signs: deliveries verify (the worker opens the sealed values).
        for cid in (*client_ids, legacy_app):
            assert client.post(f"/internal/v1/apps/{cid}/suspend", headers=auth).status_code == 200
        worker = Worker(store, settings)
        assert sorted(worker.run_once()) == ["delivered"] * 3
        worker.close()
        assert len(rx.wait_for(3)) == 3

        copy = _redis_copy(redis_server)
        assert client_ids[0].encode() in copy  # the copy is real
        for secret in [*issued, LEGACY]:
            for form in _usable_forms(secret):
                assert form not in copy, f"a webhook secret is in Redis ({form[:12]!r}...)"
        for form in _sealing_key_forms(settings):
            assert form not in copy, "the sealing key is in Redis"
    finally:
        rx.stop()


def test_a_sealed_value_moved_to_another_app_does_not_open_and_nothing_is_sent_unsigned(
    client: Any, store: Any, settings: Settings, tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    rx = Receiver()
    try:
        a, b = (
            client.post(
                "/internal/v1/apps", json=org_payload(make_user(store), webhook_url=rx.url), headers=auth
            ).get_json()["client_id"]
            for _ in range(2)
        )
        # An attacker with write access copies app a's sealed secret into app b: it does not open.
        store.redis.hset(keys.app(b), "webhook_secret", store.redis.hget(keys.app(a), "webhook_secret"))
        assert client.post(f"/internal/v1/apps/{b}/suspend", headers=auth).status_code == 200
        # A worker with other sealing keys (the wrong file) cannot open a's secret either.
        assert client.post(f"/internal/v1/apps/{a}/suspend", headers=auth).status_code == 200
        worker = Worker(store, settings, sealer=Sealer(tmp_path / "other-sealing-keys.json"))
        assert worker.run_once() == ["undeliverable", "undeliverable"]
        worker.close()
        worker = Worker(store, settings)
        outcomes = {cid: worker.deliver_next(cid) for cid in (a, b)}
        worker.close()
        assert outcomes == {a: "delivered", b: "undeliverable"}
        assert len(rx.requests) == 1  # nothing unsigned, nothing signed with the wrong key
        status = client.get(f"/internal/v1/apps/{b}", headers=auth)
        assert status.status_code == 200
        assert "webhook_secret" not in status.get_json()
    finally:
        rx.stop()


def run_broker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "broker", *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_rotate_sealing_reseals_every_secret_and_forgets_the_old_key(
    client: Any, store: Any, settings: Settings, redis_server: Any, tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    apps: dict[str, str] = {}
    for _ in range(2):
        body = client.post("/internal/v1/apps", json=org_payload(make_user(store)), headers=auth).get_json()
        apps[body["client_id"]] = body["webhook_secret"]
    first = next(iter(apps))
    apps[first] = client.post(f"/internal/v1/apps/{first}/webhook-secret", headers=auth).get_json()[
        "webhook_secret"
    ]
    sealer = sealer_for(settings)
    old_kid = sealer.current_kid

    done = run_broker(
        broker_env(tmp_path, BROKER_REDIS_URL=redis_server.url), "keys", "rotate-sealing", "--forget-old"
    )
    assert done.returncode == 0, done.stderr
    new_kid = json.loads(settings.sealing_keys_file.read_text())["keys"][0]["kid"]
    assert new_kid != old_kid and sealer.kids() == [new_kid]  # the old key is gone from the file
    assert f"new sealing key {new_kid}" in done.stdout and "re-sealed 3 stored secret(s)" in done.stdout
    assert "forgot 1 older sealing key(s)" in done.stdout
    for cid, secret in apps.items():
        stored = store.redis.hmget(keys.app(cid), ["webhook_secret", "webhook_secret_previous"])
        assert all(v is None or v == "" or v.startswith(f"sealed:v1:{new_kid}:") for v in stored)
        assert registry.webhook_secret(store, settings, cid) == secret  # a running process follows
    assert settings.sealing_keys_file.stat().st_mode & 0o777 == 0o600


def test_keys_init_creates_the_sealing_keys_file_that_production_requires(tmp_path: Path) -> None:
    """An upgrade in production: the signing keys file exists (previous release), the sealing keys
    file does not: the server refuses to start and names the fix; ``broker keys init`` makes it."""
    signing = tmp_path / "keys" / "signing-keys.json"
    env = broker_env(
        tmp_path,
        BROKER_ENV="production",
        BROKER_SIGNING_KEYS_FILE=str(signing),
        BROKER_SECRET_KEY="s" * 32,
        BROKER_TOKEN_HASH_KEY="t" * 32,
        BROKER_PAIRWISE_KEY="p" * 32,
        BROKER_PLATFORM_API_KEY="k" * 32,
    )
    Keyring(signing, create=True)
    kept = signing.read_text()
    with pytest.raises(ConfigError, match=r"BROKER_SEALING_KEYS_FILE: file not found: .*broker keys init"):
        Settings.from_env(env)
    done = run_broker(env, "keys", "init")
    assert done.returncode == 0, done.stderr
    sealing = signing.with_name("sealing-keys.json")
    assert f"created the sealing keys file {sealing}: sk_" in done.stdout
    assert signing.read_text() == kept and sealing.stat().st_mode & 0o777 == 0o600
    assert Settings.from_env(env).sealing_keys_file == sealing
    again = run_broker(env, "keys", "init")
    assert again.returncode == 0 and f"kept the existing sealing keys file {sealing}" in again.stdout


def test_sealing_the_previous_releases_secrets_is_idempotent_when_run_twice_at_once(
    store: Any, settings: Settings
) -> None:
    """Two ``broker migrate`` runs at once (two hosts of a cluster deployment) seal each clear secret
    exactly once, and every app still gets its own secret back."""
    legacy = {f"app_{i:016x}": f"brk_whsec_{i:02d}" + "x" * 41 for i in range(40)}
    for cid, secret in legacy.items():
        store.redis.hset(
            keys.app(cid), mapping={"client_id": cid, "status": "active", "webhook_secret": secret}
        )
        store.redis.zadd(keys.apps_all(), {cid: 1})
    assert all(registry.webhook_secret(store, settings, cid) == s for cid, s in legacy.items())  # read clear
    sealer = sealer_for(settings)
    counts: list[int] = []
    runs = [
        threading.Thread(target=lambda: counts.append(seal_existing_webhook_secrets(store, sealer)))
        for _ in range(2)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
    assert sorted(counts)[-1] >= 1 and sum(counts) == len(legacy)
    assert seal_existing_webhook_secrets(store, sealer) == 0
    for cid, secret in legacy.items():
        assert store.redis.hget(keys.app(cid), "webhook_secret").startswith("sealed:v1:")
        assert registry.webhook_secret(store, settings, cid) == secret
