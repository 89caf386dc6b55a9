"""Login, logout and the home page: who is signed in (kept apart from protocol code).

Failed logins are counted per account and client address, per address, and per account with a
growing delay that the person's known addresses skip (``broker.directory.throttle``); at a limit the
page answers 429 with ``Retry-After``. Sessions are server-side (``broker.web.interactions.session``).
Unknown usernames and wrong passwords get the same message, the same counting and (through an
argon2 verify against a dummy hash) about the same time, so the form does not reveal who exists.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Response, redirect, render_template, request
from flask_babel import gettext
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from broker.directory import service as directory
from broker.directory import throttle
from broker.errors import RateLimited
from broker.web.interactions import csp, session
from broker.web.interactions import logout as logout_mod  # also attaches /end-session
from broker.web.interactions.blueprint import bp
from broker.web.shared import context as web


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()
    force = HiddenField()


class LogoutForm(FlaskForm):
    pass


def safe_next(value: str | None) -> str | None:
    """A local absolute path (``/...``) or None: never ``//host``, a scheme, or a backslash."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def too_many(retry_after: int) -> RateLimited:
    return RateLimited(
        gettext(
            "Too many failed sign-in attempts. Try again in %(minutes)s minute(s).",
            minutes=max(1, retry_after // 60 or 1),
        ),
        headers={"Retry-After": str(max(1, retry_after))},
    )


def _form_page(form: LoginForm, error: str | None = None, status: int = 200) -> Response:
    html = render_template("interactions/login.html", form=form, error=error)
    page = Response(html, status=status, mimetype="text/html")
    # Signing in on the way to an authorization ends at the app: let the form's redirects go there.
    return csp.allow_app_redirects(page, csp.client_of_next(safe_next(form.next.data)))


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse:
    form = LoginForm()
    if request.method == "GET":
        target = safe_next(request.args.get("next")) or "/"
        force = request.args.get("force") == "1"
        if not force and session.current_user_id() is not None:
            return redirect(target, code=303)
        form.next.data = target
        form.force.data = "1" if force else ""
        return _form_page(form)

    if not form.validate_on_submit():  # CSRF failures raise CSRFError -> 400 page
        return _form_page(form, gettext("Enter your username and password."), 400)
    target = safe_next(form.next.data) or "/"
    username = (form.username.data or "").strip()
    attempt = throttle.attempt(web.store(), web.settings(), username, web.client_address())
    wait = throttle.reserve(web.store(), web.settings(), attempt)
    if wait is not None:
        raise too_many(wait)
    uid = directory.verify_password(web.store(), username, form.password.data or "")
    if uid is None:  # the failure was counted by the reservation
        throttle.failed(web.store(), web.settings(), attempt)
        form.password.data = ""
        return _form_page(form, gettext("Wrong username or password"), 401)
    throttle.succeeded(web.store(), attempt)
    session.sign_in(uid, int(time.time()))
    return redirect(target, code=303)


@bp.post("/logout")
def logout() -> BaseResponse:
    LogoutForm().validate_on_submit()  # CSRFProtect already refused a forged request
    logout_mod.sign_out_here()  # the stored session is deleted: a copied cookie stops working
    return redirect("/login", code=303)


@bp.get("/")
def home() -> Response:
    uid = session.current_user_id()
    user = directory.get_user(web.store(), uid) if uid else None
    html = render_template("interactions/home.html", user=user, logout_form=LogoutForm())
    return Response(html, mimetype="text/html")
