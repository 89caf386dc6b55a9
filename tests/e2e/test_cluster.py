"""Redis Cluster (DESIGN invariant 6): the same code on three masters, cluster failures as 503.

Every Redis-touching test of the suite also runs on a cluster (its ``[cluster]`` variant); this module
runs in both modes on a cluster of its own, because it takes nodes down.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from broker.app import create_app
from broker.directory import service as directory
from broker.storage import keys
from broker.storage.store import BrokerCluster, ClusterUnavailable, Store
from tests.support.environment import make_settings
from tests.support.factories import make_token, make_user, raw_app, raw_grant
from tests.support.ledger import journal_records, log_of


@pytest.fixture
def cstore(private_cluster: Any) -> Iterator[Store]:
    if private_cluster.process is None:
        private_cluster.start()  # a test took it down
    s = Store.from_url(private_cluster.url)
    s.redis.flushdb()  # every primary of our own cluster
    yield s
    s.close()


@pytest.fixture
def capp(tmp_path: Any, private_cluster: Any, cstore: Store) -> Any:
    application = create_app(make_settings(tmp_path, private_cluster.url), cstore)
    application.config["TESTING"] = True
    return application


def person(store: Store, settings: Any) -> dict[str, str]:
    uid = make_user(store, nickname="Alice")
    client_id = raw_app(store, developer_id="usr_dev1")
    gid = raw_grant(store, client_id, uid, "openid profile", "user_id nickname")
    token = make_token(
        store, settings, client_id, kind="grant", subject=uid, grant_id=gid, scopes="openid profile"
    )
    return {"uid": uid, "client_id": client_id, "gid": gid, "token": token}


def test_the_url_alone_selects_cluster_mode(private_cluster: Any, cstore: Store) -> None:
    assert isinstance(cstore.redis, BrokerCluster) and cstore.cluster
    masters = [n for n in cstore.redis.get_nodes() if n.server_type == "primary"]
    assert len(masters) == 3
    # keys of different entities really live on different masters
    slots = {cstore.redis.keyslot(keys.user(f"usr_{i:016x}")) for i in range(30)}
    owners = {cstore.redis.nodes_manager.get_node_from_slot(slot).name for slot in slots}
    assert len(owners) == 3


def test_batch_keeps_the_order_across_slots(cstore: Store) -> None:
    """Commands then a script then commands: results in order, the script saw what came before it."""
    script = cstore.script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    result = (
        cstore.batch()
        .command("set", "{x}:n", 40)
        .command("sadd", "{y}:index", "member")  # another slot
        .script(script, ["{x}:n"], [2])
        .command("get", "{x}:n")
        .execute()
    )
    assert result == [True, 1, 42, "42"]


def test_disclosure_on_the_cluster_records_before_it_answers(capp: Any, cstore: Store) -> None:
    """The gate's two slots (the app's journal, then the log's journals index once) on a real cluster."""
    p = person(cstore, capp.extensions["broker.settings"])
    response = capp.test_client().get("/v1/me", headers={"Authorization": f"Bearer {p['token']}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["nickname"] == "Alice"
    [record] = journal_records(cstore, p["client_id"])
    assert record["person"] == p["uid"]
    assert cstore.redis.sismember(keys.journals_index(log_of(p["uid"], cstore)), p["client_id"])


def test_rename_moves_the_username_on_the_cluster(cstore: Store) -> None:
    user = directory.create_user(cstore, {"username": "old-name", "password": "a-long-password"})
    directory.update_user(cstore, user["id"], {"username": "new-name"})
    assert directory.user_id_for(cstore, "new-name") == user["id"]
    assert directory.user_id_for(cstore, "old-name") is None  # released, not left claimed
    directory.delete_user(cstore, user["id"])
    assert directory.user_id_for(cstore, "new-name") is None


def test_a_failed_rename_changes_nothing(cstore: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile write fails after the new name was claimed: the claim is given back."""
    user = directory.create_user(cstore, {"username": "keeper", "password": "a-long-password"})
    real_hset = cstore.redis.hset

    def failing_hset(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == keys.user(user["id"]):
            raise redis.ConnectionError("the node went away")
        return real_hset(name, *args, **kwargs)

    monkeypatch.setattr(cstore.redis, "hset", failing_hset)
    with pytest.raises(redis.ConnectionError):
        directory.update_user(cstore, user["id"], {"username": "wanted"})
    monkeypatch.undo()
    assert directory.user_id_for(cstore, "wanted") is None
    assert directory.user_id_for(cstore, "keeper") == user["id"]
    assert directory.get_user(cstore, user["id"])["username"] == "keeper"


def test_grant_withdrawal_revokes_its_tokens_on_the_cluster(capp: Any, cstore: Store) -> None:
    """Withdrawing a grant ends its tokens at once on a cluster (the gate reads the grant in the
    token's slot)."""
    from broker.consent import grants

    settings = capp.extensions["broker.settings"]
    p = person(cstore, settings)
    assert grants.revoke_grant(cstore, settings, p["client_id"], p["uid"]) is not None
    response = capp.test_client().get("/v1/me", headers={"Authorization": f"Bearer {p['token']}"})
    assert response.status_code == 401


def _master_of(store: Store, key: str) -> int:
    return int(store.redis.get_node_from_key(key).port)


def test_a_master_down_answers_503_with_retry_after_and_no_data(
    capp: Any, cstore: Store, private_cluster: Any
) -> None:
    """Cluster failures (a dead node, slots without an owner) are 503, never 500, and leave no data."""
    p = person(cstore, capp.extensions["broker.settings"])
    client = capp.test_client()
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {p['token']}"}).status_code == 200
    port = _master_of(cstore, keys.app(p["client_id"]))
    [node] = [n for n in private_cluster.nodes if n.port == port]
    node.stop()
    try:
        for _ in range(3):  # the first meets the dead node, the next ones the cluster's new view
            response = client.get("/v1/me", headers={"Authorization": f"Bearer {p['token']}"})
            body = response.get_data(as_text=True)
            assert response.status_code == 503, body
            assert response.headers["Retry-After"]
            assert json.loads(body)["error"] == "temporarily_unavailable"
            assert "Alice" not in body and "Traceback" not in body
    finally:
        private_cluster.stop()  # the next test's fixture starts it whole again


def test_cluster_exceptions_become_storage_errors(cstore: Store) -> None:
    with pytest.raises(ClusterUnavailable) as caught:
        cstore.redis.execute_command("GET")  # no key: redis-py cannot route it
    assert isinstance(caught.value, redis.RedisError)
