"""The Redis key layout, all in one place (DESIGN invariant 6: cluster-ready keys).

Every key that takes part in an atomic multi-key operation (MULTI or Lua) carries the hash tag of
the entity that owns the operation, so the operation stays in one cluster slot:

* ``{a:<client_id>}`` - an app and everything bound to it: secrets, codes, tokens, grants,
  installations, its disclosure journal and its event outbox. The hot path (token check + journal
  append) runs in this slot as one Lua script. Tokens carry the client id, so the slot of a token is
  known from the token itself.
* ``{u:<user_id>}`` - a person: profile, memberships index, grant index, owned apps.
* ``{o:<org_id>}`` - an organization: profile, members, roles, installation index, audit trail.
* ``{ledger:NN.S}`` - one of the ledger's logs (``NN``; ``S`` a number chosen so the logs' slots
  are evenly spaced, :func:`ledger_tag`): its Merkle tree, records, indexes, checkpoints and
  journals index (written only by that log's sequencer, which moves records from app journals into
  the log). ``{ledger}`` is the frozen log of earlier releases.

Single-key lookups (unique-name indexes, rate-limit counters) need no tag.
Areas add their keys in their own section below; keep functions pure string builders.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator

from redis.crc import key_slot

PREFIX = "b:"


def app_tag(client_id: str) -> str:
    return f"{PREFIX}{{a:{client_id}}}"


def user_tag(user_id: str) -> str:
    return f"{PREFIX}{{u:{user_id}}}"


def org_tag(org_id: str) -> str:
    return f"{PREFIX}{{o:{org_id}}}"


LEDGER_TAG = f"{PREFIX}{{ledger}}"


def schema_version() -> str:
    """String: the data-schema version (an integer) of the data in this Redis (broker.migrations)."""
    return f"{PREFIX}schema"


def migrate_lock() -> str:
    """String with a TTL: held while ``broker migrate`` runs."""
    return f"{PREFIX}migrate:lock"


# --- directory -------------------------------------------------------------------------------


def user(user_id: str) -> str:
    """Hash: the person's directory record (profile fields, password hash, status)."""
    return f"{user_tag(user_id)}:user"


def user_orgs(user_id: str) -> str:
    """Set of org ids the person belongs to (index; the org's member set is the truth)."""
    return f"{user_tag(user_id)}:orgs"


def username_index(username: str) -> str:
    """String: username (lower-cased) -> user id."""
    return f"{PREFIX}idx:username:{username.lower()}"


def users_all() -> str:
    """Sorted set of every user id (score: creation time), for listing and export."""
    return f"{PREFIX}users"


def org(org_id: str) -> str:
    """Hash: the organization's record."""
    return f"{org_tag(org_id)}:org"


def org_members(org_id: str) -> str:
    """Sorted set of member user ids, score = join sequence (stable cursor order)."""
    return f"{org_tag(org_id)}:members"


def org_roles(org_id: str) -> str:
    """Hash: user id -> JSON {"role": ..., "permissions": [...]}."""
    return f"{org_tag(org_id)}:roles"


def org_member_seq(org_id: str) -> str:
    return f"{org_tag(org_id)}:members:seq"


def orgs_all() -> str:
    """Sorted set of every org id."""
    return f"{PREFIX}orgs"


def demo_org(name: str) -> str:
    """String: demo org name -> org id, so ``broker demo`` finds its orgs again after a restart."""
    return f"{PREFIX}demo:org:{name}"


# --- interactions (login) --------------------------------------------------------------------


def login_failures_account(user_id: str) -> str:
    return f"{PREFIX}rl:login:acct:{user_id}"


def login_failures_ip(address: str) -> str:
    return f"{PREFIX}rl:login:ip:{address}"


def login_failures_pair(account: str, address: str) -> str:
    """Counter: failed sign-ins for one account from one client address (the tight limit)."""
    return f"{PREFIX}rl:login:pair:{account}:{address}"


def login_known(account: str, address: str) -> str:
    """String (with TTL): the person signed in from this address before; the per-account backoff
    does not apply to it."""
    return f"{PREFIX}rl:login:known:{account}:{address}"


def login_backoff_until(account: str) -> str:
    """String (with TTL): the account's next sign-in attempt from an unknown address waits until then."""
    return f"{PREFIX}rl:login:until:{account}"


# --- sessions (server-side browser sessions) ------------------------------------------------
# A signed-in session lives in its person's slot, so "end every session of this person" is one
# script on one slot; a session not yet signed in (CSRF token, page language) stands alone.


def session(user_id: str, session_hash: str) -> str:
    """Hash: one signed-in session (data, public sid, created, last use, address, device)."""
    return f"{user_tag(user_id)}:sess:{session_hash}"


def anonymous_session(session_hash: str) -> str:
    """Hash: a session before sign-in (a CSRF token, the page language)."""
    return f"{PREFIX}sess:{session_hash}"


def user_sessions(user_id: str) -> str:
    """Sorted set: the person's session hashes, score = absolute expiry (pruned as they pass)."""
    return f"{user_tag(user_id)}:sessions"


# --- apps and oauth --------------------------------------------------------------------------


def app(client_id: str) -> str:
    """Hash: the app (OAuth client) record, including status (active / suspended)."""
    return f"{app_tag(client_id)}:app"


def app_secrets(client_id: str) -> str:
    """Hash: secret hash -> JSON {"created": ts, "expires": ts|null}."""
    return f"{app_tag(client_id)}:secrets"


def apps_all() -> str:
    """Sorted set of every client id."""
    return f"{PREFIX}apps"


def apps_redirect_version() -> str:
    """String: a random value replaced whenever an app is registered, has its redirect URIs
    changed or is deleted; processes cache what they derive from every app's redirect URIs (CORS
    origins) under it."""
    return f"{PREFIX}apps:redirect-version"


def developer_apps(user_id: str) -> str:
    """Set of client ids the developer owns."""
    return f"{user_tag(user_id)}:apps"


def auth_code(client_id: str, code_hash: str) -> str:
    return f"{app_tag(client_id)}:code:{code_hash}"


TOKEN_HASH_CHARS = 32  # 128 bits of the keyed hash name a token: enough to find it, 32 bytes less per key


def access_token(client_id: str, token_hash: str) -> str:
    """String: one access token (docs/data-model.md "Tokens"), expiring with it. The key holds the
    first ``TOKEN_HASH_CHARS`` hex digits of the token's keyed hash."""
    return f"{app_tag(client_id)}:at:{token_hash[:TOKEN_HASH_CHARS]}"


def refresh_token(client_id: str, token_hash: str) -> str:
    """String: one refresh token, as ``access_token``."""
    return f"{app_tag(client_id)}:rt:{token_hash[:TOKEN_HASH_CHARS]}"


def grant(client_id: str, user_id: str) -> str:
    """Hash: a person's consent to one app (scopes, fields, purpose, consent version, time)."""
    return f"{app_tag(client_id)}:grant:{user_id}"


def grant_tokens(client_id: str, grant_id: str) -> str:
    """Sorted set of the live tokens issued under one grant or installation, kept by releases before
    data-schema version 8 (member ``a<hash>`` or ``r<hash>``, score the token's expiry); migration 8
    deletes them. Tokens are now revoked through their owner's generation (``_validity.lua``)."""
    return f"{app_tag(client_id)}:toks:{grant_id}"


def installation(client_id: str, org_id: str) -> str:
    """Hash: an org_app's installation in one org (scopes chosen by the admin, enabled flag)."""
    return f"{app_tag(client_id)}:inst:{org_id}"


def app_installations(client_id: str) -> str:
    """Set of org ids where the app is installed."""
    return f"{app_tag(client_id)}:insts"


def app_grants(client_id: str) -> str:
    """Set of user ids holding a live grant to the app."""
    return f"{app_tag(client_id)}:grants"


def user_grants(user_id: str) -> str:
    """Set of client ids the person has granted (index for the privacy center)."""
    return f"{user_tag(user_id)}:grants"


def org_installations(org_id: str) -> str:
    """Set of client ids installed in the org (index for the admin console)."""
    return f"{org_tag(org_id)}:insts"


# --- disclosure gate -------------------------------------------------------------------------


def pairwise_reverse(client_id: str, scope_key: str) -> str:
    """Hash: pairwise id -> user id, for ids this app has been given (scope_key: org id or '-')."""
    return f"{app_tag(client_id)}:pw:{scope_key}"


def journal(client_id: str, log: str) -> str:
    """Stream: disclosure records for one log committed by the gate, waiting for that log's
    sequencer (one stream per app and log, all in the app's slot)."""
    return f"{app_tag(client_id)}:journal:{log}"


def journal_announced(client_id: str, log: str) -> str:
    """String with a TTL, in the app's slot: the gate told ``journals_index(log)`` about this journal
    lately. Set by the gate's script (SET NX); only when it was absent does the gate write the index
    (another slot, an extra round trip on a cluster). The sequencer deletes it with an empty journal."""
    return f"{app_tag(client_id)}:journal:{log}:ann"


def legacy_journal(client_id: str) -> str:
    """Stream: the app's one journal of releases before 0.3 (moved to per-log journals by m0003)."""
    return f"{app_tag(client_id)}:journal"


def wait_marker(key: str) -> str:
    """String in ``key``'s slot written right before WAIT, so the WAIT covers every earlier write
    (WAIT waits for the last write of its own connection); expires in a minute."""
    return f"{key}:wait"


def journal_voids(client_id: str) -> str:
    """Hash: request id -> JSON ``{"time", "records"}`` for requests whose journal records could not
    be confirmed (WAIT failed, or the outcome of the write is unknown): the request was refused, so
    those records are not disclosures. Written by the gate, read by the sequencer; expires."""
    return f"{app_tag(client_id)}:voids"


def voids_index() -> str:
    """Set of client ids whose ``journal_voids`` may hold voids the sequencer has not settled."""
    return f"{PREFIX}voids"


# --- ledger ----------------------------------------------------------------------------------
# The ledger is N independent logs (BROKER_LEDGER_LOGS, fixed by ``ledger_log_count`` once data
# exists). Log ``NN`` keeps all its keys under its own tag ``{ledger:NN.S}``, so logs spread over
# cluster slots; a record goes to the log its person id hashes to (``broker.ledger.logs.log_of``).
# ``legacy`` is the single log of releases before 0.3 (tag ``{ledger}``): frozen, still verifiable.

LEGACY_LOG = "legacy"
CLUSTER_SLOTS = 16384
SPREAD_WINDOW = 32  # slots: a log's tag hashes into [its target, target + this)
_plain_tags = contextvars.ContextVar("plain_ledger_tags", default=False)


def _spaced(number: int) -> float:
    """The van der Corput sequence in base 2 (0, 1/2, 1/4, 3/4, 1/8, 5/8, ...): any first N terms
    are spread nearly evenly over [0, 1)."""
    out, weight = 0.0, 0.5
    while number:
        out += weight * (number & 1)
        number >>= 1
        weight /= 2
    return out


@functools.cache
def ledger_tag_suffix(log: str) -> int:
    """The smallest S for which ``ledger:<log>.S`` hashes (CRC16, as Redis Cluster does) into the
    slot window of log ``int(log)``, the window starting at that number's place in the van der
    Corput sequence. Logs 0 .. N-1 so sit evenly over the slots (16 logs: one every 1,024 slots),
    and any split of the slots into contiguous ranges of similar size (how Redis Cluster assigns
    them) gives each master a similar number of logs: 6 / 5 / 5 of 16 on 3 masters, where the tags
    ``{ledger:00}`` .. ``{ledger:15}`` of schema versions before 13 fell 4 / 4 / 8."""
    target = int(_spaced(int(log)) * CLUSTER_SLOTS)
    suffix = 0
    while (key_slot(f"ledger:{log}.{suffix}".encode()) - target) % CLUSTER_SLOTS >= SPREAD_WINDOW:
        suffix += 1
    return suffix


@contextlib.contextmanager
def plain_ledger_tags() -> Iterator[None]:
    """Within this block, log ``NN`` has the tag ``{ledger:NN}`` of schema versions before 13:
    ``broker migrate`` runs the migrations written for that layout in it, and migration 13 reads
    the keys it moves from it."""
    token = _plain_tags.set(True)
    try:
        yield
    finally:
        _plain_tags.reset(token)


def ledger_tag(log: str) -> str:
    if log == LEGACY_LOG:
        return LEDGER_TAG
    if _plain_tags.get():
        return f"{PREFIX}{{ledger:{log}}}"
    return f"{PREFIX}{{ledger:{log}.{ledger_tag_suffix(log)}}}"


def ledger_log_count() -> str:
    """String: how many logs the ledger has (set once, by the first process that needs it)."""
    return f"{PREFIX}ledger:logs"


def ledger(name: str, log: str) -> str:
    """Any key of one log; all share that log's tag so its sequencer appends atomically."""
    return f"{ledger_tag(log)}:{name}"


def ledger_size(log: str) -> str:
    """String: number of leaves in the log (the next index)."""
    return ledger("size", log)


def ledger_records(log: str) -> str:
    """Hash: leaf index -> canonical record JSON (the leaf data), kept by releases before data-schema
    version 9 (migration 9 moves the bodies to :func:`ledger_bodies`)."""
    return ledger("records", log)


def ledger_bodies(log: str, block: int) -> str:
    """List: the packed bodies of leaves ``block * BODY_BLOCK`` .. ``+ BODY_BLOCK - 1`` in order
    (``broker.ledger.storage``); an empty element is a pruned leaf's."""
    return ledger(f"bodies:{block}", log)


def ledger_level(level: int, log: str) -> str:
    """Hash (releases before 0.4, until migration 5): i -> hex hash of the complete subtree of
    2**level leaves starting at i * 2**level. Now :func:`ledger_hashes`."""
    return ledger(f"level:{level}", log)


def ledger_hashes(level: int, log: str) -> str:
    """String: the 32-byte hashes of the complete subtrees of 2**level leaves, the one starting at
    leaf i * 2**level at byte 32 * i (binary, no per-entry overhead; ``broker.ledger.storage``)."""
    return ledger(f"hashes:{level}", log)


def ledger_ids(log: str, block: int) -> str:
    """Hash: record id -> leaf index, for the leaves ``block * ID_BLOCK`` .. ``+ ID_BLOCK - 1``
    (``broker.ledger.storage``: small enough for Redis's compact encoding)."""
    return ledger(f"ids:{block}", log)


def ledger_id_times(log: str) -> str:
    """String: for id map ``b`` (:func:`ledger_ids`), at byte ``4 * b``, the ledger time of its newest
    leaf rounded up to a whole second (unsigned 32-bit, big-endian; 0: not written, as for blocks of
    schema versions before 13), so the sequencer looks for an id only where it can be."""
    return ledger("id-times", log)


def ledger_sequenced(log: str) -> str:
    """Hash: record id -> leaf index, one per log, kept by releases before data-schema version 11
    (migration 11 moves it to :func:`ledger_ids`)."""
    return ledger("sequenced", log)


def ledger_pruned(log: str) -> str:
    """Hash (releases before migration 7): leaf index -> record id of a pruned record. Now
    :func:`ledger_pruned_bits`."""
    return ledger("pruned", log)


def ledger_pruned_bits(log: str) -> str:
    """String (bitmap): bit i is 1 when the body of leaf i was pruned (its hashes stay). Releases
    before migration 7 kept :func:`ledger_pruned` instead (index -> record id, about 85 bytes each)."""
    return ledger("pruned:bits", log)


def ledger_voided(log: str) -> str:
    """Hash: record id -> index of the correction record saying that record was not delivered."""
    return ledger("voided", log)


def ledger_rejected(log: str) -> str:
    """List: journal entries that were not valid records (kept for the operator, never sequenced;
    the newest ``sequencer.REJECTED_KEEP``, each cut to 4 KiB)."""
    return ledger("rejected", log)


def ledger_checkpoints(log: str) -> str:
    """List: signed checkpoints (compact JWS), oldest first."""
    return ledger("checkpoints", log)


def ledger_lock(log: str) -> str:
    """String: the log's sequencer lock (SET NX PX); value = the holder's random token."""
    return ledger("lock", log)


def ledger_index(log: str, **dims: str) -> str:
    """Sorted set of leaf indexes (score: record time; member: zero-padded index) for one reader
    view in one log, kept by releases before data-schema version 10 (migration 10 replaces them by
    :func:`ledger_view`)."""
    return ledger("ix:" + "|".join(f"{k}={v}" for k, v in sorted(dims.items())), log)


def ledger_view(log: str, **dims: str) -> str:
    """String of packed entries, one per record, for one reader view in one log (``person``,
    ``app``, ``org``, ``org`` + ``app``; ``broker.ledger.views``), e.g. ``ledger_view(log, app=cid)``;
    dimension order does not matter."""
    return ledger("v:" + "|".join(f"{k}={v}" for k, v in sorted(dims.items())), log)


def ledger_clock(log: str) -> str:
    """String: the ledger time of the log's newest leaf (the later of its record's time and the
    clock before it); every view of the log is in ledger-time order."""
    return ledger("clock", log)


def journals_index(log: str) -> str:
    """Set of client ids whose journal for ``log`` may hold unsequenced records (the log's slot)."""
    return ledger("journals", log)


def legacy_journals_index() -> str:
    """Set of client ids with a journal of releases before 0.3 (one per app; migration m0003)."""
    return f"{PREFIX}journals"


# --- events (outbox) -------------------------------------------------------------------------


def outbox(client_id: str) -> str:
    """Stream: lifecycle events for the app, written atomically with the state change. Bounded by
    ``broker worker``: finished entries are trimmed, pending ones kept to BROKER_WEBHOOK_OUTBOX_MAXLEN
    (docs/retention.md)."""
    return f"{app_tag(client_id)}:outbox"


# --- receipts (consent receipts, per person) -------------------------------------------------


def receipts_index(user_id: str) -> str:
    """Sorted set (all scores 0) of ``<ms:013d>:<receipt id>``: lexicographic = time order, so a
    cursor is just the last member seen (stable under concurrent inserts)."""
    return f"{user_tag(user_id)}:receipts"


def receipts_docs(user_id: str) -> str:
    """Hash: receipt id -> the signed receipt (compact JWS)."""
    return f"{user_tag(user_id)}:receipts:jws"


# --- webhooks (outbox delivery by ``broker worker``) -----------------------------------------


def webhook_cursor(client_id: str) -> str:
    """String: stream id of the last outbox entry delivered (or dead-lettered); next = the one after."""
    return f"{app_tag(client_id)}:wh:cursor"


def webhook_status(client_id: str) -> str:
    """Hash: delivery state of the head event (attempts, last status/error, next attempt time)."""
    return f"{app_tag(client_id)}:wh:status"


def webhook_log(client_id: str) -> str:
    """Stream (capped, ``MAXLEN ~`` LOG_MAXLEN): one entry per delivery attempt, replay or purge, for
    the developer console."""
    return f"{app_tag(client_id)}:wh:log"


def webhook_dead(client_id: str) -> str:
    """Hash: event id -> JSON {event, attempts, last_status, last_error, dead_at} (dead letters).
    Kept BROKER_WEBHOOK_DEAD_RETENTION_SECONDS, at most BROKER_WEBHOOK_DEAD_MAX (docs/retention.md)."""
    return f"{app_tag(client_id)}:wh:dead"


def webhook_dead_index(client_id: str) -> str:
    """Sorted set: dead event id -> time it was dead-lettered (trimmed with :func:`webhook_dead`)."""
    return f"{app_tag(client_id)}:wh:dead:idx"


def webhook_lease(client_id: str) -> str:
    """String with a TTL: the worker currently delivering this app's outbox (one per app: ordering)."""
    return f"{app_tag(client_id)}:wh:lease"


# --- consoles (admin console) ----------------------------------------------------------------


def org_app_requests(org_id: str) -> str:
    """Hash: request id -> JSON of a member's request for an App Center app (org slot)."""
    return f"{org_tag(org_id)}:apprequests"


def org_audit(org_id: str) -> str:
    """Stream: the org's audit trail of admin actions (field ``a`` = JSON who, what, details)."""
    return f"{org_tag(org_id)}:audit"


def org_notices(org_id: str) -> str:
    """Stream: decisions about apps that receive the org's members' data (field ``n`` = JSON what,
    app, scopes, who), shown to members in the privacy center; capped (``consent.notices``)."""
    return f"{org_tag(org_id)}:notices"


def user_notices_seen(user_id: str) -> str:
    """Hash: org id -> the last notice stream id the person has seen in the privacy center."""
    return f"{user_tag(user_id)}:noticeseen"


def deletion_requests(client_id: str) -> str:
    """Hash: deletion request id -> JSON (person, fields, reason, sent_at, acked_at), app slot."""
    return f"{app_tag(client_id)}:delreq"


def deletion_requests_by_time(client_id: str) -> str:
    """Sorted set: deletion request id by time sent, to forget old ones (app slot)."""
    return f"{app_tag(client_id)}:delreq:t"


def user_deletion_requests(user_id: str) -> str:
    """Sorted set: ``<client_id>:<request id>`` by time sent, the person's history of them."""
    return f"{user_tag(user_id)}:delreqs"


# --- departments (directory; all in the org's slot) ------------------------------------------


def org_departments(org_id: str) -> str:
    """Hash: department id -> JSON {"name": ..., "parent": department id or ""} (the org's tree)."""
    return f"{org_tag(org_id)}:depts"


def org_member_departments(org_id: str) -> str:
    """Hash: member user id -> space-separated department ids (a member can be in several)."""
    return f"{org_tag(org_id)}:memberdepts"


def org_coverage_config(org_id: str) -> str:
    """Hash: client id -> space-separated department ids, for installations limited to chosen
    departments; an installation without a field here covers the whole organization."""
    return f"{org_tag(org_id)}:coverage"


def org_coverage(org_id: str, client_id: str) -> str:
    """Sorted set: the members a department-limited installation covers (members of the chosen
    departments and their sub-departments), score = join sequence, kept in step on every change."""
    return f"{org_tag(org_id)}:coverage:{client_id}"
