"""Failed sign-in counting, per account and per client address (fixed window).

Each attempt is counted before the password is checked, so a burst of parallel attempts cannot slip
past the limit between a check and a count (broker/storage/lua/login_reserve.lua; a refused
attempt is given back by login_give_back.lua). Unknown usernames are counted like real ones, under a
keyed hash of what was typed, so the counters do not reveal who exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.config import Settings
from broker.core.hashing import keyed_hash
from broker.directory import service as directory
from broker.storage import keys
from broker.storage.store import Store


@dataclass(frozen=True)
class Attempt:
    """The two counters one sign-in attempt is charged to."""

    account_key: str
    ip_key: str


def attempt(store: Store, settings: Settings, username: str, address: str) -> Attempt:
    uid = directory.user_id_for(store, username) if directory.USERNAME_RE.match(username) else None
    account = uid or "n:" + keyed_hash(settings.token_hash_key, username.lower())
    return Attempt(keys.login_failures_account(account), keys.login_failures_ip(address))


def reserve(store: Store, settings: Settings, att: Attempt) -> int | None:
    """Count this attempt against the account and the address; the seconds to wait when either is
    over its limit (the password is then not checked and the count is given back), else None."""
    script = store.lua("login_reserve")
    batch = store.batch()
    for key in (att.account_key, att.ip_key):  # one key per script call: no cross-slot operation
        batch.script(script, [key], [settings.login_window_seconds])
    (acct, acct_ttl), (ip, ip_ttl) = batch.execute()
    waits = []
    if acct > settings.login_max_failures:
        waits.append(acct_ttl if acct_ttl > 0 else settings.login_window_seconds)
    if ip > settings.login_max_failures_per_ip:
        waits.append(ip_ttl if ip_ttl > 0 else settings.login_window_seconds)
    if not waits:
        return None
    _give_back(store, att.account_key, att.ip_key)  # a refused attempt checked nothing
    return max(waits)


def _give_back(store: Store, *counters: str) -> None:
    script = store.lua("login_give_back")
    batch = store.batch()
    for key in counters:
        batch.script(script, [key])
    batch.execute()


def succeeded(store: Store, att: Attempt) -> None:
    """A successful sign-in: the account starts afresh and the address gets its attempt back."""
    store.redis.delete(att.account_key)
    _give_back(store, att.ip_key)
