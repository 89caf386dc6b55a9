"""Which members an organization token asks about, read before the gate sees the token.

The members API first picks the people a request is about (a page of the members the app's
installation covers, or the person behind a pairwise id this app was given), then the gate decides
what of them may leave. These reads disclose nothing by themselves: the gate refuses the token
before any profile is read, and a person outside the org or unknown to the app is the same empty list.
"""

from __future__ import annotations

from broker.directory import departments
from broker.storage import keys
from broker.storage.store import Store


def page(
    store: Store, client_id: str | None, org_id: str, after: int, limit: int
) -> tuple[list[tuple[str, int]], bool]:
    """Up to ``limit`` members the app's installation covers who joined after sequence ``after``
    (join order), and whether more follow: one script call that pages the org's members, or the
    installation's coverage set when the org limits it to chosen departments. Without a client id
    (a token that names no app) nobody: the gate refuses such a token anyway."""
    if not client_id:
        return [], False
    return departments.page(store, org_id, client_id, after, limit)


def by_pairwise_id(store: Store, client_id: str | None, org_id: str, pairwise: str) -> list[str]:
    """The member behind the pairwise id ``client_id`` was given in ``org_id``, as a list of zero or
    one user id: only ids this app was given are reversible, and only members its installation
    covers now count."""
    uid = store.redis.hget(keys.pairwise_reverse(client_id, org_id), pairwise) if client_id else None
    if not uid or not client_id or not departments.covers(store, org_id, client_id, uid):
        return []
    return [uid]
