"""Signing a person in. Two ways, named for what they do:

- ``session_sign_in``: writes the signed-in session straight into the Flask test client's cookie,
  skipping the login page on purpose. For tests about what happens after login (consoles, consent,
  the privacy center, the protocol); the login page itself is tested in tests/test_login.py.
- ``http_sign_in``: a real sign-in over HTTP (GET /login, POST the form with its CSRF token) against a
  running broker; for the end-to-end tests. The same in a real browser: tests/support/browser.py.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from tests.support.htmlforms import form_with


def session_sign_in(client: Any, uid: str, auth_time: int | None = None) -> None:
    """Sign ``uid`` in on a Flask test client without the login page (``auth_time`` defaults to now)."""
    with client.session_transaction() as sess:
        sess["uid"] = uid
        sess["auth_time"] = int(time.time()) if auth_time is None else auth_time


def http_sign_in(base: str, user: dict[str, str], username: str) -> requests.Session:
    """Sign in through the login form of the broker at ``base``; returns the signed-in session."""
    browser = requests.Session()
    page = browser.get(f"{base}/login", timeout=10)
    form = form_with(page.text, page.url, field_name="password")
    done = browser.post(
        form.action,
        data=form.values(username=username, password=user["password"]),
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code == 303, done.text[:300]
    return browser
