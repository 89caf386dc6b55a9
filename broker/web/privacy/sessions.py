"""The person's sign-ins and password in the privacy center: ``/privacy/sessions`` and
``/privacy/password`` (pages), ``/privacy/v1/sessions...`` and ``/privacy/v1/password`` (JSON).

A session is listed with its device (read from the User-Agent), the address it signed in from, when
it started and when it was last used (to the minute). Ending one (or all: "sign out everywhere")
deletes it in Redis at once and tells the apps that got an id_token in it (back-channel logout).
Changing the password needs the current one and ends every other session; this one stays.
"""

from __future__ import annotations

import re
import time
from typing import Any

from flask import flash, redirect, request, url_for
from flask_babel import gettext

from broker.directory import service as directory
from broker.directory import sessions
from broker.errors import NotFound, ValidationFailed
from broker.web.interactions import i18n, reauth
from broker.web.interactions import session as login_session
from broker.web.interactions.logout import end_sessions, notify
from broker.web.privacy.blueprint import bp
from broker.web.privacy.pages import _render
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import documented

SIGN_IN = "sign in to use your privacy center"
SID_RE = re.compile(r"[A-Za-z0-9_-]{10,64}")

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Chromium/", "Chromium"), ("Safari/", "Safari"), ("curl/", "curl"),
             ("python-requests/", "Python requests"))  # fmt: skip
_SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))  # fmt: skip


def device(agent: str) -> str:
    """A short "browser on system" from a User-Agent ("unknown device" when neither is known)."""
    if "HeadlessChrome/" in agent:
        browser: str | None = "Chrome (headless)"
    else:
        browser = next((name for mark, name in _BROWSERS if mark in agent), None)
    system = next((name for mark, name in _SYSTEMS if mark in agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "unknown device"


def _listing(uid: str) -> list[dict[str, Any]]:
    here = login_session.current()
    return [
        {
            "id": s.sid,
            "device": device(s.agent),
            "user_agent": s.agent,
            "address": s.address,
            "created_at": s.created,
            "last_used_at": s.last,
            "current": here is not None and here.sid == s.sid,
        }
        for s in sessions.list_for(web.store(), uid)
    ]


def _end(uid: str, sid: str | None) -> tuple[int, bool]:
    """End one session (``sid``) or all; (how many ended, whether this request's session was one)."""
    here = login_session.current()
    if sid is not None and not SID_RE.fullmatch(sid):
        raise NotFound("no such session")
    ended = end_sessions(uid, only_sid=sid)
    if sid is not None and ended == 0:
        raise NotFound("no such session")
    mine = here is not None and (sid is None or here.sid == sid)
    if mine:
        login_session.sign_out()  # ended (and the apps told) above: this clears the cookie
    return ended, mine


def _change_password(uid: str, current: str, new: str) -> int:
    reauth.require(uid, current)  # the current password, counted by the login limits
    here = login_session.current()
    keep = sessions.digest_of(web.settings(), here.cookie) if here is not None and here.cookie else None
    ended: list[sessions.Session] = []
    directory.update_user(web.store(), uid, {"password": new}, keep_session=keep, ended=ended)
    notify(ended)  # the apps of the ended sessions (back-channel logout)
    login_session.reauthenticated(int(time.time()))
    return len(ended)


# --- pages ----------------------------------------------------------------------------------------


@bp.get("/privacy/sessions")
def sessions_page() -> Any:
    uid = login_session.login_required()
    return _render("privacy/sessions.html", i18n.language(), items=_listing(uid))


@bp.post("/privacy/sessions/<sid>/end")
def end_session_page(sid: str) -> Any:
    uid = login_session.login_required()
    _, mine = _end(uid, sid)
    if mine:
        return redirect("/login", code=303)
    flash(gettext("That session is signed out."), "success")
    return redirect(url_for("privacy.sessions_page"), code=303)


@bp.post("/privacy/sessions/end-all")
def end_all_page() -> Any:
    uid = login_session.login_required()
    _end(uid, None)
    return redirect("/login", code=303)


@bp.route("/privacy/password", methods=["GET", "POST"])
def password_page() -> Any:
    uid = login_session.login_required()
    error = None
    status = 200
    if request.method == "POST":
        current = request.form.get("current_password", "")
        new = request.form.get("new_password", "")
        if not 8 <= len(new) <= 1024:
            error, status = gettext("The new password needs 8 to 1024 characters."), 400
        elif new != request.form.get("confirm_password", ""):
            error, status = gettext("The two new passwords differ."), 400
        elif not current:
            error, status = reauth.message(), 403
        else:
            try:
                _change_password(uid, current, new)
            except reauth.ReauthRequired:
                error, status = gettext("The current password is wrong."), 403
            else:
                flash(gettext("Your password is changed. Every other session is signed out."), "success")
                return redirect(url_for("privacy.sessions_page"), code=303)
    page = _render("privacy/password.html", i18n.language(), error=error)
    page.status_code = status
    return page


# --- API ------------------------------------------------------------------------------------------


@bp.get("/privacy/v1/sessions")
@documented(rs.SessionListSchema)
def api_sessions() -> Any:
    """The person's signed-in sessions, most recently used first (``current``: this one)."""
    uid = login_session.login_required(SIGN_IN)
    return {"sessions": _listing(uid)}


@bp.post("/privacy/v1/sessions/<sid>/end")
@documented(rs.SessionsEndedSchema, errors={404: "No such session of yours"})
def api_end_session(sid: str) -> Any:
    """Sign one session out (its cookie stops working at once; apps are told)."""
    uid = login_session.login_required(SIGN_IN)
    ended, mine = _end(uid, sid)
    return {"ended": ended, "signed_out": mine}


@bp.post("/privacy/v1/sessions/end-all")
@documented(rs.SessionsEndedSchema)
def api_end_all() -> Any:
    """Sign out everywhere, this session included."""
    uid = login_session.login_required(SIGN_IN)
    ended, mine = _end(uid, None)
    return {"ended": ended, "signed_out": mine}


@bp.post("/privacy/v1/password")
@documented(
    rs.PasswordChangedSchema,
    body=rs.PasswordChangeSchema,
    errors={403: "The current password is wrong", 429: "Too many failed attempts"},
    summary="Change your password (needs the current one); every other session ends",
)
def api_change_password() -> Any:
    uid = login_session.login_required(SIGN_IN)
    body = web.json_body(rs.PasswordChangeSchema())
    if body["new_password"] == body["current_password"]:
        raise ValidationFailed(
            "the new password is the current one", fields={"new_password": ["same as the current one"]}
        )
    return {"changed": True, "sessions_ended": _change_password(uid, body["current_password"],
                                                                 body["new_password"])}  # fmt: skip
