"""Which members an organization token asks about, read before the gate sees the token.

The members API first picks the people a request is about (a page of the org's member index, or the
person behind a pairwise id this app was given), then the gate decides what of them may leave. These
reads disclose nothing by themselves: the gate refuses the token before any profile is read, and a
person outside the org or unknown to the app is the same empty list.
"""

from __future__ import annotations

from broker.storage import keys
from broker.storage.store import Store


def page(store: Store, org_id: str, after: int, limit: int) -> tuple[list[tuple[str, int]], bool]:
    """Up to ``limit`` members who joined after sequence ``after`` (join order), and whether more
    follow: one ZRANGEBYSCORE."""
    rows = store.redis.zrangebyscore(
        keys.org_members(org_id), f"({after}", "+inf", start=0, num=limit + 1, withscores=True
    )
    return [(uid, int(seq)) for uid, seq in rows[:limit]], len(rows) > limit


def by_pairwise_id(store: Store, client_id: str | None, org_id: str, pairwise: str) -> list[str]:
    """The member behind the pairwise id ``client_id`` was given in ``org_id``, as a list of zero or
    one user id: only ids this app was given are reversible, and only current members count."""
    uid = store.redis.hget(keys.pairwise_reverse(client_id, org_id), pairwise) if client_id else None
    if not uid or store.redis.zscore(keys.org_members(org_id), uid) is None:
        return []
    return [uid]
