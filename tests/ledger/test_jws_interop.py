"""The ledger's JWS (checkpoints, consent receipts) verify with mainstream libraries, unmodified.

New signatures carry ``alg`` ``EdDSA`` (RFC 8037), which PyJWT verifies with the key exactly as
``/ledger/v1/keys`` serves it. Checkpoints and receipts an earlier release labelled ``Ed25519``
(RFC 9864) keep verifying in ``broker ledger verify``, the privacy center and ``receipts.verify``,
also when the keys file still labels the key ``Ed25519``.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
import requests
from joserfc import jwk, jws

from broker import cli
from broker.config import Settings
from broker.consent import receipts
from broker.core.keyring import Keyring
from broker.core.pairwise import pairwise_id
from broker.ledger import checkpoints, storage
from broker.ledger.sequencer import Sequencer
from broker.storage import keys
from broker.storage.store import Store
from tests.support.factories import make_user
from tests.support.ledger import ALICE, journal, log_of, record
from tests.support.ledger import LOG_A as A
from tests.support.signin import http_sign_in, session_sign_in

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


def grant(uid: str) -> dict[str, str]:
    return {
        "id": "gr_00000000000000f1",
        "client_id": CLIENT,
        "user_id": uid,
        "scopes": "openid profile",
        "fields": "nickname avatar user_id",
        "purpose": "Show your name on shared calendars",
        "consent_version": "2026-01",
    }


def test_pyjwt_verifies_a_checkpoint_and_a_receipt_with_the_key_from_ledger_v1_keys(
    live_server: Any, store: Store
) -> None:
    app = live_server.app
    settings: Settings = app.extensions["broker.settings"]
    keyring: Keyring = app.extensions["broker.keyring"]
    uid = make_user(store, username="alice", password="correct horse 1")
    for i in range(3):
        journal(store, record(i, person=uid))
    Sequencer(store, keyring, settings).run_once()
    with app.app_context():
        rid = receipts.issue_receipt(store, APP, grant(uid), "granted", settings=settings, keyring=keyring)

    base = live_server.url
    log = log_of(uid, store)  # all of the person's records are in one log
    checkpoint = requests.get(f"{base}/ledger/v1/logs/{log}/checkpoints/latest", timeout=10).json()[
        "checkpoint"
    ]
    person = http_sign_in(base, {"password": "correct horse 1"}, "alice")
    answer = person.get(f"{base}/privacy/v1/receipts/{rid}", timeout=10)
    assert answer.status_code == 200, answer.text[:300]
    receipt = answer.text

    # PyJWT's own JWKS client, pointed at the published URL: no key is edited or re-labelled.
    keys_client = jwt.PyJWKClient(f"{base}/ledger/v1/keys")
    key = keys_client.get_signing_key_from_jwt(checkpoint)
    assert key.algorithm_name == "EdDSA"
    signed = jwt.PyJWS().decode_complete(checkpoint, key, algorithms=["EdDSA"])
    assert signed["header"]["alg"] == "EdDSA"
    assert signed["header"]["typ"] == "broker-ledger-checkpoint+jws"
    payload = json.loads(signed["payload"])
    assert payload["tree_size"] == 3
    assert payload["origin"] == f"{base}/ledger/{log}" and payload["log"] == log

    receipt_key = keys_client.get_signing_key_from_jwt(receipt)
    claims = jwt.decode(receipt, receipt_key, algorithms=["EdDSA"])
    assert claims["consentReceiptID"] == rid
    assert claims["piiPrincipalId"] == pairwise_id(settings.pairwise_key, CLIENT, uid)
    assert claims["action"] == "granted"
    assert jwt.get_unverified_header(receipt)["typ"] == "consent-receipt+jwt"

    # a changed payload under the same signature is refused by PyJWT too
    head, _body, sig = checkpoint.split(".")
    forged = json.dumps({**payload, "tree_size": 2}, separators=(",", ":")).encode()
    forged_b64 = jwt.utils.base64url_encode(forged).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.PyJWS().decode_complete(f"{head}.{forged_b64}.{sig}", key, algorithms=["EdDSA"])


def _legacy_keys_file(settings: Settings) -> dict[str, Any]:
    """Rewrite the keys file the way earlier releases wrote it: the ledger key labelled Ed25519."""
    path = settings.signing_keys_file
    Keyring(path)  # creates it
    data = json.loads(path.read_text())
    for entry in data["keys"]:
        if entry["kty"] == "OKP":
            entry["alg"] = "Ed25519"
    path.write_text(json.dumps(data))
    (ledger_key,) = [e for e in data["keys"] if e["kty"] == "OKP"]
    return ledger_key


def _legacy_sign(private: dict[str, Any], header: dict[str, Any], payload: dict[str, Any]) -> str:
    """A JWS as an earlier release signed it: ``alg`` Ed25519 (joserfc's RFC 9864 algorithm)."""
    key = jwk.import_key({k: v for k, v in private.items() if k not in ("iat", "exp")})
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return str(jws.serialize_compact({"alg": "Ed25519", **header}, body, key, algorithms=["Ed25519"]))


def test_checkpoints_and_receipts_labelled_ed25519_still_verify(
    store: Store,
    settings: Settings,
    client: Any,
    app: Any,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private = _legacy_keys_file(settings)
    make_user(store, id=ALICE)
    # the ledger as an earlier release left it: records and a checkpoint labelled Ed25519
    keyring = Keyring(settings.signing_keys_file)
    for i in range(4):
        journal(store, record(i))
    sequencer = Sequencer(store, keyring, settings)
    sequencer.run_once()
    store.redis.delete(keys.ledger_checkpoints(A))  # replaced by the one the old release signed:
    size = storage.size(store, A)
    old_checkpoint = _legacy_sign(
        private,
        {"kid": private["kid"], "typ": checkpoints.TYP},
        {
            "origin": f"{settings.issuer}/ledger/{A}",
            "log": A,
            "tree_size": size,
            "root_hash": checkpoints.b64(storage.RedisTree(store, A).root(size)),
            "timestamp": 1_700_000_000,
            "kid": private["kid"],
        },
    )
    store.redis.rpush(keys.ledger_checkpoints(A), old_checkpoint)
    # the privacy center marks records under that checkpoint "verified" (its signature checks)
    session_sign_in(client, ALICE)
    html = client.get("/privacy/disclosures").get_data(as_text=True)
    assert html.count('class="verified"') == 4 and "not-verified" not in html
    # ... and a new checkpoint, signed now with the same key (its file entry still says Ed25519)
    journal(store, record(4))
    new_checkpoint = sequencer.run_once().checkpoint
    assert new_checkpoint is not None
    assert jwt.get_unverified_header(new_checkpoint.jws)["alg"] == "EdDSA"
    assert jwt.get_unverified_header(old_checkpoint)["alg"] == "Ed25519"

    # /ledger/v1/keys publishes the same key under its registered name
    published = client.get("/ledger/v1/keys").get_json()["keys"]
    assert [(k["kid"], k["alg"]) for k in published] == [(private["kid"], "EdDSA")]
    assert private["kid"] not in {k["kid"] for k in client.get("/oauth/jwks").get_json()["keys"]}

    # broker ledger verify accepts both labels
    monkeypatch.setenv("BROKER_REDIS_URL", redis_server.url)
    monkeypatch.setenv("BROKER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("BROKER_LOG_LEVEL", "WARNING")
    code = cli.main(["ledger", "verify"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    assert out.startswith("ledger OK: 5 records (0 pruned, verified by hash only), 2 checkpoints verified")
    assert checkpoints.verify(old_checkpoint, checkpoints.public_jwks(keyring)).tree_size == 4

    # a receipt an earlier release signed still verifies; a forged one does not
    old_receipt = _legacy_sign(
        private, {"kid": private["kid"], "typ": receipts.RECEIPT_TYP}, {"consentReceiptID": "r1"}
    )
    assert receipts.verify(old_receipt, keyring) == {"consentReceiptID": "r1"}
    head, _body, sig = old_receipt.split(".")
    forged = jwt.utils.base64url_encode(b'{"consentReceiptID":"r2"}').decode()
    with pytest.raises(Exception, match="bad_signature"):
        receipts.verify(f"{head}.{forged}.{sig}", keyring)

    # rotating rewrites the label: the keys file says EdDSA from then on
    keyring.rotate("EdDSA", 0)
    saved = json.loads(settings.signing_keys_file.read_text())["keys"]
    assert {e["alg"] for e in saved if e["kty"] == "OKP"} == {"EdDSA"}


def test_a_ledger_jws_with_another_alg_is_refused(settings: Settings) -> None:
    """Only the two Ed25519 labels are accepted: an HS256 token over the public key's bytes (the
    classic algorithm-confusion forgery) or an unsigned one is not a checkpoint."""
    keyring = Keyring(settings.signing_keys_file)
    jwks = checkpoints.public_jwks(keyring)
    payload = {"origin": "x", "tree_size": 0, "root_hash": "A" * 43 + "=", "timestamp": 1, "kid": "k"}
    x = jwks["keys"][0]["x"]
    hs = jwt.encode(
        payload, x, algorithm="HS256", headers={"kid": jwks["keys"][0]["kid"], "typ": checkpoints.TYP}
    )
    with pytest.raises(checkpoints.CheckpointInvalid, match="signature does not verify"):
        checkpoints.verify(hs, jwks)
    none = jwt.encode(payload, None, algorithm="none", headers={"typ": checkpoints.TYP})
    with pytest.raises(checkpoints.CheckpointInvalid, match="signature does not verify"):
        checkpoints.verify(none, jwks)


def test_eddsa_here_means_ed25519_only(settings: Settings) -> None:
    """RFC 9864 deprecates ``EdDSA`` because it may also name Ed448: the ledger pins it to Ed25519."""
    ed448 = jwk.generate_key("OKP", "Ed448", private=True, auto_kid=True)
    payload = {"origin": "x", "tree_size": 0, "root_hash": "A" * 43 + "=", "timestamp": 1, "kid": ed448.kid}
    token = jws.serialize_compact(
        {"alg": "EdDSA", "kid": ed448.kid, "typ": checkpoints.TYP},
        json.dumps(payload).encode(),
        ed448,
        algorithms=["EdDSA"],
    )
    public = {"keys": [ed448.as_dict(private=False)]}
    with pytest.raises(checkpoints.CheckpointInvalid, match="requires an Ed25519 OKP key"):
        checkpoints.verify(token, public)
