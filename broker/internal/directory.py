"""Platform API: directory (users, organizations, memberships, bulk import)."""

from __future__ import annotations
