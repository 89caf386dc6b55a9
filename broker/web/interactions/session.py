"""Who is signed in, for every page and for the authorization endpoint.

The login page (broker.web.interactions.login) sets ``session["uid"]`` and ``session["auth_time"]``
(unix seconds) after a successful password check. ``current_user_id`` re-checks that the person
still exists and is active on every call, so a deleted account loses its session at once.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import session

from broker.directory import service as directory
from broker.errors import SignInRequired
from broker.web.interactions import i18n
from broker.web.shared import context as web


def current_user_id() -> str | None:
    uid = session.get("uid")
    if not isinstance(uid, str):
        return None
    status = directory.user_status(web.store(), uid)
    if status != "active":
        session.clear()
        return None
    return uid


def login_required(detail: str = "sign in first: this API is authenticated by the session cookie") -> str:
    """The signed-in person's id, or ``SignInRequired``: the renderer sends a browser to the login
    page and back (303), and answers an API call 401 with ``detail`` and a cookie challenge. The
    one way every page and session API asks for a person."""
    uid = current_user_id()
    if uid is None:
        raise SignInRequired(detail)
    return uid


def auth_time() -> int | None:
    value = session.get("auth_time")
    return int(value) if isinstance(value, int | float) else None


def sign_in(user_id: str, now: int) -> None:
    keep = {k: session[k] for k in i18n.SESSION_KEYS if k in session}  # the page language only
    session.clear()  # a fresh session on login: no fixation
    session.update(keep)
    session["uid"] = user_id
    session["auth_time"] = now


def sign_out() -> None:
    session.clear()


def login_url(next_path: str, *, force: bool = False) -> str:
    """Where to send someone who must (re-)authenticate; ``next_path`` must be a local path."""
    params = {"next": next_path}
    if force:
        params["force"] = "1"
    return f"/login?{urlencode(params)}"
