"""Consent receipts: a signed record, given to the person, of each consent they gave, changed or withdrew.

The payload carries the fields of the Kantara Initiative Consent Receipt Specification 1.1
(``version`` "KI-CR-v1.1.0") plus the broker's own ``action``, ``client_id``, ``scopes``, ``fields``
and ``consent_version``. It is signed as a compact JWS with the keyring's current Ed25519 key
(``alg`` "EdDSA", ``typ`` "consent-receipt+jwt", ``kid`` header), so anyone can check it against
the ledger keys at ``/ledger/v1/keys`` long after the grant is gone: retired ledger keys stay
published. Receipts written by earlier releases say ``alg`` "Ed25519" and still verify here.

Receipts are stored per person under the ``{u:<uid>}`` tag: ``keys.receipts_index`` orders them by
time, ``keys.receipts_docs`` holds the JWS. Both are written in one MULTI.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

from joserfc import jws

from broker.core.keyring import LEDGER_ALG as RECEIPT_ALG
from broker.core.keyring import LEDGER_SIGNING, LEDGER_VERIFYING
from broker.core.pairwise import pairwise_id
from broker.storage import keys

if TYPE_CHECKING:
    from broker.config import Settings
    from broker.core.catalog import Catalog
    from broker.core.keyring import Keyring
    from broker.storage.store import Store

Action = Literal["granted", "changed", "revoked"]
ACTIONS: tuple[str, ...] = ("granted", "changed", "revoked")
KANTARA_VERSION = "KI-CR-v1.1.0"
RECEIPT_TYP = "consent-receipt+jwt"

_COLLECTION = {
    "granted": "Explicit opt-in on the broker's consent screen, field by field",
    "changed": "Change made by the person in the broker's consent screen or privacy center",
    "revoked": "Withdrawal made by the person (or on their behalf) in the broker's privacy center",
}


def _split(value: str | list[str] | None) -> list[str]:
    """Names from a stored hash field (space-separated) or a decoded record (a list)."""
    items = value if isinstance(value, list) else (value or "").split()
    return sorted(set(items))


def _label(grant_record: dict[str, Any]) -> list[dict[str, Any]]:
    """The grant's copy of the app's data label (a list, or its stored JSON)."""
    value = grant_record.get("label")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [e for e in value or [] if isinstance(e, dict) and isinstance(e.get("field"), str)]


def build_payload(
    app_record: dict[str, str],
    grant_record: dict[str, str],
    action: str,
    *,
    settings: Settings,
    public_key: dict[str, Any],
    catalog: Catalog | None = None,
    now: float | None = None,
    receipt_id: str | None = None,
) -> dict[str, Any]:
    """The unsigned receipt; pure, so tests can check every Kantara field."""
    if action not in ACTIONS:
        raise ValueError(f"unknown receipt action {action!r}; expected one of {', '.join(ACTIONS)}")
    user_id = grant_record.get("user_id", "")
    if not user_id:
        raise ValueError("the grant record has no user_id")
    now = time.time() if now is None else now
    fields = _split(grant_record.get("fields"))
    scopes = _split(grant_record.get("scopes"))
    sensitive_fields: list[str] = []
    if catalog is not None:
        sensitive_fields = [
            f for f in fields if f in catalog.fields and catalog.fields[f].sensitivity == "high"
        ]
    app_name = app_record.get("name") or app_record.get("client_id", "")
    privacy_center = f"{settings.issuer}/privacy"
    return {
        "version": KANTARA_VERSION,
        "jurisdiction": settings.receipt_jurisdiction,
        "consentTimestamp": int(now),
        "collectionMethod": _COLLECTION[action],
        "consentReceiptID": receipt_id or str(uuid.uuid4()),
        "publicKey": public_key,
        "language": "en",
        # The id the app knows the person by (pairwise, OIDC Core 8.1), never the platform's own:
        # the person can show the receipt to the app, and two apps cannot link it.
        "piiPrincipalId": pairwise_id(settings.pairwise_key, app_record.get("client_id", ""), user_id),
        "piiControllers": [
            {
                "piiController": settings.receipt_controller,
                "onBehalf": False,
                "contact": settings.receipt_contact,
                "email": settings.receipt_contact if "@" in settings.receipt_contact else "",
                **({"address": settings.receipt_address} if settings.receipt_address else {}),
                **({"phone": settings.receipt_phone} if settings.receipt_phone else {}),
                "piiControllerUrl": settings.issuer,
                "role": "controller",
            },
            {
                "piiController": app_name,
                "onBehalf": False,
                "contact": app_record.get("contact", ""),
                "piiControllerUrl": app_record.get("privacy_policy_url", ""),
                "role": "recipient",
                "client_id": app_record.get("client_id", ""),
                "developer": app_record.get("developer_id", ""),
            },
        ],
        "policyUrl": app_record.get("privacy_policy_url", ""),
        "services": [
            {
                "service": app_name,
                "purposes": [
                    {
                        "purpose": grant_record.get("purpose", ""),
                        "purposeCategory": ["Third-party application access"],
                        "consentType": "EXPLICIT",
                        "piiCategory": fields,
                        "primaryPurpose": True,
                        "termination": privacy_center,
                        "thirdPartyDisclosure": True,
                        "thirdPartyName": app_name,
                    },
                    # The app's own declaration for each field (its data label), as consented to.
                    *(
                        {
                            "purpose": entry.get("purpose", ""),
                            "purposeCategory": ["Declared by the app"],
                            "consentType": "EXPLICIT",
                            "piiCategory": [entry["field"]],
                            "primaryPurpose": False,
                            "termination": f"kept by the app for {entry.get('retention_days')} days",
                            "thirdPartyDisclosure": True,
                            "thirdPartyName": app_name,
                        }
                        for entry in _label(grant_record)
                        if entry.get("field") in fields
                    ),
                ],
            }
        ],
        "sensitive": bool(sensitive_fields),
        "spiCat": sensitive_fields,
        "action": action,
        "client_id": app_record.get("client_id", grant_record.get("client_id", "")),
        "grant_id": grant_record.get("id", ""),
        "scopes": scopes,
        "fields": fields,
        "retention_days": {
            e["field"]: e.get("retention_days") for e in _label(grant_record) if e["field"] in fields
        },
        "consent_version": grant_record.get("consent_version", ""),
    }


def sign(payload: dict[str, Any], keyring: Keyring) -> str:
    key = keyring.signing_key(RECEIPT_ALG)
    header = {"alg": RECEIPT_ALG, "kid": key.kid, "typ": RECEIPT_TYP}
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    return str(jws.serialize_compact(header, body, key, registry=LEDGER_SIGNING))


def unverified_payload(token: str) -> dict[str, Any]:
    """Decode a receipt we stored ourselves (for listings); verification is the reader's job."""
    part = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def verify(token: str, keyring: Keyring) -> dict[str, Any]:
    """Verify a receipt against the published keys; raises joserfc errors when it does not verify."""
    obj = jws.deserialize_compact(token, keyring.verification_key_set(), registry=LEDGER_VERIFYING)
    data: dict[str, Any] = json.loads(obj.payload)
    return data


def issue_receipt(
    store: Store,
    app_record: dict[str, str],
    grant_record: dict[str, str],
    action: str,
    *,
    keyring: Keyring | None = None,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    now: float | None = None,
) -> str:
    """Sign and store a receipt for the person of ``grant_record``; returns the receipt id.

    Call it right after the grant change is committed (for "revoked", with the grant as it was).
    ``keyring`` and ``catalog`` default to the configured ones (loaded once per process).
    """
    if settings is None:
        raise ValueError("issue_receipt outside a request needs settings=")
    if keyring is None:
        from broker.core.keyring import Keyring

        keyring = Keyring.shared(settings.signing_keys_file, create=not settings.production)
    if catalog is None:
        from broker.core import catalog as catalog_mod

        catalog = catalog_mod.load_once(settings.scopes_dir)  # the configured catalog
    key = keyring.signing_key(RECEIPT_ALG)
    now = time.time() if now is None else now
    payload = build_payload(
        app_record,
        grant_record,
        action,
        settings=settings,
        public_key=dict(key.as_dict(private=False)),
        catalog=catalog,
        now=now,
    )
    token = sign(payload, keyring)
    receipt_id: str = payload["consentReceiptID"]
    user_id = grant_record["user_id"]  # the receipt names the person by the app's pairwise id
    pipe = store.redis.pipeline(transaction=True)
    pipe.zadd(keys.receipts_index(user_id), {f"{int(now * 1000):013d}:{receipt_id}": 0})
    pipe.hset(keys.receipts_docs(user_id), receipt_id, token)
    pipe.execute()
    return receipt_id


def list_receipts(
    store: Store, user_id: str, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; ``cursor`` is the index member last returned (exclusive). Returns (items, next)."""
    upper = f"({cursor}" if cursor else "+"
    members: list[str] = store.redis.zrevrangebylex(
        keys.receipts_index(user_id), upper, "-", start=0, num=limit + 1
    )
    page, more = members[:limit], len(members) > limit
    ids = [m.split(":", 1)[1] for m in page]
    docs = store.redis.hmget(keys.receipts_docs(user_id), ids) if ids else []
    items = []
    for receipt_id, token in zip(ids, docs, strict=True):
        if token is None:
            continue
        payload = unverified_payload(token)
        items.append(
            {
                "id": receipt_id,
                "time": payload.get("consentTimestamp"),
                "app": payload.get("client_id"),
                "app_name": payload.get("services", [{}])[0].get("service"),
                "action": payload.get("action"),
            }
        )
    return items, (page[-1] if more and page else None)


def get_receipt(store: Store, user_id: str, receipt_id: str) -> str | None:
    token: str | None = store.redis.hget(keys.receipts_docs(user_id), receipt_id)
    return token
