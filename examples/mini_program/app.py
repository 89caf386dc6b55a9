"""Pocket Notes: an example mini-program (public client, PKCE, loopback redirect) for the broker.

It does not import ``broker``: only Flask, Authlib's requests client, joserfc and the standard library.

    python examples/mini_program/app.py --credentials var/demo-credentials.json

then open http://127.0.0.1:8765/ . Settings come from the demo's credentials file or from the
environment: ISSUER, CLIENT_ID. The redirect URI registered by the demo is
http://127.0.0.1:8765/callback, so the port is 8765 unless you register another redirect.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import secrets
import threading
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, Response, redirect, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

COOKIE = "pocket_notes_sid"  # our own cookie name: the broker on the same host has its own cookies
PAGE = "<!doctype html><meta charset=utf-8><title>Pocket Notes</title><h1>Pocket Notes</h1>{}"


def load_settings(credentials: str | None) -> dict[str, str]:
    conf = {"issuer": "", "client_id": ""}
    if credentials:
        with open(credentials) as f:
            creds = json.load(f)
        conf.update(issuer=creds["issuer"], client_id=creds["apps"]["mini_program"]["client_id"])
    for key in conf:
        conf[key] = os.environ.get(key.upper(), conf[key])
    return conf


def create_app(conf: dict[str, str], port: int) -> Flask:
    app = Flask(__name__)
    redirect_uri = f"http://127.0.0.1:{port}/callback"
    pending: dict[str, dict[str, str]] = {}  # state -> verifier, nonce (one sign-in in flight each)
    sessions: dict[str, dict[str, Any]] = {}  # our session id -> token and profile
    lock = threading.Lock()

    def metadata() -> dict[str, Any]:
        result: dict[str, Any] = requests.get(
            f"{conf['issuer']}/.well-known/openid-configuration", timeout=10
        ).json()
        if result["issuer"] != conf["issuer"]:
            raise RuntimeError("discovery document names another issuer")
        return result

    def client(token: dict[str, Any] | None = None) -> OAuth2Session:
        return OAuth2Session(
            conf["client_id"],
            redirect_uri=redirect_uri,
            scope="openid profile",
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
            token=token,
        )

    def page(body: str, status: int = 200) -> Response:
        return Response(PAGE.format(body), status=status, mimetype="text/html")

    def signed_out(message: str, status: int = 200) -> Response:
        return page(
            f'<p id="state" data-state="signed-out">{message}</p><a href="/login">Sign in</a>', status
        )

    def profile_page(me: dict[str, Any]) -> Response:
        return page(
            f'<p id="state" data-state="signed-in">Hello '
            f'<b id="nickname">{html.escape(me["nickname"])}</b></p>'
            f'<img id="avatar" src="{html.escape(me.get("avatar") or "")}" alt="avatar" width=64>'
        )

    @app.get("/")
    def index() -> Response:
        sid = request.cookies.get(COOKIE, "")
        with lock:
            current = sessions.get(sid)
        if current is None:
            return signed_out("You are not signed in.")
        # A later call with the stored token: the person may have revoked us meanwhile.
        meta = metadata()
        session = client(current["token"])
        me = session.get(f"{conf['issuer']}/v1/me", timeout=10)
        if me.status_code == 401 and current["token"].get("refresh_token"):
            refreshed = requests.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": current["token"]["refresh_token"],
                    "client_id": conf["client_id"],
                },
                timeout=10,
            )
            if refreshed.status_code == 200:
                current["token"] = refreshed.json()
                me = client(current["token"]).get(f"{conf['issuer']}/v1/me", timeout=10)
        if me.status_code == 401:
            with lock:
                sessions.pop(sid, None)
            response = page(
                '<p id="state" data-state="withdrawn">Access was withdrawn, sign in again.</p>'
                '<a href="/login">Sign in</a>'
            )
            response.delete_cookie(COOKIE)
            return response
        me.raise_for_status()
        return profile_page(me.json())

    @app.get("/login")
    def login() -> Response:
        meta = metadata()
        verifier, nonce = generate_token(48), generate_token(16)
        url, state = client().create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        with lock:
            pending[state] = {"verifier": verifier, "nonce": nonce}
        return redirect(url)  # type: ignore[return-value]

    @app.get("/callback")
    def callback() -> Response:
        state = request.args.get("state", "")
        with lock:
            flow = pending.pop(state, None)
        if flow is None:
            return signed_out("Unknown or reused sign-in attempt (state does not match).", 400)
        if request.args.get("iss") != conf["issuer"]:  # RFC 9207: mix-up protection
            return signed_out("The response came from an unexpected issuer.", 400)
        if "error" in request.args:
            return signed_out(f"Sign-in ended: {html.escape(request.args['error'])}.", 400)
        meta = metadata()
        session = client()
        token = session.fetch_token(
            meta["token_endpoint"], authorization_response=request.url, code_verifier=flow["verifier"]
        )
        keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
        try:
            id_token = jwt.decode(token["id_token"], keys, algorithms=["ES256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": conf["issuer"]},
                aud={"essential": True, "value": conf["client_id"]},
                nonce={"essential": True, "value": flow["nonce"]},
                exp={"essential": True},
            ).validate(id_token.claims)
        except (JoseError, KeyError) as exc:
            return signed_out(f"The id_token did not validate ({type(exc).__name__}).", 400)
        me = session.get(f"{conf['issuer']}/v1/me", timeout=10)
        me.raise_for_status()
        profile = me.json()
        sid = secrets.token_urlsafe(24)
        with lock:
            sessions[sid] = {"token": dict(token), "sub": id_token.claims["sub"]}
        response = profile_page(profile)
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Lax")
        return response

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials", help="the file written by broker demo --credentials-out")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    create_app(load_settings(args.credentials), args.port).run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
