"""Versioned data (issue 16, item 5): the data-schema version, ``broker migrate`` and the refusal to
serve data of another version. The upgrade test runs on data written by release 0.1.0 itself
(tests/fixtures/release-0.1.0, made by make_fixture.py from that release's code)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from broker.core.sealing import is_sealed
from broker.errors import CommandError
from broker.events.webhook_secrets import open_field, sealer_for
from broker.migrations import MIGRATIONS, SCHEMA_VERSION, SchemaError, migrate, read_version, require_current
from broker.ops.backup import _loaded, copy_keys
from broker.storage import keys
from broker.storage.embedded import free_port
from broker.storage.store import Store
from tests.support.broker_process import Broker
from tests.support.environment import ROOT, make_settings
from tests.support.environment import broker_cli as cli
from tests.support.journey import org_token, person_tokens
from tests.support.redis_servers import RedisServer

FIXTURE = ROOT / "tests" / "fixtures" / "release-0.1.0"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture
def release_0_1_0(tmp_path: Path) -> Any:
    """A fresh redis-server that loaded the 0.1.0 snapshot, and a data directory with 0.1.0's files."""
    redis_dir = tmp_path / "redis-0.1.0"
    redis_dir.mkdir()
    shutil.copy(FIXTURE / "dump.rdb", redis_dir / "dump.rdb")
    server = RedisServer(redis_dir)
    server.extra_args = ["--appendonly", "no", "--dbfilename", "dump.rdb"]
    server.start()
    data = tmp_path / "data"
    data.mkdir()
    for path in FIXTURE.glob("*.json"):
        if path.name != "expected.json":
            shutil.copy(path, data / path.name)
    yield server
    server.stop()


@pytest.mark.slow
def test_data_written_by_release_0_1_0_is_refused_then_migrated_and_served(
    tmp_path: Path, release_0_1_0: RedisServer, brokers: list[Broker]
) -> None:
    url = release_0_1_0.url
    check = Store.from_url(url)
    assert EXPECTED["version"] == "0.1.0" and read_version(check) is None  # as 0.1.0 left it
    keys_before = sorted(check.redis.scan_iter(count=1000))
    assert len(keys_before) > 20
    creds = json.loads((tmp_path / "data" / "demo-credentials.json").read_text())
    org_app = creds["apps"]["org_app"]
    assert check.redis.hget(keys.app(org_app["client_id"]), "webhook_secret") == org_app["webhook_secret"]

    for command in (("serve", "--port", str(free_port())), ("worker", "--once")):
        refused = cli(tmp_path, *command, BROKER_REDIS_URL=url)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "the data has no schema version (data written by broker 0.1.0)" in refused.stderr
        assert "run `broker migrate`" in refused.stderr
        assert "Traceback" not in refused.stderr

    dry = cli(tmp_path, "migrate", "--dry-run", BROKER_REDIS_URL=url)
    assert dry.returncode == 0, dry.stderr
    assert f"schema version 0 -> {SCHEMA_VERSION}: would run {len(MIGRATIONS)} migration(s)" in dry.stderr
    assert f"  1: {MIGRATIONS[0].description}" in dry.stderr
    assert read_version(check) is None and sorted(check.redis.scan_iter(count=1000)) == keys_before

    done = cli(tmp_path, "migrate", BROKER_REDIS_URL=url)
    assert done.returncode == 0, done.stderr
    assert f"[1/{len(MIGRATIONS)}] migration 1: done (schema version 1)" in done.stderr
    assert f"[2/{len(MIGRATIONS)}] migration 2: done (schema version 2)" in done.stderr
    assert read_version(check) == SCHEMA_VERSION
    # Migration 2 sealed the webhook secret 0.1.0 kept in clear; it opens to the same secret.
    stored = check.redis.hget(keys.app(org_app["client_id"]), "webhook_secret")
    assert is_sealed(stored) and org_app["webhook_secret"] not in stored
    settings = make_settings(tmp_path, url)
    assert (
        open_field(sealer_for(settings), org_app["client_id"], "webhook_secret", stored)
        == org_app["webhook_secret"]
    )
    again = cli(tmp_path, "migrate", BROKER_REDIS_URL=url)
    assert again.returncode == 0 and "up to date, nothing to migrate" in again.stderr
    check.close()

    verified = cli(tmp_path, "ledger", "verify", BROKER_REDIS_URL=url)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    broker = Broker(tmp_path, BROKER_REDIS_URL=url)
    brokers.append(broker.start())
    # bob signs in with the password 0.1.0 stored, and the mini program sees the pairwise id it saw then
    assert person_tokens(broker.url, creds, "bob")["sub"] == EXPECTED["bob_sub_mini_program"]
    # the org app's client secret, hashed by 0.1.0, still authenticates; its token works
    org_token(broker.url, creds, "acme")
    ready = requests.get(f"{broker.url}/readyz", timeout=10).json()
    assert ready["schema_version"] == ready["schema_version_supported"] == SCHEMA_VERSION
    assert ready["version"] == "0.2.0" and ready["engine"].split()[0] in {"redis", "valkey"}
    assert broker.stop() == 0
    verified = cli(tmp_path, "ledger", "verify", BROKER_REDIS_URL=url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _load_release_0_1_0(store: Store, url: str) -> None:
    """The 0.1.0 snapshot's keys into ``store`` (on a cluster, spread over its primaries)."""
    import redis
    from redis.cluster import RedisCluster

    store.redis.delete(keys.schema_version())  # 0.1.0 had none
    target: Any = RedisCluster.from_url(url) if store.cluster else redis.Redis.from_url(url)
    with _loaded(FIXTURE / "dump.rdb") as source:
        assert copy_keys(source, target, lambda _m: None) > 20
    target.close()


def test_migrate_in_process_on_single_and_cluster(store: Store, tmp_path: Path, redis_server: Any) -> None:
    settings = make_settings(tmp_path, redis_server.url)
    _load_release_0_1_0(store, redis_server.url)
    with pytest.raises(SchemaError, match="no schema version"):
        require_current(store)
    lines: list[str] = []
    ran = migrate(store, settings, progress=lines.append)
    assert [m.number for m in ran] == list(range(1, SCHEMA_VERSION + 1))
    assert require_current(store) == SCHEMA_VERSION
    assert lines[-1].endswith(f"done (schema version {SCHEMA_VERSION})")
    # idempotent: the migration itself runs again without a change
    before = {k: store.redis.type(k) for k in store.redis.scan_iter(count=1000)}
    MIGRATIONS[0].up(store, settings)
    assert {k: store.redis.type(k) for k in store.redis.scan_iter(count=1000)} == before
    assert store.redis.exists(keys.migrate_lock()) == 0


def test_a_fresh_store_is_stamped_and_a_newer_one_refused(
    store: Store, tmp_path: Path, redis_server: Any
) -> None:
    store.redis.flushdb()
    assert read_version(store) is None
    assert require_current(store) == SCHEMA_VERSION  # first start on an empty store
    assert read_version(store) == SCHEMA_VERSION
    store.redis.set(keys.schema_version(), SCHEMA_VERSION + 1)
    with pytest.raises(SchemaError, match=f"newer than this broker reads \\({SCHEMA_VERSION}\\)"):
        require_current(store)
    with pytest.raises(SchemaError, match="newer than this broker reads"):
        migrate(store, make_settings(tmp_path, redis_server.url), progress=lambda _m: None)


def test_serve_refuses_a_newer_schema_with_a_clear_message(tmp_path: Path, redis_server: Any) -> None:
    client = Store.from_url(redis_server.url)
    client.redis.flushdb()
    client.redis.set(keys.schema_version(), SCHEMA_VERSION + 1)
    refused = cli(tmp_path, "serve", "--port", str(free_port()), BROKER_REDIS_URL=redis_server.url)
    client.redis.flushdb()
    client.close()
    assert refused.returncode == 2
    assert f"the data has schema version {SCHEMA_VERSION + 1}, newer than this broker reads" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_migration_1_refuses_a_redis_that_holds_other_data(
    store: Store, tmp_path: Path, redis_server: Any
) -> None:
    store.redis.flushdb()
    store.redis.set("someone-elses:key", "x")
    store.redis.set(keys.users_all() + "-not", "x")
    with pytest.raises(SchemaError):
        require_current(store)
    with pytest.raises(CommandError, match=r"keys that are not the broker's .*someone-elses:key"):
        migrate(store, make_settings(tmp_path, redis_server.url), progress=lambda _m: None)
    assert read_version(store) is None  # nothing was changed
    assert store.redis.exists(keys.migrate_lock()) == 0


def test_a_second_migrate_is_refused_while_one_runs(store: Store, tmp_path: Path, redis_server: Any) -> None:
    _load_release_0_1_0(store, redis_server.url)
    store.redis.set(keys.migrate_lock(), "1", px=60000)
    with pytest.raises(SchemaError, match="another `broker migrate` is running"):
        migrate(store, make_settings(tmp_path, redis_server.url), progress=lambda _m: None)
    assert read_version(store) is None
