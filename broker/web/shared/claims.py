"""Names the data API and userinfo answer with, and that their documentation describes."""

from __future__ import annotations

MEMBER_SCOPE = "org.members.read"  # what an installation's token needs for the members API
OIDC_CLAIMS = {"user_id": "sub", "nickname": "nickname", "avatar": "picture"}  # field -> OIDC claim
