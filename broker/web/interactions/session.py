"""Who is signed in, for every page and for the authorization endpoint.

Sessions are held server-side (``broker.directory.sessions``): the ``broker_session`` cookie holds only a
random id. ``ServerSessionInterface`` plugs that into Flask, so ``flask.session`` (and flask-wtf's CSRF
token in it) work as before. The login page sets ``session["uid"]`` and ``session["auth_time"]`` (unix
seconds) after a successful password check and always gets a new id (no fixation); sign-out deletes the
session in Redis, so a copied cookie stops working at once. ``current_user_id`` re-checks that the
person still exists and is active on every call.
"""

from __future__ import annotations

import time
from typing import Any, cast
from urllib.parse import urlencode

import redis
from flask import Flask, Request, Response, session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from broker.config import Settings
from broker.directory import service as directory
from broker.directory import sessions
from broker.errors import SignInRequired
from broker.web.interactions import i18n
from broker.web.shared import context as web


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """The request's view of one stored session. ``record`` is None until it is first saved;
    ``regenerate`` asks for a new id at the end of the request (set on sign-in)."""

    def __init__(self, record: sessions.Session | None = None, failed: Exception | None = None) -> None:
        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(record.data if record else None, on_update)
        self.record = record
        self.regenerate = False
        self.modified = False
        self.failed = failed  # the storage error that kept the session from being read


class ServerSessionInterface(SessionInterface):
    def open_session(self, app: Flask, request: Request) -> ServerSession:
        settings = cast(Settings, app.extensions["broker.settings"])
        value = request.cookies.get(self.get_cookie_name(app))
        if value:
            try:
                found = sessions.load(app.extensions["broker.store"], settings, value)
            except redis.RedisError as exc:  # no one is signed in while storage is down: see current_user_id
                return ServerSession(failed=exc)
            if found is not None:
                return ServerSession(found)
        return ServerSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        if session.failed is not None:
            return  # the stored session could not be read: leave it and the cookie as they are
        store = app.extensions["broker.store"]
        settings = cast(Settings, app.extensions["broker.settings"])
        name = self.get_cookie_name(app)
        record = session.record
        if not session:
            if record is not None:
                sessions.end(store, settings, record)
                response.delete_cookie(
                    name, path=self.get_cookie_path(app), domain=self.get_cookie_domain(app)
                )
            return
        uid = session.get("uid") if isinstance(session.get("uid"), str) else None
        now = int(time.time())
        if record is None or session.regenerate or record.uid != uid:
            if record is not None:
                sessions.end(store, settings, record)
            from flask import request

            record = sessions.create(store, settings, uid, dict(session), address=web.client_address(),
                                     agent=request.headers.get("User-Agent", ""), now=now)  # fmt: skip
            session.record = record
            response.set_cookie(
                name,
                record.cookie,
                httponly=self.get_cookie_httponly(app),
                secure=self.get_cookie_secure(app),
                samesite=self.get_cookie_samesite(app),
                path=self.get_cookie_path(app),
                domain=self.get_cookie_domain(app),
            )
            response.vary.add("Cookie")
            return
        if session.modified or sessions.needs_touch(record, now):
            record.data = dict(session)
            if not sessions.save(store, settings, record, now=now):  # ended while this request ran
                response.delete_cookie(
                    name, path=self.get_cookie_path(app), domain=self.get_cookie_domain(app)
                )


def current() -> sessions.Session | None:
    """The stored session of this request (None before it is first saved)."""
    return cast(ServerSession, session._get_current_object()).record  # type: ignore[attr-defined]


def current_user_id() -> str | None:
    failed = cast(ServerSession, session._get_current_object()).failed  # type: ignore[attr-defined]
    if failed is not None:
        raise failed  # 503 from the error renderer, never "signed out"
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


def recently_authenticated(window: int | None = None) -> bool:
    """Whether the password was entered within ``window`` seconds (``BROKER_REAUTH_SECONDS``)."""
    at = auth_time()
    limit = web.settings().reauth_seconds if window is None else window
    return at is not None and 0 <= time.time() - at <= limit


def sid_for(client_id: str) -> str:
    """The public id of this session, for an id_token issued to ``client_id`` (noted in the session
    so its end reaches the app by back-channel logout); empty before the session is stored."""
    record = current()
    if record is None or not record.uid:
        return ""
    sessions.note_client(web.store(), web.settings(), record, client_id)
    return record.sid


def sign_in(user_id: str, now: int) -> None:
    keep = {k: session[k] for k in i18n.SESSION_KEYS if k in session}  # the page language only
    session.clear()  # a fresh session on login: no fixation
    session.update(keep)
    session["uid"] = user_id
    session["auth_time"] = now
    cast(ServerSession, session._get_current_object()).regenerate = True  # type: ignore[attr-defined]


def reauthenticated(now: int) -> None:
    """The signed-in person entered the password again: a fresh ``auth_time``, same session."""
    session["auth_time"] = now


def sign_out() -> None:
    session.clear()


def login_url(next_path: str, *, force: bool = False) -> str:
    """Where to send someone who must (re-)authenticate; ``next_path`` must be a local path."""
    params = {"next": next_path}
    if force:
        params["force"] = "1"
    return f"/login?{urlencode(params)}"


def init_app(app: Flask) -> None:
    app.session_interface = ServerSessionInterface()
