"""Headless Debian chromium through Playwright; people sign in through the real /login form.

Never downloads a browser and never skips: a missing chromium fails the test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = os.environ.get("BROKER_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000  # generous: the suite must pass on a slow, busy machine


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser) -> Page:
    """A page in a context of its own: its own cookies, so each person has their own session."""
    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def fill_login_form(page: Page, username: str, password: str) -> None:
    """On the sign-in page: type the credentials and submit, as a person would."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def sign_in(page: Page, base: str, username: str, password: str, next_path: str = "/") -> None:
    page.goto(f"{base}/login?next={quote(next_path)}")
    fill_login_form(page, username, password)
    assert page.url == f"{base}{next_path}", page.url


@contextmanager
def signed_in_page(base: str, username: str, password: str, next_path: str = "/") -> Iterator[Page]:
    with chromium() as browser:
        page = new_page(browser)
        sign_in(page, base, username, password, next_path)
        yield page


def text_of(page: Page, selector: str) -> str:
    return re.sub(r"\s+", " ", page.locator(selector).inner_text()).strip()


def create_person(store: Any, username: str, nickname: str, password: str | None = None) -> str:
    """A directory user with a password (the platform's own sign-up), returns the user id."""
    from broker.directory import service as directory

    user = directory.create_user(
        store, {"username": username, "password": password or f"{username}-password", "nickname": nickname}
    )
    return str(user["id"])
