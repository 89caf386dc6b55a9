"""Real records and real credentials for the schemathesis runs over every API
(tests/test_schemathesis_apis.py): a person who owns an organization and develops its apps, with a
second member; an org app installed there; a mini-program the person consented to; an access token
of each kind from the token endpoint; the person's session cookie and CSRF token; a ledger with
leaves and a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.apps import registry as apps_svc
from broker.consent import installations as inst_svc
from broker.directory import service as directory
from tests.support import oauth
from tests.support.apps import mini_payload, org_payload, outbox_events
from tests.support.client import basic, bearer
from tests.support.factories import make_grant
from tests.support.privacy import sequence
from tests.support.signin import session_sign_in


@dataclass(frozen=True)
class World:
    owner_id: str
    member_id: str
    org_id: str
    org_app_id: str
    org_app_secret: str
    mini_id: str
    mini_secret: str
    person_token: str
    org_token: str
    receipt_id: str
    event_id: str
    cookies: dict[str, str]
    csrf: str
    ledger_log: str = ""  # the log holding the owner's records (all of a person's are in one)


def make_world(app: Any, store: Any, settings: Any) -> World:
    catalog = app.extensions["broker.catalog"]
    owner = directory.create_user(store, {"username": "olive", "password": "correct horse battery"})["id"]
    member = directory.create_user(store, {"username": "milo", "nickname": "Milo"})["id"]
    org = directory.create_org(store, {"name": "Acme"})["id"]
    directory.add_member(store, org, owner, "owner")
    directory.add_member(store, org, member, "member")
    org_app, org_secret, _ = apps_svc.register_app(
        store, settings, catalog, org_payload(owner, privacy_policy_url="https://roster.example.com/privacy")
    )
    inst_svc.install(store, org_app["client_id"], org, None, owner)
    mini, mini_secret, _ = apps_svc.register_app(
        store,
        settings,
        catalog,
        mini_payload(owner, client_type="confidential", redirect_uris=[oauth.REDIRECT]),
    )
    assert org_secret is not None and mini_secret is not None
    make_grant(store, settings, mini["client_id"], owner, "openid profile", "user_id nickname avatar")

    client = app.test_client()
    session_sign_in(client, owner)
    person_token = client.post(
        "/oauth/token",
        data=oauth.code_form(client, mini["client_id"]),
        headers=basic(mini["client_id"], mini_secret),
    ).get_json()["access_token"]
    org_token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "org_id": org},
        headers=basic(org_app["client_id"], org_secret),
    ).get_json()["access_token"]
    assert client.get("/v1/me", headers=bearer(person_token)).status_code == 200
    assert client.get(f"/v1/orgs/{org}/members", headers=bearer(org_token)).status_code == 200
    sequence(store, settings)  # the ledger holds leaves and a signed checkpoint

    csrf = client.get("/privacy/v1/csrf-token").get_json()["csrf_token"]
    receipts = client.get("/privacy/v1/receipts").get_json()
    cookie = client.get_cookie("broker_session")
    assert cookie is not None
    from tests.support.ledger import log_of

    return World(
        ledger_log=log_of(owner, store),
        owner_id=owner,
        member_id=member,
        org_id=org,
        org_app_id=org_app["client_id"],
        org_app_secret=org_secret,
        mini_id=mini["client_id"],
        mini_secret=mini_secret,
        person_token=person_token,
        org_token=org_token,
        receipt_id=receipts["receipts"][0]["id"],
        event_id=outbox_events(store, org_app["client_id"])[0]["id"],
        cookies={"broker_session": cookie.value},
        csrf=csrf,
    )
