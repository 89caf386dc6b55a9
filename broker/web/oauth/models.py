"""Read-only views of apps and grants for the protocol code.

The apps and consent packages own these records (broker.apps.registry, broker.consent.grants);
the loaders here only shape them for Authlib. An installation is read by the script that writes its
token (broker.tokens.service.issue_installation_token).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidScopeError

from broker.apps import registry as apps
from broker.consent import grants
from broker.core.hashing import keyed_hash, same
from broker.core.ids import CLIENT_ID_RE

if TYPE_CHECKING:
    from broker.storage.store import Store

CONFIDENTIAL_METHODS = ("client_secret_basic", "client_secret_post")
# OIDC Core 11: asks for a refresh token usable while the person is away. Every code-flow token
# response already carries one (rotated on use), so the value is accepted and needs nothing more; it
# is not a scope of any token (docs/architecture.md, "Scopes a client asks for").
OFFLINE_ACCESS = "offline_access"
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ); also what an error description may carry.
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,64}$")


def _names(scopes: list[str]) -> str:
    return ", ".join(scopes)


def requested_scopes(scope: str | None, known: set[str] | frozenset[str]) -> list[str] | None:
    """The scope values a request asks for that this server knows, in order, without repeats.

    OIDC Core 3.1.2.1: unknown scope values are ignored (``openid profile email`` proceeds as
    ``openid profile``), and so is ``offline_access`` (see ``OFFLINE_ACCESS``). None when no scope was
    sent; ``invalid_scope`` naming them when every value is unknown, or when a value is not a scope
    token at all (then without echoing it).
    """
    if not scope or not scope.strip():
        return None
    values = list(dict.fromkeys(scope.split()))
    if any(not _SCOPE_TOKEN.match(v) for v in values):
        raise InvalidScopeError("The scope parameter holds a value that is not a valid scope token.")
    kept = [v for v in values if v in known]
    if not kept:
        if values == [OFFLINE_ACCESS]:
            raise InvalidScopeError(
                "offline_access alone grants nothing: ask for openid (and profile) as well."
            )
        raise InvalidScopeError(f"Unknown scope: {_names([v for v in values if v != OFFLINE_ACCESS])}.")
    return kept


@dataclass
class Client(ClientMixin):
    """An app as an Authlib client. ``allowed_scopes`` = its registered scopes of audience individual."""

    client_id: str
    name: str
    kind: str  # org_app | mini_program
    client_type: str  # confidential | public
    status: str
    redirect_uris: list[str]
    scopes: list[str]
    individual_scopes: list[str] = field(default_factory=list)
    known_scopes: frozenset[str] = frozenset()  # every scope of the catalog, whatever its audience
    secret_hashes: dict[str, int | None] = field(default_factory=dict)
    hash_key: str = field(default="", repr=False)

    @property
    def public(self) -> bool:
        return self.client_type == "public"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The scope of a code-flow request: unknown values dropped (``requested_scopes``); what is
        left must be individual scopes the app registered, else ``invalid_scope`` naming them."""
        wanted = requested_scopes(scope, self.known_scopes)
        if wanted is None:
            return " ".join(self.individual_scopes) or None
        refused = [s for s in wanted if s not in self.individual_scopes]
        if refused:
            raise InvalidScopeError(
                f"This app may not ask for: {_names(refused)} (not registered for it, or not a scope "
                "a person grants)."
            )
        return " ".join(wanted)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact string match (RFC 9700 4.1.3)

    def check_client_secret(self, client_secret: str) -> bool:
        if self.public or not client_secret:
            return False
        candidate = keyed_hash(self.hash_key, client_secret)
        now = time.time()
        ok = False
        for stored, expires in self.secret_hashes.items():
            live = expires is None or expires > now
            ok = (same(candidate, stored) and live) or ok  # compare against every entry: constant work
        return ok

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.public:
            return method == "none"
        return method in CONFIDENTIAL_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type in ("authorization_code", "refresh_token"):
            return True
        if grant_type == "client_credentials":
            return self.kind == "org_app" and not self.public
        return False


@dataclass(frozen=True)
class Grant:
    id: str
    client_id: str
    user_id: str
    scopes: frozenset[str]
    fields: frozenset[str]


def load_client(
    store: Store,
    client_id: str,
    *,
    hash_key: str | None = None,
    individual: set[str] | None = None,
    known: set[str] | None = None,
) -> Client | None:
    """The app, or None if unknown. Defaults come from the running app: the token hash key, the
    catalog scopes of audience individual (the only ones the code flow may grant) and all of them."""
    if hash_key is None or individual is None or known is None:
        from broker.web.shared import context as web

        hash_key = web.settings().token_hash_key if hash_key is None else hash_key
        individual = set(web.catalog().scope_names("individual")) if individual is None else individual
        known = set(web.catalog().scope_names()) if known is None else known
    if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
        return None
    found = apps.app_and_secret_hashes(store, client_id)
    if found is None:
        return None
    app, hashes = found
    scopes: list[str] = app["scopes"]
    return Client(
        client_id=client_id,
        name=app.get("name", client_id),
        kind=app.get("kind", ""),
        client_type=app.get("client_type", "confidential"),
        status=app.get("status", ""),
        redirect_uris=app["redirect_uris"],
        scopes=scopes,
        individual_scopes=[s for s in scopes if s in individual],
        known_scopes=frozenset(known),
        secret_hashes=hashes,
        hash_key=hash_key,
    )


def load_grant(store: Store, client_id: str, uid: str) -> Grant | None:
    data = grants.get_grant(store, client_id, uid)
    if not data or not data.get("id"):
        return None
    return Grant(
        id=data["id"],
        client_id=client_id,
        user_id=uid,
        scopes=frozenset(data["scopes"]),
        fields=frozenset(data["fields"]),
    )
