"""The Redis key layout, all in one place (DESIGN invariant 6: cluster-ready keys).

Every key that takes part in an atomic multi-key operation (MULTI or Lua) carries the hash tag of
the entity that owns the operation, so the operation stays in one cluster slot:

* ``{a:<client_id>}`` - an app and everything bound to it: secrets, codes, tokens, grants,
  installations, its disclosure journal and its event outbox. The hot path (token check + journal
  append) runs in this slot as one Lua script. Tokens carry the client id, so the slot of a token is
  known from the token itself.
* ``{u:<user_id>}`` - a person: profile, memberships index, grant index, owned apps.
* ``{o:<org_id>}`` - an organization: profile, members, roles, installation index, audit trail.
* ``{ledger}`` - the global Merkle log, its records, indexes and checkpoints (written only by the
  sequencer, which moves records from app journals into the log).

Single-key lookups (unique-name indexes, rate-limit counters) need no tag.
Areas add their keys in their own section below; keep functions pure string builders.
"""

from __future__ import annotations

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


def access_token(client_id: str, token_hash: str) -> str:
    return f"{app_tag(client_id)}:at:{token_hash}"


def refresh_token(client_id: str, token_hash: str) -> str:
    return f"{app_tag(client_id)}:rt:{token_hash}"


def grant(client_id: str, user_id: str) -> str:
    """Hash: a person's consent to one app (scopes, fields, purpose, consent version, time)."""
    return f"{app_tag(client_id)}:grant:{user_id}"


def grant_tokens(client_id: str, grant_id: str) -> str:
    """Set of token keys issued under one grant or installation (revoke-all in one script)."""
    return f"{app_tag(client_id)}:gtok:{grant_id}"


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


def token_family(client_id: str, family: str) -> str:
    """Set of token keys of one refresh chain (code -> tokens -> rotated tokens), revoked together
    on code replay or refresh-token reuse."""
    return f"{app_tag(client_id)}:fam:{family}"


# --- disclosure gate -------------------------------------------------------------------------


def pairwise_reverse(client_id: str, scope_key: str) -> str:
    """Hash: pairwise id -> user id, for ids this app has been given (scope_key: org id or '-')."""
    return f"{app_tag(client_id)}:pw:{scope_key}"


def journal(client_id: str) -> str:
    """Stream: disclosure records committed by the gate, waiting for the sequencer."""
    return f"{app_tag(client_id)}:journal"


def journals_index() -> str:
    """Set of client ids whose journal may hold unsequenced records."""
    return f"{PREFIX}journals"


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


def ledger(name: str) -> str:
    """Any ledger key; all share the ``{ledger}`` tag so the sequencer appends atomically."""
    return f"{LEDGER_TAG}:{name}"


def ledger_size() -> str:
    """String: number of leaves in the log (the next index)."""
    return ledger("size")


def ledger_records() -> str:
    """Hash: leaf index -> canonical record JSON (the leaf data). Pruned indexes have no field."""
    return ledger("records")


def ledger_level(level: int) -> str:
    """Hash: i -> hex hash of the complete subtree of 2**level leaves starting at i * 2**level."""
    return ledger(f"level:{level}")


def ledger_sequenced() -> str:
    """Hash: record id -> leaf index; what makes sequencing idempotent."""
    return ledger("sequenced")


def ledger_pruned() -> str:
    """Hash: leaf index -> record id, for records whose body was pruned (leaf hash kept)."""
    return ledger("pruned")


def ledger_voided() -> str:
    """Hash: record id -> index of the correction record saying that record was not delivered."""
    return ledger("voided")


def ledger_rejected() -> str:
    """List: journal entries that were not valid records (kept for the operator, never sequenced)."""
    return ledger("rejected")


def ledger_checkpoints() -> str:
    """List: signed checkpoints (compact JWS), oldest first."""
    return ledger("checkpoints")


def ledger_lock() -> str:
    """String: the sequencer lock (SET NX PX); value = the holder's random token."""
    return ledger("lock")


def ledger_index(**dims: str) -> str:
    """Sorted set of leaf indexes (score: record time; member: zero-padded index) for one reader
    view, e.g. ``ledger_index(person=uid, app=client_id)``; dimension order does not matter."""
    return ledger("ix:" + "|".join(f"{k}={v}" for k, v in sorted(dims.items())))


# --- events (outbox) -------------------------------------------------------------------------


def outbox(client_id: str) -> str:
    """Stream: lifecycle events for the app, written atomically with the state change."""
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
    """Stream (capped): one entry per delivery attempt, for the developer console."""
    return f"{app_tag(client_id)}:wh:log"


def webhook_dead(client_id: str) -> str:
    """Hash: event id -> JSON {event, attempts, last_status, last_error, dead_at} (dead letters)."""
    return f"{app_tag(client_id)}:wh:dead"


def webhook_dead_index(client_id: str) -> str:
    """Sorted set: dead event id -> time it was dead-lettered."""
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
