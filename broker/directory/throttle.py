"""Failed sign-in limits that an attacker cannot turn into a lockout of the owner.

Three counters per attempt, each in a fixed window of ``BROKER_LOGIN_WINDOW_SECONDS``:

* per account and client address (``BROKER_LOGIN_MAX_FAILURES``): the tight limit. Past it, that
  address waits for the window; the same account from another address is not affected.
* per client address (``BROKER_LOGIN_MAX_FAILURES_PER_IP``): one address spraying many accounts.
* per account from anywhere: from ``BROKER_LOGIN_MAX_FAILURES`` failures on, each failure sets a
  delay that doubles (5, 10, 20 ... seconds, at most ``BROKER_LOGIN_BACKOFF_MAX_SECONDS``) before the
  next attempt, which slows guessing from many addresses. Addresses the person has signed in from
  before (remembered for ``KNOWN_SECONDS``) skip this delay, so the owner at the usual address is
  never held up by someone else's failures; a new address waits at most the cap, never a lock.

Each attempt is counted before the password is checked, so a burst of parallel attempts cannot slip
past a limit between a check and a count (broker/storage/lua/login_reserve.lua; a refused attempt is
given back by login_give_back.lua). Unknown usernames are counted like real ones, under a keyed hash
of what was typed, so the counters do not reveal who exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from broker.config import Settings
from broker.core.hashing import keyed_hash
from broker.directory import service as directory
from broker.storage import keys
from broker.storage.store import Store

KNOWN_SECONDS = 30 * 86400
BACKOFF_BASE_SECONDS = 5


@dataclass(frozen=True)
class Attempt:
    """The counters one sign-in attempt is charged to, and the keys of the account's backoff."""

    account_key: str
    ip_key: str
    pair_key: str
    until_key: str
    known_key: str


def attempt(store: Store, settings: Settings, username: str, address: str) -> Attempt:
    uid = directory.user_id_for(store, username) if directory.USERNAME_RE.match(username) else None
    account = uid or "n:" + keyed_hash(settings.token_hash_key, username.lower())
    return Attempt(
        account_key=keys.login_failures_account(account),
        ip_key=keys.login_failures_ip(address),
        pair_key=keys.login_failures_pair(account, address),
        until_key=keys.login_backoff_until(account),
        known_key=keys.login_known(account, address),
    )


def reserve(store: Store, settings: Settings, att: Attempt) -> int | None:
    """Count this attempt; the seconds to wait when a limit or the account's backoff holds it (the
    password is then not checked and the counts are given back), else None."""
    script = store.lua("login_reserve")
    batch = store.batch()
    for key in (att.pair_key, att.ip_key, att.account_key):  # one key per script: no cross-slot call
        batch.script(script, [key], [settings.login_window_seconds])
    batch.command("exists", att.known_key)
    batch.command("pttl", att.until_key)
    (pair, pair_ttl), (ip, ip_ttl), _account, known, until_ms = batch.execute()
    waits = []
    if pair > settings.login_max_failures:
        waits.append(pair_ttl if pair_ttl > 0 else settings.login_window_seconds)
    if ip > settings.login_max_failures_per_ip:
        waits.append(ip_ttl if ip_ttl > 0 else settings.login_window_seconds)
    if not known and until_ms > 0:
        waits.append(math.ceil(until_ms / 1000))
    if waits:
        _give_back(store, att.pair_key, att.ip_key, att.account_key)  # a refused attempt checked nothing
        return max(waits)
    return None


def failed(store: Store, settings: Settings, att: Attempt) -> None:
    """A wrong password (already counted by ``reserve``): past the account's limit, delay its next
    attempt from unknown addresses by BACKOFF_BASE_SECONDS * 2^(failures past the limit), capped."""
    count = int(store.redis.get(att.account_key) or 0)
    if count >= settings.login_max_failures:
        steps = min(count - settings.login_max_failures, 30)
        delay = min(settings.login_backoff_max_seconds, BACKOFF_BASE_SECONDS * 2**steps)
        store.redis.set(att.until_key, "1", ex=delay)


def _give_back(store: Store, *counters: str) -> None:
    script = store.lua("login_give_back")
    batch = store.batch()
    for key in counters:
        batch.script(script, [key])
    batch.execute()


def succeeded(store: Store, att: Attempt) -> None:
    """A successful sign-in: the account starts afresh, the address is remembered as the person's,
    and the address gets its attempts back."""
    batch = store.batch()
    batch.command("delete", att.account_key)
    batch.command("delete", att.until_key)
    batch.command("delete", att.pair_key)
    batch.command("set", att.known_key, "1", ex=KNOWN_SECONDS)
    batch.execute()
    _give_back(store, att.ip_key)
