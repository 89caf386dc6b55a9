"""Re-authentication for the few actions that cannot be undone or hand out a credential: deleting
one's account (privacy center), disbanding an org (admin console), rotating a client or webhook
secret (developer console).

The action goes ahead when the password was entered within ``BROKER_REAUTH_SECONDS`` (the session's
``auth_time``: a fresh sign-in counts) or when the request carries the password again (the form's
``password`` field, or ``"password"`` in an API body). A wrong password is counted by the same
failed-login limits as the login page, so re-authentication is no way around them.
"""

from __future__ import annotations

import time

from flask_babel import gettext

from broker.directory import service as directory
from broker.directory import throttle
from broker.errors import Forbidden
from broker.web.interactions import session
from broker.web.interactions.login import too_many
from broker.web.shared import context as web


class ReauthRequired(Forbidden):
    """The action needs the password again (``password`` in the form or body)."""

    code = "reauth_required"
    title = "Re-authentication required"


def password_given() -> str | None:
    """The password sent with this request: the form's ``password`` field or ``"password"`` in a JSON
    object body; None when there is none."""
    from flask import request

    value = request.form.get("password") if request.form else None
    if value is None and request.is_json:
        body = request.get_json(silent=True)
        value = body.get("password") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


def message() -> str:
    return gettext("Enter your password again to confirm this.")


def require(uid: str, password: str | None) -> None:
    """Return when ``uid`` authenticated recently or ``password`` is theirs; else ``ReauthRequired``
    (``RateLimited`` when the failed-login limits hold)."""
    if not password:
        if session.recently_authenticated():
            return
        raise ReauthRequired(
            f"enter your password again: this action needs a sign-in within the last "
            f"{web.settings().reauth_seconds} seconds",
            fields={"password": ["required"]},
        )
    store, settings = web.store(), web.settings()
    username = directory.user_field(store, uid, "username") or ""
    att = throttle.attempt(store, settings, username, web.client_address())
    wait = throttle.reserve(store, settings, att)
    if wait is not None:
        raise too_many(wait)
    if directory.verify_password(store, username, password) != uid:
        throttle.failed(store, settings, att)
        raise ReauthRequired("the password is wrong", fields={"password": ["wrong password"]})
    throttle.succeeded(store, att)
    session.reauthenticated(int(time.time()))
