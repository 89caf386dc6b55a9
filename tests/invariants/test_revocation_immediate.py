"""DESIGN invariant 2: revocation is immediate. Whatever ends an app's access (the person withdraws
the grant, the admin switches the installation off, the operator suspends the app, the person
deletes the account), the very next request with a token under it is refused and nothing more is
recorded about anyone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from broker.apps import registry
from broker.consent import grants, installations, person
from tests.support.client import bearer
from tests.support.factories import make_org, make_token, make_user, raw_app, raw_grant, raw_installation
from tests.support.ledger import journal_records
from tests.support.privacy import index_grant


def person_access(store: Any, settings: Any) -> dict[str, Any]:
    uid = make_user(store, nickname="Alice")
    cid = raw_app(store, developer_id="usr_dev1")
    gid = raw_grant(store, cid, uid, "openid profile", "user_id nickname")
    index_grant(store, cid, uid)
    token = make_token(store, settings, cid, kind="grant", subject=uid, grant_id=gid, scopes="openid profile")
    return {"uid": uid, "cid": cid, "token": token, "path": "/v1/me"}


def org_access(store: Any, settings: Any) -> dict[str, Any]:
    uid = make_user(store, nickname="Bob")
    oid = make_org(store, [uid])
    cid = raw_app(store, developer_id="usr_dev2", kind="org_app")
    iid = raw_installation(store, cid, oid)
    token = make_token(
        store, settings, cid, kind="installation", subject=oid, grant_id=iid, scopes="org.members.read"
    )
    return {"uid": uid, "oid": oid, "cid": cid, "token": token, "path": f"/v1/orgs/{oid}/members"}


Revoke = Callable[[Any, Any, dict[str, Any]], Any]
CASES: dict[str, tuple[Callable[[Any, Any], dict[str, Any]], Revoke]] = {
    "the person withdraws the grant": (
        person_access,
        lambda s, st, a: grants.revoke_grant(s, st, a["cid"], a["uid"]),
    ),
    "the operator suspends the mini-program": (
        person_access,
        lambda s, st, a: registry.suspend_app(s, a["cid"]),
    ),
    "the person deletes the account": (
        person_access,
        lambda s, st, a: person.delete_account(s, st, a["uid"]),
    ),
    "the admin switches the installation off": (
        org_access,
        lambda s, st, a: installations.disable(s, a["cid"], a["oid"]),
    ),
    "the operator suspends the org app": (org_access, lambda s, st, a: registry.suspend_app(s, a["cid"])),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_next_request_is_refused_and_records_nothing(
    client: Any, store: Any, settings: Any, case: str
) -> None:
    make, revoke = CASES[case]
    access = make(store, settings)
    assert client.get(access["path"], headers=bearer(access["token"])).status_code == 200
    recorded = len(journal_records(store, access["cid"]))
    revoke(store, settings, access)
    response = client.get(access["path"], headers=bearer(access["token"]))
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_token"
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert len(journal_records(store, access["cid"])) == recorded
