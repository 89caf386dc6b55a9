"""DESIGN invariant 5: secrets at rest are hashed. A dump of Redis yields no usable credential.

After a whole code flow (client secret, authorization code, access and refresh tokens, a refresh
rotation) and a password sign-in, every key and every value in Redis (every node of a cluster) is
read, and none contains any of those credentials.
"""

from __future__ import annotations

from typing import Any

from tests.support.client import basic
from tests.support.factories import make_app, make_user, raw_grant
from tests.support.oauth import REDIRECT, get_code, pkce_pair
from tests.support.signin import session_sign_in


def redis_dump(store: Any) -> str:
    """Every key and value, as text (streams, hashes, sets, sorted sets, lists, strings)."""
    r = store.redis
    parts: list[str] = []
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        parts.append(key)
        if kind == "string":
            parts.append(str(r.get(key)))
        elif kind == "hash":
            parts.append(str(r.hgetall(key)))
        elif kind == "set":
            parts.append(str(r.smembers(key)))
        elif kind == "zset":
            parts.append(str(r.zrange(key, 0, -1)))
        elif kind == "list":
            parts.append(str(r.lrange(key, 0, -1)))
        elif kind == "stream":
            parts.append(str(r.xrange(key)))
    return "\n".join(parts)


def test_no_credential_is_stored_in_clear(client: Any, store: Any, settings: Any) -> None:
    cid, secret = make_app(store, settings)
    password = "correct horse battery staple"
    uid = make_user(store, "alice", password)
    raw_grant(store, cid, uid, "openid profile", "user_id nickname avatar")
    session_sign_in(client, uid)
    verifier, challenge = pkce_pair()
    code = get_code(client, cid, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    first = client.post("/oauth/token", data=form, headers=basic(cid, secret)).get_json()
    rotated = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=basic(cid, secret),
    ).get_json()
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert me.status_code == 200  # the stored hashes do work

    dump = redis_dump(store)
    assert dump  # the dump really read something
    assert secret is not None
    for name, credential in {
        "client secret": secret,
        "authorization code": code,
        "access token": first["access_token"],
        "refresh token": first["refresh_token"],
        "rotated access token": rotated["access_token"],
        "rotated refresh token": rotated["refresh_token"],
        "password": password,
    }.items():
        assert credential not in dump, f"the {name} is stored in clear"
        assert credential.split(".")[-1] not in dump, f"the secret part of the {name} is stored in clear"
