"""The app registry: OAuth clients of two kinds (App Center ``org_app`` and ``mini_program``).

Validation lives here, not in the HTTP layer, so the platform API, the CLI and the demo apply the
same rules. Client secrets are returned once and stored only as keyed hashes (DESIGN invariant 5);
a rotated secret keeps working until its ``expires`` so deployed apps can roll over. The webhook
secret is a signing key the worker needs back: it is stored sealed (AES-GCM under a key outside
Redis, see broker/events/webhook_secrets.py), never logged.

Writes to the app's own keys (``{a:<client_id>}``) run in one MULTI; indexes in other slots
(``apps_all``, ``developer_apps``) are written afterwards in separate commands.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import redis
from marshmallow import RAISE, Schema
from marshmallow import fields as mf
from marshmallow import validate as mv

from broker.config import Settings
from broker.core.catalog import Catalog
from broker.core.hashing import keyed_hash, new_secret
from broker.core.ids import CLIENT_ID_RE, CLIENT_SECRET_PREFIX, USER_ID, new_client_id
from broker.core.records import App, Installation
from broker.directory import departments
from broker.errors import Conflict, NotFound, ValidationFailed
from broker.events import egress, webhook_secrets
from broker.events import outbox as events
from broker.storage import keys
from broker.storage.store import Store

log = logging.getLogger("broker.apps")

KINDS = ("org_app", "mini_program")
CLIENT_TYPES = ("confidential", "public")
EDITABLE = (
    "name",
    "description",
    "contact",
    "privacy_policy_url",
    "terms_of_service_url",
    "data_label",
    "redirect_uris",
    "scopes",
    "webhook_url",
    "post_logout_redirect_uris",
    "backchannel_logout_uri",
)
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


class InvalidScope(ValidationFailed):
    """A requested scope is not in the catalog (or not for this kind of app)."""

    code = "invalid_scope"
    title = "Invalid scope"


def _is_loopback(host: str | None) -> bool:
    return host in LOOPBACK_HOSTS


def _url_problem(raw: Any, *, allow_loopback_http: bool, allow_query: bool = True) -> str | None:
    """Why ``raw`` is not an acceptable absolute URL, or None (RFC 9700 2.1: exact, no fragment)."""
    if not isinstance(raw, str) or not raw:
        return "must be a non-empty URL"
    if len(raw) > 2000:
        return "must be at most 2000 characters"
    if any(ch.isspace() for ch in raw):
        return "must not contain whitespace"
    try:
        parts = urlsplit(raw)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "is not a valid URL"
    if "#" in raw:
        return "must not contain a fragment"
    if not host or parts.scheme not in {"http", "https"}:
        return "must be an absolute https URL"
    if parts.username or parts.password:
        return "must not contain credentials"
    if parts.scheme == "http" and not (allow_loopback_http and _is_loopback(host)):
        return "must use https (http only for loopback hosts 127.0.0.1, [::1], localhost)"
    if not allow_query and parts.query:
        return "must not have a query"
    return None


def validate(settings: Settings, catalog: Catalog, data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Semantic checks on a complete (merged) app record; returns field -> problems (empty: valid)."""
    problems: dict[str, list[str]] = {}

    def bad(name: str, message: str) -> None:
        problems.setdefault(name, []).append(message)

    kind = data.get("kind")
    client_type = data.get("client_type")
    if kind is not None and kind not in KINDS:
        bad("kind", f"must be one of {', '.join(KINDS)}")
    if client_type is not None and client_type not in CLIENT_TYPES:
        bad("client_type", f"must be one of {', '.join(CLIENT_TYPES)}")
    if kind == "org_app" and client_type == "public":
        bad("client_type", "an org_app must be a confidential client")

    if "privacy_policy_url" in data:
        problem = _url_problem(data["privacy_policy_url"], allow_loopback_http=False)
        if problem:
            bad("privacy_policy_url", problem)
    label = data.get("data_label")
    if label:
        seen: set[str] = set()
        for entry in label:
            name = entry.get("field")
            if name not in catalog.fields or not catalog.fields[name].shareable:
                bad("data_label", f"{name!r} is not a field the broker can share")
            elif name in seen:
                bad("data_label", f"{name!r} is declared twice")
            seen.add(str(name))
    if data.get("terms_of_service_url"):
        problem = _url_problem(data["terms_of_service_url"], allow_loopback_http=False)
        if problem:
            bad("terms_of_service_url", problem)

    uris = data.get("redirect_uris")
    if uris is not None:
        if not isinstance(uris, list):
            bad("redirect_uris", "must be a list of URLs")
        else:
            if kind == "mini_program" and not uris:
                bad("redirect_uris", "a mini_program needs at least one redirect URI")
            if len(set(uris)) != len(uris):
                bad("redirect_uris", "lists a URI twice")
            for i, uri in enumerate(uris):
                problem = _url_problem(uri, allow_loopback_http=True)
                if problem:
                    bad("redirect_uris", f"item {i}: {problem}")

    logout_uris = data.get("post_logout_redirect_uris")
    if logout_uris is not None:
        if not isinstance(logout_uris, list):
            bad("post_logout_redirect_uris", "must be a list of URLs")
        else:
            for i, uri in enumerate(logout_uris):
                problem = _url_problem(uri, allow_loopback_http=True)
                if problem:
                    bad("post_logout_redirect_uris", f"item {i}: {problem}")
    backchannel = data.get("backchannel_logout_uri")
    if backchannel:
        problem = _url_problem(backchannel, allow_loopback_http=not settings.production)
        if problem:
            bad("backchannel_logout_uri", problem)
        elif egress.url_refused(str(backchannel), allow_private=settings.webhook_allow_private):
            bad("backchannel_logout_uri", egress.REFUSED)  # like webhooks: checked again at sending

    webhook = data.get("webhook_url")
    if webhook:
        problem = _url_problem(webhook, allow_loopback_http=not settings.production)
        if problem:
            bad("webhook_url", problem)
        elif egress.url_refused(str(webhook), allow_private=settings.webhook_allow_private):
            # Internal addresses and metadata names (checked again, resolved, at every delivery).
            bad("webhook_url", egress.REFUSED)

    scopes = data.get("scopes")
    if scopes is not None and kind in KINDS:
        audience = "organization" if kind == "org_app" else "individual"
        if not isinstance(scopes, list) or not scopes:
            bad("scopes", "must list at least one catalog scope")
        else:
            unknown = catalog.unknown_scopes(scopes)
            if unknown:
                bad("scopes", f"unknown scope(s): {', '.join(unknown)}")
            wrong = sorted(
                s for s in scopes if s in catalog.scopes and catalog.scopes[s].audience != audience
            )
            if wrong:
                bad("scopes", f"not {audience} scope(s), which a {kind} may request: {', '.join(wrong)}")
            if kind == "mini_program" and "openid" not in scopes:
                bad("scopes", "a mini_program must request openid")
            if len(set(scopes)) != len(scopes):
                bad("scopes", "lists a scope twice")
    return problems


def developer_problems(store: Store, developer_id: Any) -> dict[str, list[str]]:
    """The developer must be an active platform user (the consent page names them)."""
    if not isinstance(developer_id, str) or not developer_id:
        return {}
    if store.redis.hget(keys.user(developer_id), "status") != "active":
        return {"developer_id": ["no active user with this id"]}
    return {}


def raise_problems(problems: dict[str, list[str]], catalog_scopes_bad: bool = False) -> None:
    if not problems:
        return
    unknown_scope = any("unknown scope" in m or "scope(s), which" in m for m in problems.get("scopes", []))
    cls = InvalidScope if unknown_scope or catalog_scopes_bad else ValidationFailed
    raise cls("some fields are invalid", fields=problems)


# -- reading ------------------------------------------------------------------------------------


def get_app(store: Store, client_id: str) -> dict[str, Any] | None:
    if not CLIENT_ID_RE.match(client_id):
        return None
    raw = store.redis.hgetall(keys.app(client_id))
    return App.from_hash(raw).public() if raw else None


def require_app(store: Store, client_id: str) -> dict[str, Any]:
    record = get_app(store, client_id)
    if record is None:
        raise NotFound(f"no app with client id {client_id!r}")
    return record


def list_apps(store: Store, developer_id: str | None = None) -> list[dict[str, Any]]:
    """Every app (registration order), or one developer's apps."""
    if developer_id is not None:
        client_ids = sorted(store.redis.smembers(keys.developer_apps(developer_id)))
    else:
        client_ids = store.redis.zrange(keys.apps_all(), 0, -1)
    out = []
    for client_id in client_ids:
        record = get_app(store, client_id)
        if record is not None:
            out.append(record)
    return out


def _uri_list(raw: str | None) -> list[str]:
    return App.from_hash({"redirect_uris": raw or ""}).redirect_uris or []


def redirect_uris(store: Store, client_id: str) -> list[str]:
    """One app's registered redirect URIs (one HGET; nothing for an unknown or empty client id)."""
    if not client_id:
        return []
    return _uri_list(store.redis.hget(keys.app(client_id), "redirect_uris"))


def all_redirect_uris(store: Store) -> list[str]:
    """The redirect URIs of every registered app (one pipelined read per 500 apps)."""
    client_ids = store.redis.zrange(keys.apps_all(), 0, -1)
    out: list[str] = []
    for start in range(0, len(client_ids), 500):
        with store.redis.pipeline(transaction=False) as pipe:
            for cid in client_ids[start : start + 500]:
                pipe.hget(keys.app(cid), "redirect_uris")
            for raw in pipe.execute():
                out.extend(_uri_list(raw))
    return out


def redirect_uris_version(store: Store) -> str:
    """The current value of :func:`keys.apps_redirect_version` ("" before any change): what is
    derived from :func:`all_redirect_uris` stays right while this does not change."""
    return str(store.redis.get(keys.apps_redirect_version()) or "")


def _redirect_uris_changed(store: Store) -> None:
    # After the write it announces, so whoever reads the new value also reads the new URIs; a new
    # random value (not a counter), so a Redis restored from an older snapshot never shows a value
    # some process cached for other data.
    store.redis.set(keys.apps_redirect_version(), secrets.token_hex(8))


def secrets_meta(store: Store, client_id: str, now: int) -> list[dict[str, Any]]:
    """Created and expiry times of the app's live client secrets (never the secrets or their
    hashes), the permanent one last."""
    rows = [json.loads(v) for v in store.redis.hvals(keys.app_secrets(client_id))]
    live = [r for r in rows if r.get("expires") is None or int(r["expires"]) > now]
    return sorted(live, key=lambda r: (r.get("expires") is None, r.get("created", 0)))


def installation_org_ids(store: Store, client_id: str) -> list[str]:
    """The organizations the app is installed in (sorted), from its index."""
    return sorted(store.redis.smembers(keys.app_installations(client_id)))


def grant_count(store: Store, client_id: str) -> int:
    """How many people hold a grant to the app (SCARD of its grant index)."""
    return int(store.redis.scard(keys.app_grants(client_id)))


def app_and_secret_hashes(
    store: Store, client_id: str
) -> tuple[dict[str, Any], dict[str, int | None]] | None:
    """The app (as ``get_app`` gives it) and its client-secret hashes with their expiry (None: no
    expiry), in one round trip: what client authentication needs. None for an unknown app."""
    if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
        return None
    with store.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.app(client_id))
        pipe.hgetall(keys.app_secrets(client_id))
        raw, secrets_raw = pipe.execute()
    if not raw:
        return None
    record = App.from_hash(raw).public()
    hashes: dict[str, int | None] = {}
    for h, meta in secrets_raw.items():
        try:
            exp = json.loads(meta).get("expires")
        except (ValueError, AttributeError):
            continue
        hashes[h] = int(exp) if isinstance(exp, int | float) else None
    return record, hashes


def developer_of(store: Store, client_id: str) -> str:
    """The app's developer id ("" when unknown): one HGET, for the id_token disclosure record."""
    return str(store.redis.hget(keys.app(client_id), "developer_id") or "")


# -- registration -------------------------------------------------------------------------------


def register_app(
    store: Store, settings: Settings, catalog: Catalog, data: Mapping[str, Any], *, needs_review: bool = False
) -> tuple[dict[str, Any], str | None, str]:
    """Create an app; returns (record, client secret or None for public clients, webhook secret).

    The secrets are shown to the caller once: only the client secret's keyed hash is kept.
    ``needs_review``: a developer's org app waits for the operator's approval (``review`` is
    ``pending``) before any App Center lists it; an app the operator registers itself (platform
    API, demo) is approved by that act.
    """
    required = ("kind", "client_type", "name", "developer_id", "contact", "privacy_policy_url", "scopes")
    problems = validate(settings, catalog, data)
    for name in required:
        if data.get(name) in (None, ""):
            problems.setdefault(name, []).append("is required")
    developer_id = data.get("developer_id")
    for name, messages in developer_problems(store, developer_id).items():
        problems.setdefault(name, []).extend(messages)
    raise_problems(problems)

    now = int(time.time())
    client_id = new_client_id()
    record: dict[str, Any] = {
        "client_id": client_id,
        "name": data["name"],
        "description": data.get("description") or "",
        "kind": data["kind"],
        "client_type": data["client_type"],
        "developer_id": developer_id,
        "contact": data["contact"],
        "privacy_policy_url": data["privacy_policy_url"],
        "redirect_uris": list(data.get("redirect_uris") or []),
        "scopes": list(data["scopes"]),
        "webhook_url": data.get("webhook_url") or "",
        "post_logout_redirect_uris": list(data.get("post_logout_redirect_uris") or []),
        "backchannel_logout_uri": data.get("backchannel_logout_uri") or "",
        "terms_of_service_url": data.get("terms_of_service_url") or "",
        "data_label": list(data.get("data_label") or []),
        "status": "active",
        "review": "pending" if needs_review and data["kind"] == "org_app" else "approved",
        "created_at": now,
        "updated_at": now,
    }
    client_secret = new_secret(CLIENT_SECRET_PREFIX) if record["client_type"] == "confidential" else None
    webhook_secret = webhook_secrets.new_secret()
    sealed = webhook_secrets.seal(
        webhook_secrets.sealer_for(settings), client_id, "webhook_secret", webhook_secret
    )
    pipe = store.redis.pipeline(transaction=True)
    pipe.hset(keys.app(client_id), mapping=App(**record).to_hash())
    if client_secret is not None:
        entry = json.dumps({"created": now, "expires": None})
        pipe.hset(keys.app_secrets(client_id), keyed_hash(settings.token_hash_key, client_secret), entry)
    # Sealed in the app hash (the key we sign webhooks with; never logged, never shown by
    # public_view); the worker reads it with the app record in one HMGET and opens it.
    pipe.hset(keys.app(client_id), "webhook_secret", sealed)
    pipe.execute()
    # Indexes live in other slots: written after the record, each a single command.
    store.redis.zadd(keys.apps_all(), {client_id: now})
    store.redis.sadd(keys.developer_apps(str(developer_id)), client_id)
    _redirect_uris_changed(store)
    return record, client_secret, webhook_secret


def update_app(
    store: Store, settings: Settings, catalog: Catalog, client_id: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Change editable fields; kind, client type and developer are fixed at registration."""
    current = require_app(store, client_id)
    fixed = sorted(set(changes) - set(EDITABLE))
    problems: dict[str, list[str]] = {name: ["cannot be changed"] for name in fixed}
    merged = {**current, **{k: v for k, v in changes.items() if k in EDITABLE}}
    for name, messages in validate(settings, catalog, merged).items():
        if name in changes:
            problems.setdefault(name, []).extend(messages)
    for name in ("name", "contact", "privacy_policy_url"):
        if name in changes and changes[name] in (None, ""):
            problems.setdefault(name, []).append("must not be empty")
    raise_problems(problems)
    # None is stored as an empty string, as it always was.
    edits: dict[str, Any] = {k: "" if v is None else v for k, v in changes.items() if k in EDITABLE}
    update = App(**edits, updated_at=int(time.time()))
    flat = [x for item in update.to_hash().items() for x in item]
    done = store.lua("hset_if_exists")(keys=[keys.app(client_id)], args=flat)
    if not done:
        raise NotFound(f"no app with client id {client_id!r}")
    if "redirect_uris" in changes:
        _redirect_uris_changed(store)
    if "scopes" in changes:
        _shrink_installations(store, client_id, set(merged["scopes"]))
    return require_app(store, client_id)


def _shrink_installations(store: Store, client_id: str, allowed: set[str]) -> None:
    """An installation may never hold a scope the app no longer requests."""
    for org_id in store.redis.smembers(keys.app_installations(client_id)):
        key = keys.installation(client_id, org_id)
        scopes = Installation.from_hash({"scopes": store.redis.hget(key, "scopes") or ""}).scopes or []
        kept = [s for s in scopes if s in allowed]
        if kept != scopes:
            change = Installation(scopes=kept, updated_at=int(time.time())).to_hash()
            store.lua("hset_if_exists")(keys=[key], args=[x for item in change.items() for x in item])


def _set_status(store: Store, client_id: str, status: str, event_type: str) -> dict[str, Any]:
    key = keys.app(client_id)
    with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                current = pipe.hget(key, "status")
                if current is None:
                    raise NotFound(f"no app with client id {client_id!r}")
                if current == status:
                    raise Conflict(f"the app is already {status}")
                pipe.multi()
                pipe.hset(key, mapping={"status": status, "updated_at": str(int(time.time()))})
                events.emit(pipe, client_id, event_type, {"status": status})
                pipe.execute()
                break
            except redis.WatchError:
                continue
    return require_app(store, client_id)


def suspend_app(store: Store, client_id: str) -> dict[str, Any]:
    """Operator switch: every token of the app stops working at once (token checks read status),
    then every grant and installation of the app starts a new token generation and the token keys
    are deleted, so restoring the app revives none of them: it must get new ones (people's grants
    and the installations stay)."""
    record = _set_status(store, client_id, "suspended", "app.suspended")
    from broker.tokens.service import delete_app_tokens, revoke_grant_tokens

    owners = [keys.grant(client_id, uid) for uid in store.redis.sscan_iter(keys.app_grants(client_id))]
    owners += [
        keys.installation(client_id, oid) for oid in store.redis.smembers(keys.app_installations(client_id))
    ]
    for owner in owners:
        owner_id = store.redis.hget(owner, "id")
        if owner_id:
            revoke_grant_tokens(store, owner, str(owner_id))
    delete_app_tokens(store, client_id)
    return record


def restore_app(store: Store, client_id: str) -> dict[str, Any]:
    return _set_status(store, client_id, "active", "app.restored")


# -- operator review of org apps ----------------------------------------------------------------

REVIEWS = ("pending", "approved", "rejected")


def review_of(record: Mapping[str, Any]) -> str:
    """An app registered before reviews existed has no ``review`` field: it was listed then, so it
    stays approved."""
    value = record.get("review")
    return str(value) if value in REVIEWS else "approved"


def listed(record: Mapping[str, Any]) -> bool:
    """Whether App Centers list the app: an active org app the operator approved."""
    return (
        record.get("kind") == "org_app"
        and record.get("status") == "active"
        and review_of(record) == "approved"
    )


def review_app(store: Store, client_id: str, decision: str, reason: str = "") -> dict[str, Any]:
    """The operator's decision on an org app: ``approve`` lists it in every App Center, ``reject``
    (with a reason the developer sees) keeps it out. Either can be taken again later; rejecting an
    approved app does not remove existing installations (suspend the app for that)."""
    record = require_app(store, client_id)
    if record["kind"] != "org_app":
        raise Conflict("only App Center apps (org_app) are reviewed")
    if decision not in ("approve", "reject"):
        raise ValidationFailed("some fields are invalid", fields={"decision": ["must be approve or reject"]})
    if decision == "reject" and not reason.strip():
        raise ValidationFailed("some fields are invalid", fields={"reason": ["say why, for the developer"]})
    review = "approved" if decision == "approve" else "rejected"
    store.redis.hset(
        keys.app(client_id),
        mapping={"review": review, "review_reason": reason.strip(), "updated_at": str(int(time.time()))},
    )
    log.info("app %s: review %s", client_id, review)
    return require_app(store, client_id)


def apps_in_review(store: Store, review: str = "pending") -> list[dict[str, Any]]:
    return [a for a in list_apps(store) if a["kind"] == "org_app" and review_of(a) == review]


def delete_app(store: Store, client_id: str) -> None:
    """Delete the app and everything bound to it: secrets, grants, installations, tokens, indexes.

    The disclosure journal is kept: its records still belong in the ledger.
    """
    record = require_app(store, client_id)
    uids = store.redis.smembers(keys.app_grants(client_id))
    org_ids = store.redis.smembers(keys.app_installations(client_id))
    from broker.ledger import logs as ledger_logs

    keep = {keys.journal(client_id, log) for log in ledger_logs.names(store)} | {
        keys.legacy_journal(client_id)
    }
    doomed = {k for k in store.redis.scan_iter(match=f"{keys.app_tag(client_id)}:*", count=500)} - keep
    doomed |= {keys.app(client_id), keys.app_secrets(client_id)}
    pipe = store.redis.pipeline(transaction=True)
    pipe.delete(keys.app(client_id))  # first, so every token check fails from here on
    pipe.delete(*sorted(doomed))
    pipe.execute()
    for uid in uids:
        store.redis.srem(keys.user_grants(uid), client_id)
    for org_id in org_ids:
        store.redis.srem(keys.org_installations(org_id), client_id)
        departments.drop_coverage(store, org_id, client_id)  # its departments and coverage set
    store.redis.zrem(keys.apps_all(), client_id)
    if record.get("developer_id"):
        store.redis.srem(keys.developer_apps(record["developer_id"]), client_id)
    _redirect_uris_changed(store)


# -- secrets ------------------------------------------------------------------------------------

# Rotation in one script (broker/storage/lua/app_secret_rotate.lua): retire every live secret
# (expires = now + overlap), forget expired ones, add the new one.


def rotate_secret(store: Store, settings: Settings, client_id: str) -> tuple[str, int]:
    """Issue a new client secret; the old one works until the returned time (unix seconds)."""
    record = require_app(store, client_id)
    if record["client_type"] != "confidential":
        raise Conflict("a public client has no client secret")
    now = int(time.time())
    retire_at = now + settings.secret_overlap_seconds
    secret = new_secret(CLIENT_SECRET_PREFIX)
    entry = json.dumps({"created": now, "expires": None})
    store.lua("app_secret_rotate")(
        keys=[keys.app_secrets(client_id)],
        args=[now, retire_at, keyed_hash(settings.token_hash_key, secret), entry],
    )
    return secret, retire_at


def revoke_previous_secrets(store: Store, client_id: str) -> int:
    """End every retiring client secret now; only the current one keeps working.

    For a leaked secret: rotate, then revoke the previous ones, and the leaked secret fails at the
    very next token request. Tokens already issued are not touched (revoke them, or the grants, for
    that). Returns how many secrets were still valid and now are not.
    """
    record = require_app(store, client_id)
    if record["client_type"] != "confidential":
        raise Conflict("a public client has no client secret")
    revoked = int(
        store.lua("app_secret_revoke_previous")(keys=[keys.app_secrets(client_id)], args=[int(time.time())])
    )
    log.info("client %s: %d previous client secret(s) revoked", client_id, revoked)
    return revoked


def verify_secret(store: Store, settings: Settings, client_id: str, secret: str) -> bool:
    """True if ``secret`` is a current (or still-overlapping) secret of the app.

    The lookup key is an HMAC of the secret, so no secret comparison happens on attacker-chosen
    prefixes; an unknown client and a wrong secret take the same path.
    """
    if not CLIENT_ID_RE.match(client_id) or not secret.startswith(CLIENT_SECRET_PREFIX):
        return False
    raw = store.redis.hget(keys.app_secrets(client_id), keyed_hash(settings.token_hash_key, secret))
    if raw is None:
        return False
    expires = json.loads(raw).get("expires")
    return expires is None or int(expires) > time.time()


def webhook_secret(store: Store, settings: Settings, client_id: str) -> str | None:
    """The app's webhook signing secret, opened (as issued: ``whsec_...``, or ``brk_whsec_...`` for
    an app registered before Standard Webhooks); never log it."""
    value = store.redis.hget(keys.app(client_id), "webhook_secret")
    opened = webhook_secrets.open_field(
        webhook_secrets.sealer_for(settings), client_id, "webhook_secret", value
    )
    return opened or None


def rotate_webhook_secret(store: Store, settings: Settings, client_id: str) -> str:
    """A new signing secret; receivers get signatures with both until the overlap ends."""
    require_app(store, client_id)
    sealer = webhook_secrets.sealer_for(settings)
    secret = webhook_secrets.new_secret()
    old = webhook_secret(store, settings, client_id) or ""
    store.redis.hset(
        keys.app(client_id),
        mapping={
            "webhook_secret": webhook_secrets.seal(sealer, client_id, "webhook_secret", secret),
            "webhook_secret_previous": webhook_secrets.seal(
                sealer, client_id, "webhook_secret_previous", old
            ),
            "webhook_secret_previous_expires": str(int(time.time()) + settings.secret_overlap_seconds),
        },
    )
    return secret


def previous_webhook_secret_expires(store: Store, client_id: str, now: float | None = None) -> int | None:
    """When the rotated-out webhook secret stops signing deliveries (unix seconds), or None when
    deliveries carry only the current secret's signature."""
    raw, expires = store.redis.hmget(
        keys.app(client_id), ["webhook_secret_previous", "webhook_secret_previous_expires"]
    )
    if not raw or not expires or not str(expires).isdigit():
        return None
    current = time.time() if now is None else now
    return int(expires) if int(expires) > current else None


def revoke_previous_webhook_secret(store: Store, client_id: str) -> bool:
    """Stop signing deliveries with the rotated-out webhook secret now (the next delivery carries
    only the current secret's signature). True if a previous secret was still in use."""
    require_app(store, client_id)
    live = previous_webhook_secret_expires(store, client_id) is not None
    store.redis.hdel(keys.app(client_id), "webhook_secret_previous", "webhook_secret_previous_expires")
    log.info("client %s: previous webhook secret revoked (was in use: %s)", client_id, live)
    return live


def public_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The app as the platform API shows it (no secrets)."""
    names = (
        "client_id",
        "name",
        "description",
        "kind",
        "client_type",
        "developer_id",
        "contact",
        "privacy_policy_url",
        "redirect_uris",
        "scopes",
        "webhook_url",
        "post_logout_redirect_uris",
        "backchannel_logout_uri",
        "terms_of_service_url",
        "data_label",
        "status",
        "review",
        "review_reason",
        "created_at",
        "updated_at",
    )
    out = {name: record.get(name) for name in names}
    out["review"] = review_of(record)
    out["terms_of_service_url"] = out["terms_of_service_url"] or ""
    out["review_reason"] = out["review_reason"] or ""
    out["data_label"] = list(out["data_label"] or [])
    return out


def requested_fields(catalog: Catalog, record: Mapping[str, Any]) -> list[str]:
    """The fields the app's registered scopes can reach, in catalog order."""
    reachable = catalog.fields_of(s for s in record.get("scopes") or [] if s in catalog.scopes)
    return [f for f in catalog.fields if f in reachable]


def received_beyond_label(received: Iterable[str], record: Mapping[str, Any]) -> list[str]:
    """Fields the ledger shows the app received that its data label does not declare."""
    declared = {e["field"] for e in record.get("data_label") or []}
    return sorted(set(received) - declared - {"user_id"})


def label_drift(catalog: Catalog, record: Mapping[str, Any]) -> list[str]:
    """Fields the app asks for (through its scopes) that its data label does not declare: such an
    app is flagged to the operator, and people and admins see the gap. ``user_id`` is the pairwise
    id every sign-in carries; it needs no declaration."""
    declared = {e["field"] for e in record.get("data_label") or []}
    return [f for f in requested_fields(catalog, record) if f not in declared and f != "user_id"]


def scopes_of(record: Mapping[str, Any]) -> list[str]:
    return list(record.get("scopes") or [])


def subset_problem(requested: Iterable[str], allowed: Iterable[str]) -> str | None:
    extra = sorted(set(requested) - set(allowed))
    return f"not requested by the app: {', '.join(extra)}" if extra else None


# -- input schemas (platform API and developer console) ------------------------------------------


class LabelEntrySchema(Schema):
    """One line of an app's data label."""

    class Meta:
        unknown = RAISE

    field = mf.String(required=True, validate=mv.Length(min=1, max=64))
    purpose = mf.String(required=True, validate=mv.Length(min=1, max=300))
    retention_days = mf.Integer(
        required=True,
        validate=mv.Range(min=0, max=3650),
        metadata={"description": "how long the app keeps the field; 0: not kept beyond the request"},
    )


class AppCreateSchema(Schema):
    """An app registration: the platform API sends ``developer_id``; the developer console
    excludes it (the developer is the signed-in person)."""

    class Meta:
        unknown = RAISE

    kind = mf.String(required=True, validate=mv.OneOf(KINDS))
    client_type = mf.String(required=True, validate=mv.OneOf(CLIENT_TYPES))
    name = mf.String(required=True, validate=mv.Length(min=1, max=100))
    description = mf.String(load_default="", validate=mv.Length(max=1000))
    developer_id = mf.String(required=True, validate=mv.Regexp(USER_ID))
    contact = mf.String(required=True, validate=mv.Length(min=1, max=200))
    privacy_policy_url = mf.String(required=True, validate=mv.Length(min=1, max=2000))
    terms_of_service_url = mf.String(load_default="", validate=mv.Length(max=2000))
    data_label = mf.List(mf.Nested(LabelEntrySchema), load_default=list, validate=mv.Length(max=50))
    redirect_uris = mf.List(
        mf.String(validate=mv.Length(min=1, max=2000)),
        load_default=list,
        validate=mv.Length(max=20),
    )
    scopes = mf.List(
        mf.String(validate=mv.Length(min=1, max=64)),
        required=True,
        validate=mv.Length(min=1, max=50),
    )
    webhook_url = mf.String(load_default="", validate=mv.Length(max=2000))
    post_logout_redirect_uris = mf.List(
        mf.String(validate=mv.Length(min=1, max=2000)), load_default=list, validate=mv.Length(max=20)
    )
    backchannel_logout_uri = mf.String(load_default="", validate=mv.Length(max=2000))


class AppUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    name = mf.String(validate=mv.Length(min=1, max=100))
    description = mf.String(validate=mv.Length(max=1000))
    contact = mf.String(validate=mv.Length(min=1, max=200))
    privacy_policy_url = mf.String(validate=mv.Length(min=1, max=2000))
    terms_of_service_url = mf.String(validate=mv.Length(max=2000))
    data_label = mf.List(mf.Nested(LabelEntrySchema), validate=mv.Length(max=50))
    redirect_uris = mf.List(mf.String(validate=mv.Length(min=1, max=2000)), validate=mv.Length(max=20))
    scopes = mf.List(mf.String(validate=mv.Length(min=1, max=64)), validate=mv.Length(min=1, max=50))
    webhook_url = mf.String(validate=mv.Length(max=2000))
    post_logout_redirect_uris = mf.List(
        mf.String(validate=mv.Length(min=1, max=2000)), validate=mv.Length(max=20)
    )
    backchannel_logout_uri = mf.String(validate=mv.Length(max=2000))
