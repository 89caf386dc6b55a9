"""DESIGN invariant 6: cluster-ready keys. Every atomic multi-key operation (a Lua script, a MULTI)
touches keys of one hash slot, all passed in KEYS. Checked here on whatever Redis the test runs on
by watching every script call and every MULTI of real flows (on a cluster, redis-py's cluster
pipeline is not watched here, but the cluster itself refuses a cross-slot operation outright)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.client import Pipeline
from redis.commands.core import Script
from redis.crc import key_slot

from broker.apps import registry
from broker.consent import grants, installations
from tests.support.client import basic
from tests.support.factories import (
    make_app,
    make_org,
    make_token,
    make_user,
    raw_app,
    raw_grant,
    raw_installation,
)
from tests.support.oauth import REDIRECT, get_code, pkce_pair
from tests.support.privacy import index_grant
from tests.support.signin import session_sign_in

NO_KEY_COMMANDS = {"MULTI", "EXEC", "WAIT", "PING", "SCRIPT"}


def _keys_of(args: tuple[Any, ...]) -> list[str]:
    name = str(args[0]).upper()
    if name in NO_KEY_COMMANDS:
        return []
    if name in {"EVAL", "EVALSHA"}:
        return [str(k) for k in args[3 : 3 + int(args[2])]]
    return [str(args[1])] if len(args) > 1 else []


@pytest.fixture
def atomic_operations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    seen: list[tuple[str, list[str]]] = []
    real_call, real_execute = Script.__call__, Pipeline.execute

    def script_call(self: Script, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        seen.append((f"script {self.sha[:8]}", [str(k) for k in keys or []]))
        return real_call(self, keys=keys, args=args, client=client)

    def execute(self: Pipeline, raise_on_error: bool = True) -> Any:
        if self.transaction:
            found = [k for command in self.command_stack for k in _keys_of(command[0])]
            names = " ".join(str(command[0][0]) for command in self.command_stack)
            seen.append((f"MULTI {names}", found))
        return real_execute(self, raise_on_error)

    monkeypatch.setattr(Script, "__call__", script_call)
    monkeypatch.setattr(Pipeline, "execute", execute)
    return seen


def test_every_atomic_operation_stays_in_one_slot(
    client: Any, store: Any, settings: Any, atomic_operations: list[tuple[str, list[str]]]
) -> None:
    # A person: sign-in, the code flow with PKCE, a refresh, data, withdrawal.
    cid, secret = make_app(store, settings)
    uid = make_user(store, "alice", "a-long-password")
    raw_grant(store, cid, uid, "openid profile", "user_id nickname avatar")
    index_grant(store, cid, uid)
    session_sign_in(client, uid)
    verifier, challenge = pkce_pair()
    form = {"grant_type": "authorization_code", "code": get_code(client, cid, challenge),
            "redirect_uri": REDIRECT, "code_verifier": verifier}  # fmt: skip
    tokens = client.post("/oauth/token", data=form, headers=basic(cid, secret)).get_json()
    refreshed = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(cid, secret),
    ).get_json()
    assert (
        client.get("/v1/me", headers={"Authorization": f"Bearer {refreshed['access_token']}"}).status_code
        == 200
    )
    grants.revoke_grant(store, settings, cid, uid)
    # An organization: members read, switched off, app suspended.
    member = make_user(store, "bob", "a-long-password")
    oid = make_org(store, [member])
    org_app = raw_app(store, kind="org_app")
    iid = raw_installation(store, org_app, oid)
    token = make_token(
        store, settings, org_app, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    assert (
        client.get(f"/v1/orgs/{oid}/members", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    installations.disable(store, org_app, oid)
    registry.suspend_app(store, org_app)

    assert len(atomic_operations) >= 5  # the watch saw the flows' scripts (and, on one node, transactions)
    for what, keys in atomic_operations:
        assert len({key_slot(k.encode()) for k in keys}) <= 1, f"{what} spans slots: {keys}"
