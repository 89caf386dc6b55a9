"""DESIGN invariant 4: tenant isolation. An org token reads only its own organization, and a denial
for another organization's data looks exactly like "not found"."""

from __future__ import annotations

from typing import Any

from tests.support.client import bearer
from tests.support.factories import make_org, make_token, make_user, raw_app, raw_installation


def test_another_orgs_data_is_indistinguishable_from_nothing(client: Any, store: Any, settings: Any) -> None:
    alice, carol = make_user(store, nickname="Alice"), make_user(store, nickname="Carol")
    acme, globex = make_org(store, [alice]), make_org(store, [carol])
    client_id = raw_app(store, developer_id="usr_dev1", kind="org_app")
    iid = raw_installation(store, client_id, acme)
    token = make_token(
        store, settings, client_id, kind="installation", subject=acme, grant_id=iid, scopes="org.members.read"
    )

    own = client.get(f"/v1/orgs/{acme}/members", headers=bearer(token))
    assert own.status_code == 200

    other = client.get(f"/v1/orgs/{globex}/members", headers=bearer(token))
    missing = client.get("/v1/orgs/org_0000000000000000/members", headers=bearer(token))
    assert other.status_code == missing.status_code == 404
    assert other.get_json() == missing.get_json()
    assert "Carol" not in other.get_data(as_text=True)

    # A member of another organization, asked for under the token's own organization: not found,
    # the same answer as for an id that exists nowhere.
    foreign = client.get(f"/v1/orgs/{acme}/members/{carol}", headers=bearer(token))
    nobody = client.get(f"/v1/orgs/{acme}/members/usr_0000000000000000", headers=bearer(token))
    assert foreign.status_code == nobody.status_code == 404
    assert foreign.get_json() == nobody.get_json()
