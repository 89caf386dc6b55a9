"""Consent receipts (issue 4 item 8): Kantara CR 1.1 fields, Ed25519 JWS verifiable with the published key."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from broker.consent import receipts
from broker.core.pairwise import pairwise_id
from broker.storage import keys
from broker.web.shared import context as web
from tests.support.factories import make_user
from tests.support.signin import session_sign_in

ALICE = "usr_00000000000000a1"
BOB = "usr_00000000000000b0"
CLIENT = "app_00000000000000c1"

APP = {
    "client_id": CLIENT,
    "name": "Team Calendar",
    "kind": "mini_program",
    "client_type": "public",
    "developer_id": "usr_00000000000000d1",
    "contact": "dev@calendar.example",
    "privacy_policy_url": "https://calendar.example/privacy",
    "status": "active",
}


def grant(uid: str = ALICE) -> dict[str, str]:
    return {
        "id": "gr_00000000000000f1",
        "client_id": CLIENT,
        "user_id": uid,
        "scopes": "openid profile",
        "fields": "nickname avatar user_id",
        "purpose": "Show your name on shared calendars",
        "consent_version": "2026-01",
        "created_at": "1700000000",
        "updated_at": "1700000000",
    }


def issue(app: Any, store: Any, action: str = "granted", uid: str = ALICE, now: float | None = None) -> str:
    with app.app_context():
        return receipts.issue_receipt(
            store, APP, grant(uid), action, now=now, settings=web.settings(), keyring=web.keyring()
        )


def published(app: Any) -> KeySet:
    with app.app_context():
        return KeySet.import_key_set(web.keyring().ledger_jwks())  # what /ledger/v1/keys serves


def web_settings(app: Any) -> Any:
    return app.extensions["broker.settings"]


def test_receipt_verifies_with_published_key_and_carries_kantara_fields(
    app: Any, store: Any, client: Any
) -> None:
    make_user(store, id=ALICE)
    rid = issue(app, store)
    session_sign_in(client, ALICE, auth_time=1700000000)
    resp = client.get(f"/privacy/v1/receipts/{rid}")
    assert resp.status_code == 200
    assert resp.mimetype == "application/jose"
    token = resp.get_data(as_text=True)
    obj = jws.deserialize_compact(token, published(app), algorithms=["EdDSA"])
    header = obj.headers()
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "consent-receipt+jwt"
    assert header["kid"]
    body = json.loads(obj.payload)
    assert body["version"] == "KI-CR-v1.1.0"
    assert body["consentReceiptID"] == rid
    # named by the pairwise id the app knows, never the platform's own id (issue 14, item 8)
    assert body["piiPrincipalId"] == pairwise_id(web_settings(app).pairwise_key, CLIENT, ALICE)
    assert ALICE not in json.dumps(body)
    assert body["jurisdiction"] == "CN"
    assert body["language"] == "en"
    assert isinstance(body["consentTimestamp"], int)
    assert body["collectionMethod"]
    assert body["publicKey"]["kid"] == header["kid"]
    assert "d" not in body["publicKey"]  # never the private part
    controller, recipient = body["piiControllers"]
    assert controller["role"] == "controller" and controller["contact"] == "privacy@example.com"
    assert recipient == {
        "piiController": "Team Calendar",
        "onBehalf": False,
        "contact": "dev@calendar.example",
        "piiControllerUrl": "https://calendar.example/privacy",
        "role": "recipient",
        "client_id": CLIENT,
        "developer": "usr_00000000000000d1",
    }
    assert body["policyUrl"] == "https://calendar.example/privacy"
    purpose = body["services"][0]["purposes"][0]
    assert purpose["purpose"] == "Show your name on shared calendars"
    assert purpose["consentType"] == "EXPLICIT"
    assert purpose["piiCategory"] == ["avatar", "nickname", "user_id"]
    assert purpose["primaryPurpose"] is True
    assert purpose["termination"] == "http://127.0.0.1:8080/privacy"
    assert purpose["purposeCategory"]
    assert body["sensitive"] is False
    assert body["action"] == "granted"
    assert body["client_id"] == CLIENT
    assert body["scopes"] == ["openid", "profile"]
    assert body["fields"] == ["avatar", "nickname", "user_id"]
    assert body["consent_version"] == "2026-01"


def test_json_format_returns_decoded_receipt_and_the_jws(app: Any, store: Any, client: Any) -> None:
    make_user(store, id=ALICE)
    rid = issue(app, store, "revoked")
    session_sign_in(client, ALICE, auth_time=1700000000)
    resp = client.get(f"/privacy/v1/receipts/{rid}?format=json")
    assert resp.status_code == 200
    data = resp.get_json()
    assert data["receipt"]["action"] == "revoked"
    assert (
        json.loads(jws.deserialize_compact(data["jws"], published(app), algorithms=["EdDSA"]).payload)
        == data["receipt"]
    )
    bad = client.get(f"/privacy/v1/receipts/{rid}?format=xml")
    assert bad.status_code == 400
    assert bad.get_json()["errors"] == {"format": ["must be jws or json"]}


def test_tampered_receipt_fails_verification(app: Any, store: Any) -> None:
    rid = issue(app, store)
    token = store.redis.hget(keys.receipts_docs(ALICE), rid)
    header, payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["fields"].append("mobile")
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(f"{header}.{forged}.{sig}", published(app), algorithms=["EdDSA"])
    with app.app_context(), pytest.raises(BadSignatureError):
        receipts.verify(f"{header}.{forged}.{sig}", web.keyring())


def test_someone_elses_receipt_is_not_found(app: Any, store: Any, client: Any) -> None:
    make_user(store, id=ALICE)
    make_user(store, id=BOB)
    rid = issue(app, store, uid=ALICE)
    session_sign_in(client, BOB, auth_time=1700000000)
    resp = client.get(f"/privacy/v1/receipts/{rid}")
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["error"] == "not_found"
    assert client.get("/privacy/v1/receipts").get_json()["receipts"] == []


def test_not_signed_in_gets_401_problem_json(app: Any, store: Any, client: Any) -> None:
    resp = client.get("/privacy/v1/receipts", headers={"Accept": "text/html"})
    assert resp.status_code == 401
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["error"] == "unauthorized"
    assert client.get("/privacy/v1/receipts/00000000-0000-0000-0000-000000000000").status_code == 401


def test_deleted_user_session_gets_401(app: Any, store: Any, client: Any) -> None:
    make_user(store, id=ALICE)
    issue(app, store)
    session_sign_in(client, ALICE, auth_time=1700000000)
    store.redis.hset(keys.user(ALICE), "status", "deleted")
    assert client.get("/privacy/v1/receipts").status_code == 401


def test_list_is_newest_first_with_cursor_pagination(app: Any, store: Any, client: Any) -> None:
    make_user(store, id=ALICE)
    ids = [
        issue(app, store, action, now=1_800_000_000 + i)
        for i, action in enumerate(["granted", "changed", "changed", "revoked", "granted"])
    ]
    session_sign_in(client, ALICE, auth_time=1700000000)
    first = client.get("/privacy/v1/receipts?limit=2").get_json()
    assert [r["id"] for r in first["receipts"]] == [ids[4], ids[3]]
    assert first["receipts"][1] == {
        "id": ids[3],
        "time": 1_800_000_003,
        "app": CLIENT,
        "app_name": "Team Calendar",
        "action": "revoked",
    }
    second = client.get(f"/privacy/v1/receipts?limit=2&cursor={first['next_cursor']}").get_json()
    assert [r["id"] for r in second["receipts"]] == [ids[2], ids[1]]
    third = client.get(f"/privacy/v1/receipts?limit=2&cursor={second['next_cursor']}").get_json()
    assert [r["id"] for r in third["receipts"]] == [ids[0]]
    assert third["next_cursor"] is None


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("cursor=!!!", "cursor"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_field(
    app: Any, store: Any, client: Any, query: str, field: str
) -> None:
    make_user(store, id=ALICE)
    session_sign_in(client, ALICE, auth_time=1700000000)
    resp = client.get(f"/privacy/v1/receipts?{query}")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_request"
    assert list(resp.get_json()["errors"]) == [field]


def test_issue_receipt_outside_a_request_with_explicit_keyring(app: Any, store: Any) -> None:
    with app.app_context():
        kr, st = web.keyring(), web.settings()
    rid = receipts.issue_receipt(store, APP, grant(), "changed", keyring=kr, settings=st)
    token = store.redis.hget(keys.receipts_docs(ALICE), rid)
    assert receipts.verify(token, kr)["action"] == "changed"
    with pytest.raises(ValueError, match="needs settings="):
        receipts.issue_receipt(store, APP, grant(), "granted")
    # with settings only, the configured keys file is used: the same published keys verify it
    other = receipts.issue_receipt(store, APP, grant(), "granted", settings=st)
    assert receipts.verify(store.redis.hget(keys.receipts_docs(ALICE), other), kr)["action"] == "granted"


def test_unknown_action_is_refused_and_nothing_is_stored(app: Any, store: Any) -> None:
    with app.app_context(), pytest.raises(ValueError, match="unknown receipt action"):
        receipts.issue_receipt(store, APP, grant(), "deleted", settings=web.settings())
    assert store.redis.exists(keys.receipts_index(ALICE), keys.receipts_docs(ALICE)) == 0


def test_a_high_sensitivity_field_marks_the_receipt_sensitive(app: Any, store: Any) -> None:
    with app.app_context():
        kr, st = web.keyring(), web.settings()
    record = {**grant(), "fields": "nickname mobile", "scopes": "openid phone"}
    rid = receipts.issue_receipt(store, APP, record, "granted", keyring=kr, settings=st)
    body = receipts.verify(store.redis.hget(keys.receipts_docs(ALICE), rid), kr)
    assert body["sensitive"] is True
    assert body["spiCat"] == ["mobile"]
    assert body["services"][0]["purposes"][0]["piiCategory"] == ["mobile", "nickname"]


def test_the_controller_entry_carries_address_and_phone_from_configuration(app: Any) -> None:
    from dataclasses import replace

    settings = replace(
        web_settings(app), receipt_address="1 Platform Road, Hangzhou", receipt_phone="+86 571 0000 0000"
    )
    payload = receipts.build_payload(APP, grant(), "granted", settings=settings, public_key={})
    controller = payload["piiControllers"][0]
    assert controller["address"] == "1 Platform Road, Hangzhou" and controller["phone"] == "+86 571 0000 0000"
    plain = receipts.build_payload(APP, grant(), "granted", settings=web_settings(app), public_key={})
    assert "address" not in plain["piiControllers"][0] and "phone" not in plain["piiControllers"][0]


def test_receipts_carry_the_apps_declared_purpose_and_retention_per_field(app: Any) -> None:
    with_label = {
        **grant(),
        "label": [
            {"field": "nickname", "purpose": "to greet you", "retention_days": 30},
            {"field": "email", "purpose": "not granted, so not in the receipt", "retention_days": 1},
        ],
    }
    payload = receipts.build_payload(APP, with_label, "granted", settings=web_settings(app), public_key={})
    assert payload["retention_days"] == {"nickname": 30}
    declared = [p for p in payload["services"][0]["purposes"] if not p["primaryPurpose"]]
    assert [(p["piiCategory"], p["purpose"], p["termination"]) for p in declared] == [
        (["nickname"], "to greet you", "kept by the app for 30 days")
    ]
