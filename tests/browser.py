"""Headless Debian chromium through Playwright, signed in by a session cookie (the login page is
built elsewhere). Never downloads a browser and never skips: a missing chromium fails the test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def signed_in_page(live_server: Any, uid: str) -> Iterator[Page]:
    app = live_server.app
    cookie = app.session_interface.get_signing_serializer(app).dumps(
        {"uid": uid, "auth_time": int(time.time())}
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "broker_session", "value": cookie, "url": live_server.url}])
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()
