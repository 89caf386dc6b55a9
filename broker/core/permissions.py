"""One permission model for an organization's owners, admins and sub-admins.

The admin console, its JSON API, the platform API and the NDJSON import all take their vocabulary
from here, so a permission one of them accepts is one the others accept and enforce
(``broker.consent.org_policy.allows`` decides).

* ``owner``: everything.
* ``admin``: everything but disbanding the organization.
* ``sub_admin``: exactly the permissions below that an owner or admin handed them, and reading the
  audit trail (so they can see what was done with their powers).
* ``member``: nothing administrative.
"""

from __future__ import annotations

from collections.abc import Iterable

ROLES = ("owner", "admin", "sub_admin", "member")

APPS_MANAGE = "apps.manage"  # add, switch off and on, and remove App Center apps; decide requests
MEMBERS_MANAGE = "members.manage"  # add people to the organization and remove plain members
DISCLOSURES_READ = "disclosures.read"  # read what the org's apps received about members

# What an owner or admin can hand to a sub-admin, in the order pages list them.
GRANTABLE = (APPS_MANAGE, MEMBERS_MANAGE, DISCLOSURES_READ)

# Permissions that come only with a role.
ADMINS_MANAGE = "admins.manage"  # appoint and dismiss sub-admins
AUDIT_READ = "audit.read"
ORG_DISBAND = "org.disband"


def unknown(permissions: Iterable[str]) -> list[str]:
    """The names in ``permissions`` that are not grantable (sorted): a request naming any is refused."""
    return sorted(set(permissions) - set(GRANTABLE))
