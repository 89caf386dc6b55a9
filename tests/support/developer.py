"""The developer console as its tests drive it: the registration form and registering through it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FORM = {
    "kind": "org_app",
    "client_type": "confidential",
    "name": "Roster",
    "description": "Team roster",
    "contact": "dev@example.com",
    "privacy_policy_url": "https://roster.example.com/privacy",
    "redirect_uris": "https://roster.example.com/cb\n\n  https://roster.example.com/cb2  ",
    "scopes": "org.members.read",
    "webhook_url": "https://roster.example.com/hooks",
}


def register(client: Any, **over: str) -> str:
    response = client.post("/developer/apps", data={**FORM, **over})
    assert response.status_code == 303, response.get_data(as_text=True)
    match = re.fullmatch(r"/developer/apps/(app_[0-9a-f]{16})", response.headers["Location"])
    assert match
    return match.group(1)


@dataclass(frozen=True)
class NotesAndRoster:
    """A developer's two apps and the records they left: Notes (a mini-program Alice granted) and
    Roster (installed in Acme, whose members are Alice and Bob)."""

    dev: str
    mini: str
    org_app: str
    oid: str
    alice: str
    bob: str


def notes_and_roster(
    client: Any, store: Any, settings: Any, *, me_reads: int = 1, member_reads: int = 1
) -> NotesAndRoster:
    """Devon's Notes read Alice ``me_reads`` times and Roster listed Acme's members ``member_reads``
    times, through the data API; every record is sequenced into the ledger."""
    from broker.consent import installations
    from tests.support.factories import (
        installation_token,
        make_app,
        make_grant,
        make_org,
        make_token,
        make_user,
    )
    from tests.support.privacy import sequence

    dev = make_user(store, username="devon")
    alice, bob = make_user(store, username="alice"), make_user(store, username="bob")
    mini, _ = make_app(store, settings, developer_id=dev, name="Notes")
    gid = make_grant(store, settings, mini, alice, "openid profile", "user_id nickname avatar")
    person = make_token(
        store, settings, mini, kind="grant", subject=alice, grant_id=gid, scopes="openid profile"
    )
    org_app, _ = make_app(
        store,
        settings,
        developer_id=dev,
        kind="org_app",
        name="Roster",
        scopes="org.members.read",
        redirect_uris=[],
    )
    oid = make_org(store, [alice, bob], name="Acme")
    installations.install(store, org_app, oid)
    org = installation_token(store, settings, org_app, oid, "org.members.read")
    for _ in range(me_reads):
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {person}"}).status_code == 200
    for _ in range(member_reads):
        assert (
            client.get(f"/v1/orgs/{oid}/members", headers={"Authorization": f"Bearer {org}"}).status_code
            == 200
        )
    sequence(store, settings)
    return NotesAndRoster(dev, mini, org_app, oid, alice, bob)
