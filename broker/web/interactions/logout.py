"""Ending sessions, and telling the apps: OpenID Connect RP-Initiated Logout 1.0 and Back-Channel
Logout 1.0.

* ``end_sessions`` / ``sign_out_here``: the one way a session ends from the web layer (sign-out, the
  privacy center's "sign out"/"sign out everywhere", a password change). Each ended session that
  gave an id_token (with its ``sid`` claim) to an app with a ``backchannel_logout_uri`` gets that app
  a Logout Token: a JWT signed with the id_token key (``typ: logout+jwt``; ``iss``, ``aud``, ``iat``,
  ``exp``, ``jti``, ``sub`` = the app's pairwise id, ``sid``, and the back-channel logout event),
  POSTed as ``logout_token`` without following redirects, from a background thread so that signing
  out never waits on an app.
* ``GET|POST /end-session`` (``end_session_endpoint``): an app sends the person here with
  ``id_token_hint`` (an id_token this broker issued to it, expiry not checked per the spec),
  optionally ``post_logout_redirect_uri`` (exactly one of the app's registered ones), ``client_id``
  and ``state``. When the hint names the signed-in person, the session ends and the browser goes back
  to the app (``state`` appended); without a valid hint nobody is signed out (a link cannot sign
  someone out) and the browser is sent to the home page, which has the sign-out button.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import redirect, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.wrappers import Response as BaseResponse

from broker.apps.registry import get_app
from broker.core.keyring import ID_TOKEN_ALG
from broker.core.pairwise import pairwise_id
from broker.directory import sessions
from broker.events import egress
from broker.extensions import csrf
from broker.web.interactions import session as login_session
from broker.web.interactions.blueprint import bp
from broker.web.shared import context as web

log = logging.getLogger("broker.logout")

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TTL = 120


def end_sessions(uid: str, *, keep: str | None = None, only_sid: str | None = None) -> int:
    """End the person's sessions (see ``sessions.end_all``) and tell the apps; how many ended."""
    ended = sessions.end_all(web.store(), uid, keep=keep, only_sid=only_sid)
    notify(ended)
    return len(ended)


def sign_out_here() -> None:
    """End this request's session (the cookie is deleted and stops working) and tell the apps."""
    record = login_session.current()
    if record is not None and record.uid:
        notify([record])
    login_session.sign_out()


def logout_token(client_id: str, uid: str, sid: str) -> str:
    settings = web.settings()
    now = int(time.time())
    claims = {
        "iss": settings.issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_TTL,
        "jti": secrets.token_urlsafe(16),
        "sub": pairwise_id(settings.pairwise_key, client_id, uid),
        "sid": sid,
        "events": {LOGOUT_EVENT: {}},
    }
    key = web.keyring().signing_key(ID_TOKEN_ALG)
    header = {"alg": ID_TOKEN_ALG, "kid": str(key.kid), "typ": "logout+jwt"}
    return jwt.encode(header, claims, key)


def notify(ended: list[sessions.Session]) -> None:
    """Send a Logout Token to every app with a ``backchannel_logout_uri`` that got an id_token in
    one of ``ended`` (in the background: signing out never waits on an app)."""
    store, settings = web.store(), web.settings()
    deliveries: list[tuple[str, str, str]] = []
    for s in ended:
        if not s.uid:
            continue
        for client_id in s.clients:
            app = get_app(store, client_id)
            uri = str((app or {}).get("backchannel_logout_uri") or "")
            if uri:
                deliveries.append((client_id, uri, logout_token(client_id, s.uid, s.sid)))
    if deliveries:
        # The same egress rules as webhooks: only public addresses (resolved and checked at sending,
        # connected to the checked address), unless BROKER_WEBHOOK_ALLOW_PRIVATE (development).
        session = egress.guard(requests.Session(), allow_private=settings.webhook_allow_private)
        args = (session, deliveries, settings.webhook_timeout_seconds)
        threading.Thread(target=_deliver, args=args, daemon=True).start()


def _deliver(session: requests.Session, deliveries: list[tuple[str, str, str]], timeout: int) -> None:
    for client_id, uri, token in deliveries:
        try:
            answer = session.post(
                uri,
                data={"logout_token": token},
                headers={"Cache-Control": "no-store"},
                timeout=timeout,
                allow_redirects=False,
            )
            if answer.status_code != 200:
                log.warning("back-channel logout to %s answered %s", client_id, answer.status_code)
        except egress.DestinationRefused:
            log.warning("back-channel logout to %s not sent: %s", client_id, egress.REFUSED)
        except requests.RequestException as exc:
            log.warning("back-channel logout to %s failed: %s", client_id, type(exc).__name__)


# --- RP-Initiated Logout 1.0 ------------------------------------------------------------------


def _hint_claims(hint: str) -> dict[str, Any] | None:
    """The claims of an id_token this broker signed (expired ones too: OIDC RP-Initiated Logout 2)."""
    try:
        keyset = KeySet.import_key_set(web.keyring().public_jwks())  # type: ignore[arg-type]
        token = jwt.decode(hint, keyset, algorithms=[ID_TOKEN_ALG])
    except (JoseError, ValueError, TypeError):
        return None
    claims = dict(token.claims)
    if claims.get("iss") != web.settings().issuer:
        return None
    return claims


def _audience(claims: dict[str, Any]) -> str | None:
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else None


def _with_state(uri: str, state: str | None) -> str:
    if not state:
        return uri
    sep = "&" if urlsplit(uri).query else "?"
    return f"{uri}{sep}{urlencode({'state': state})}"


@csrf.exempt  # the spec lets an app POST here from its own page; nothing ends without a valid hint
@bp.route("/end-session", methods=["GET", "POST"])
def end_session() -> BaseResponse:
    args = request.values
    hint = args.get("id_token_hint", "")
    claims = _hint_claims(hint) if hint and len(hint) < 8192 else None
    client_id = _audience(claims) if claims else None
    if args.get("client_id") and client_id and args.get("client_id") != client_id:
        claims = client_id = None  # the hint was issued to another app
    target = "/login"
    wanted = args.get("post_logout_redirect_uri", "")
    if client_id and wanted:
        app = get_app(web.store(), client_id) or {}
        registered = app.get("post_logout_redirect_uris") or []
        if isinstance(registered, str):
            registered = json.loads(registered or "[]")
        if wanted in registered:
            target = _with_state(wanted, args.get("state"))
    record = login_session.current()
    signed_in = login_session.current_user_id()
    if claims is None or signed_in is None:
        return redirect("/" if signed_in else target, code=303)
    expected = pairwise_id(web.settings().pairwise_key, client_id or "", signed_in)
    same_session = record is not None and claims.get("sid") in (None, record.sid)
    if claims.get("sub") != expected or not same_session:
        return redirect("/", code=303)  # another person's (or session's) token: sign out by hand
    sign_out_here()
    return redirect(target, code=303)
