"""Login page: CSRF, same answer for unknown user and wrong password, rate limits, safe ``next``."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.app import create_app
from broker.directory import service as directory
from broker.storage import keys
from broker.web.interactions.login import safe_next

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def csrf_client(settings, store) -> Any:
    """A client with CSRF checks on (the default fixture app is fine; TESTING does not disable them)."""
    app = create_app(replace(settings, login_max_failures=3, login_max_failures_per_ip=5), store)
    return app.test_client()


@pytest.fixture
def alice(store) -> str:
    return directory.create_user(
        store, {"username": "alice", "password": "alice-password", "nickname": "Alice"}
    )["id"]


def token(client: Any, path: str = "/login") -> str:
    page = client.get(path)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)
    return match.group(1)


def post_login(client: Any, username: str, password: str, **extra: str) -> Any:
    data = {"csrf_token": token(client), "username": username, "password": password, **extra}
    return client.post("/login", data=data)


def test_login_success_sets_session_and_redirects(csrf_client, alice) -> None:
    resp = post_login(csrf_client, "alice", "alice-password", next="/privacy?x=1")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/privacy?x=1"
    cookie = resp.headers["Set-Cookie"]
    assert "broker_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    home = csrf_client.get("/")
    assert home.status_code == 200 and 'id="signed-in-as">Alice<' in home.get_data(as_text=True)
    # Signed in: /login forwards unless force=1 (prompt=login / max_age).
    again = csrf_client.get("/login?next=/x")
    assert again.status_code == 303 and again.headers["Location"] == "/x"
    assert csrf_client.get("/login?force=1").status_code == 200


def test_same_answer_for_unknown_user_and_wrong_password(csrf_client, alice) -> None:
    wrong = post_login(csrf_client, "alice", "nope-nope")
    unknown = post_login(csrf_client, "mallory", "nope-nope")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password" in wrong.get_data(as_text=True)
    assert "Wrong username or password" in unknown.get_data(as_text=True)
    assert "You are not signed in" in csrf_client.get("/").get_data(as_text=True)


def test_missing_csrf_token_is_refused(csrf_client, alice, store) -> None:
    resp = csrf_client.post("/login", data={"username": "alice", "password": "alice-password"})
    assert resp.status_code == 400
    assert "csrf_failed" in resp.get_data(as_text=True)


def test_account_rate_limit_answers_429_with_retry_after(csrf_client, alice, store) -> None:
    for _ in range(3):
        assert post_login(csrf_client, "alice", "bad-password").status_code == 401
    blocked = post_login(csrf_client, "alice", "alice-password")  # even the right password waits
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 900
    assert 0 < store.redis.ttl(keys.login_failures_account(alice)) <= 900


def test_unknown_accounts_are_limited_too(csrf_client, store) -> None:
    for _ in range(3):
        assert post_login(csrf_client, "ghost", "bad-password").status_code == 401
    assert post_login(csrf_client, "ghost", "bad-password").status_code == 429


def test_ip_rate_limit(csrf_client, store) -> None:
    for i in range(5):
        assert post_login(csrf_client, f"user{i}", "bad-password").status_code == 401
    blocked = post_login(csrf_client, "someone-else", "bad-password")
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    assert store.redis.get(keys.login_failures_ip("127.0.0.1")) == "5"


def test_success_clears_the_account_counter(csrf_client, alice, store) -> None:
    post_login(csrf_client, "alice", "bad-password")
    assert post_login(csrf_client, "alice", "alice-password").status_code == 303
    assert store.redis.get(keys.login_failures_account(alice)) is None


def test_logout(csrf_client, alice) -> None:
    post_login(csrf_client, "alice", "alice-password")
    resp = csrf_client.post("/logout", data={"csrf_token": token(csrf_client, "/")})
    assert resp.status_code == 303 and resp.headers["Location"] == "/login"
    assert "You are not signed in" in csrf_client.get("/").get_data(as_text=True)


def test_deleted_user_loses_the_session(csrf_client, alice, store) -> None:
    post_login(csrf_client, "alice", "alice-password")
    directory.delete_user(store, alice)
    assert "You are not signed in" in csrf_client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/consent?x=1", "/consent?x=1"),
        ("//evil.example/x", None),
        ("/\\evil.example", None),
        ("https://evil.example/", None),
        ("javascript:alert(1)", None),
        ("evil", None),
        ("/ok\r\nSet-Cookie: x", None),
        ("", None),
        (None, None),
    ],
)
def test_next_is_only_a_local_path(value: str | None, expected: str | None) -> None:
    assert safe_next(value) == expected


def test_open_redirect_is_ignored(csrf_client, alice) -> None:
    resp = post_login(csrf_client, "alice", "alice-password", next="//evil.example/")
    assert resp.status_code == 303 and resp.headers["Location"] == "/"


@given(st.text(max_size=60))
def test_safe_next_never_leaves_the_site(value: str) -> None:
    result = safe_next(value)
    if result is not None:
        parts = urlsplit(result)
        assert result.startswith("/") and not result.startswith("//") and "\\" not in result
        assert not parts.scheme and not parts.netloc
        assert all(ord(ch) >= 0x20 and ord(ch) != 0x7F for ch in result)


def test_a_parallel_burst_cannot_pass_the_limit(tmp_path, redis_server, store, alice) -> None:
    """Twenty wrong passwords at once over real HTTP: exactly the limit of them are checked."""
    import threading

    import requests

    from broker.storage.embedded import free_port
    from tests.support.environment import LiveServer, make_settings

    port = free_port()
    settings = replace(
        make_settings(tmp_path, redis_server.url), login_max_failures=3, login_max_failures_per_ip=100
    )
    server = LiveServer(create_app(settings, store), port)
    server.start()
    try:
        sessions = []
        for _ in range(20):
            web = requests.Session()
            page = web.get(f"{server.url}/login", timeout=10)
            match = CSRF_RE.search(page.text)
            assert match
            sessions.append((web, match.group(1)))
        start = threading.Barrier(len(sessions))
        statuses: list[int] = []

        def attempt(web: requests.Session, csrf: str) -> None:
            start.wait(10)
            answer = web.post(
                f"{server.url}/login",
                data={"csrf_token": csrf, "username": "alice", "password": "wrong-password"},
                allow_redirects=False,
                timeout=30,
            )
            statuses.append(answer.status_code)

        threads = [threading.Thread(target=attempt, args=pair) for pair in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        server.stop()
    assert sorted(statuses) == [401] * 3 + [429] * 17
    # The counter holds the attempts really checked; refused ones were given back.
    assert store.redis.get(keys.login_failures_account(alice)) == "3"
