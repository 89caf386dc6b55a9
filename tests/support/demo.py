"""A real `broker demo` process on loopback for the end-to-end tests, and a person walking an
authorization request through its login and consent pages as a browser would.

Registered as a pytest plugin in tests/conftest.py: the module-scoped ``demo`` fixture is there for
every test module that asks for it (one demo process per module)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from broker.storage.embedded import free_port
from tests.support.environment import broker_env
from tests.support.htmlforms import form_with


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("demo")
    port = free_port()
    creds_file = tmp / "creds.json"
    env = broker_env(
        tmp, BROKER_ISSUER=f"http://127.0.0.1:{port}", BROKER_WORKERS="1", BROKER_CHECKPOINT_SECONDS="1"
    )
    log = open(tmp / "demo.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "demo", "--port", str(port), "--credentials-out", str(creds_file)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"broker demo exited: {(tmp / 'demo.log').read_text()}")
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200 and creds_file.exists():
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError(f"broker demo did not become ready: {(tmp / 'demo.log').read_text()}")
    creds = json.loads(creds_file.read_text())
    yield {"base": base, "creds": creds, "log": tmp / "demo.log", "env": env, "data": tmp / "data"}
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    finally:
        log.close()
    output = (tmp / "demo.log").read_text()
    assert code == 0 and "Traceback" not in output, output[-3000:]  # a clean shutdown


def sign_in_and_consent(
    browser: requests.Session,
    url: str,
    redirect_uri: str,
    user: dict[str, str],
    username: str,
    untick: tuple[str, ...] = (),
) -> str:
    """Follow the authorization request through login and consent; return the final redirect."""
    for _ in range(10):
        response = browser.get(url, allow_redirects=False, timeout=10)
        if response.status_code in (302, 303):
            url = requests.compat.urljoin(url, response.headers["Location"])
            if url.startswith(redirect_uri):
                return url
            continue
        assert response.status_code == 200, response.text[:500]
        if 'name="password"' in response.text:
            form = form_with(response.text, response.url, field_name="password")
            posted = browser.post(
                form.action,
                data=form.values(username=username, password=user["password"]),
                allow_redirects=False,
                timeout=10,
            )
        else:
            form = form_with(response.text, response.url, action_part="/consent/")
            posted = browser.post(
                form.action,
                data=form.values(press="approve", untick=untick),
                allow_redirects=False,
                timeout=10,
            )
        assert posted.status_code == 303, posted.text[:500]
        url = requests.compat.urljoin(form.action, posted.headers["Location"])
        if url.startswith(redirect_uri):
            return url
    raise AssertionError("the authorization flow did not finish")
