"""Every id and credential format, defined once: the prefixes, the patterns and the generators.

Ids are a type prefix and 16 hex digits (64 random bits): ``usr_`` people, ``org_`` organizations,
``app_`` apps (the OAuth client id), ``in_`` installations, ``gr_`` grants, ``rq_`` requests,
``dep_`` departments.
Credentials are a type prefix, for tokens and codes the client id, then 256 random bits in URL-safe
base64 (``brk_at_<client_id>.<43 chars>``), so a leaked one is recognised by secret scanners and
its app is known from the token itself (its hash-tag slot, DESIGN invariant 6).
"""

from __future__ import annotations

import re
import secrets

# -- ids ---------------------------------------------------------------------------------------

USER_ID = r"^usr_[0-9a-f]{16}$"
ORG_ID = r"^org_[0-9a-f]{16}$"
CLIENT_ID = r"^app_[0-9a-f]{16}$"
DEPARTMENT_ID = r"^dep_[0-9a-f]{16}$"
USERNAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$"
USER_ID_OR_EMPTY = r"^(usr_[0-9a-f]{16})?$"

USER_ID_RE = re.compile(USER_ID)
ORG_ID_RE = re.compile(ORG_ID)
CLIENT_ID_RE = re.compile(CLIENT_ID)
DEPARTMENT_ID_RE = re.compile(DEPARTMENT_ID)
USERNAME_RE = re.compile(USERNAME)


def _new(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(8)}"


def new_user_id() -> str:
    return _new("usr_")


def new_org_id() -> str:
    return _new("org_")


def new_department_id() -> str:
    return _new("dep_")


def new_client_id() -> str:
    return _new("app_")


def new_installation_id() -> str:
    return _new("in_")


def new_grant_id() -> str:
    return _new("gr_")


def new_request_id() -> str:
    """An org-admin request (a member asking for a mini-program), not an HTTP request id."""
    return _new("rq_")


# -- credentials ---------------------------------------------------------------------------------

ACCESS_PREFIX = "brk_at_"
REFRESH_PREFIX = "brk_rt_"
CODE_PREFIX = "brk_ac_"
CLIENT_SECRET_PREFIX = "brk_cs_"  # noqa: S105 - a type prefix, not a secret
WEBHOOK_SECRET_PREFIX = "brk_whsec_"  # noqa: S105 - a type prefix, not a secret
RANDOM_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


def new_token(prefix: str, client_id: str) -> str:
    """An access token, refresh token or authorization code of ``client_id``."""
    return f"{prefix}{client_id}.{secrets.token_urlsafe(32)}"


def client_of(token: str, prefix: str) -> str | None:
    """The client id embedded in a well-formed token of the given type, else None."""
    if not isinstance(token, str) or not token.startswith(prefix) or len(token) > 200:
        return None
    client_id, sep, rand = token[len(prefix) :].partition(".")
    if not sep or not CLIENT_ID_RE.match(client_id) or not RANDOM_RE.match(rand):
        return None
    return client_id
