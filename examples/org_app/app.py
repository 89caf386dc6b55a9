"""Team Roster: an example App Center app for the broker, written as a third-party developer would.

It does not import ``broker``: only Flask, Authlib's requests client and the standard library.

    python examples/org_app/app.py --credentials var/demo-credentials.json

Settings come from the demo's credentials file (``broker demo`` writes var/demo-credentials.json) or
from the environment: ISSUER, CLIENT_ID, CLIENT_SECRET, ORG_ID, WEBHOOK_SECRET.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import json
import os
import threading
import time
from collections import deque
from typing import Any

from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, Response, request

TOLERANCE_SECONDS = 300  # reject signatures older (or newer) than this: replay protection
MAX_EVENTS = 50


def verify_signature(secret: str, header: str | None, body: bytes, now: float | None = None) -> bool:
    """Check ``Broker-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.

    Several v1 values may be present while the broker rotates the secret; any match is enough.
    """
    if not secret or not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)


def load_settings(credentials: str | None) -> dict[str, str]:
    """The demo's credentials file first, the environment over it."""
    conf = {"issuer": "", "client_id": "", "client_secret": "", "org_id": "", "webhook_secret": ""}
    if credentials:
        with open(credentials) as f:
            creds = json.load(f)
        app = creds["apps"]["org_app"]
        conf.update(
            issuer=creds["issuer"],
            client_id=app["client_id"],
            client_secret=app.get("client_secret", ""),
            org_id=creds["orgs"]["acme"]["id"],
            webhook_secret=app.get("webhook_secret", ""),
        )
    for key in conf:
        conf[key] = os.environ.get(key.upper(), conf[key])
    return conf


PAGE = "<!doctype html><meta charset=utf-8><title>Team Roster</title><h1>Team Roster</h1>{}"


def create_app(conf: dict[str, str]) -> Flask:
    app = Flask(__name__)
    events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
    seen: set[str] = set()
    lock = threading.Lock()

    def fetch_members() -> tuple[str, list[dict[str, Any]]]:
        """('ok', members) or ('off', []) when the broker refuses this org's token or data."""
        client = OAuth2Session(conf["client_id"], conf["client_secret"])
        token = client.post(
            f"{conf['issuer']}/oauth/token",
            data={"grant_type": "client_credentials", "org_id": conf["org_id"]},
            auth=(conf["client_id"], conf["client_secret"]),
            timeout=10,
        )
        if token.status_code == 400 and token.json().get("error") in {"invalid_grant", "unauthorized_client"}:
            return "off", []
        token.raise_for_status()
        client.token = token.json()
        members: list[dict[str, Any]] = []
        url = f"{conf['issuer']}/v1/orgs/{conf['org_id']}/members?limit=100"
        while url:
            page = client.get(url, timeout=10)
            if page.status_code in (401, 403, 404):
                return "off", []
            page.raise_for_status()
            body = page.json()
            members.extend(body["members"])
            cursor = body.get("next_cursor")
            url = (
                f"{conf['issuer']}/v1/orgs/{conf['org_id']}/members?limit=100&after={cursor}"
                if cursor
                else ""
            )
        return "ok", members

    @app.get("/")
    def index() -> Response:
        state, members = fetch_members()
        if state == "off":
            body = (
                '<p id="state" data-state="switched-off">This organization has switched the app off. '
                "Ask an organization admin to enable Team Roster again.</p>"
            )
            return Response(PAGE.format(body), status=200)
        rows = "".join(
            f"<li data-user-id='{html.escape(m['user_id'])}'>"
            f"<img src='{html.escape(m.get('avatar') or '')}' alt='' width=24> "
            f"{html.escape(m['nickname'])}</li>"
            for m in members
        )
        return Response(
            PAGE.format(f'<p id="state" data-state="ok">{len(members)} members</p><ul>{rows}</ul>')
        )

    @app.post("/webhook")
    def webhook() -> Response:
        body = request.get_data()
        if not verify_signature(conf["webhook_secret"], request.headers.get("Broker-Signature"), body):
            return Response("bad or stale signature\n", status=400)
        try:
            event = json.loads(body)
            event_id, event_type = str(event["id"]), str(event["type"])
        except (ValueError, KeyError, TypeError):
            return Response("bad event\n", status=400)
        with lock:
            if event_id not in seen:  # delivery is at least once: deduplicate on the event id
                seen.add(event_id)
                events.appendleft(
                    {"id": event_id, "type": event_type, "verified": True, "data": event.get("data")}
                )
        return Response(status=204)

    @app.get("/events")
    def list_events() -> Response:
        with lock:
            snapshot = list(events)
        if request.args.get("format") == "json":
            return Response(json.dumps({"events": snapshot}), mimetype="application/json")
        rows = "".join(
            f"<li>{html.escape(e['type'])} ({html.escape(e['id'])}) verified</li>" for e in snapshot
        )
        return Response(PAGE.format(f"<h2>Lifecycle events</h2><ul>{rows}</ul>"))

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials", help="the file written by broker demo --credentials-out")
    parser.add_argument("--port", type=int, default=8770)
    parser.add_argument("--webhook-secret-file", help="a file holding the webhook secret")
    args = parser.parse_args()
    conf = load_settings(args.credentials)
    if args.webhook_secret_file:
        with open(args.webhook_secret_file) as f:
            conf["webhook_secret"] = f.read().strip()
    create_app(conf).run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
