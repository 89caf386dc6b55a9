"""The developer console as its tests drive it: the registration form and registering through it."""

from __future__ import annotations

import re
from typing import Any

FORM = {
    "kind": "org_app",
    "client_type": "confidential",
    "name": "Roster",
    "description": "Team roster",
    "contact": "dev@example.com",
    "privacy_policy_url": "https://roster.example.com/privacy",
    "redirect_uris": "https://roster.example.com/cb\n\n  https://roster.example.com/cb2  ",
    "scopes": "org.members.read",
    "webhook_url": "https://roster.example.com/hooks",
}


def register(client: Any, **over: str) -> str:
    response = client.post("/developer/apps", data={**FORM, **over})
    assert response.status_code == 303, response.get_data(as_text=True)
    match = re.fullmatch(r"/developer/apps/(app_[0-9a-f]{16})", response.headers["Location"])
    assert match
    return match.group(1)
