"""Team Roster: an example App Center app for the broker, written as a third-party developer would.

It does not import ``broker``: only Flask, Authlib's requests client, the ``standardwebhooks``
library (the events are signed per the Standard Webhooks specification) and the standard library.

    python examples/org_app/app.py --credentials var/demo-credentials.json

Settings come from the demo's credentials file (``broker demo`` writes var/demo-credentials.json) or
from the environment: ISSUER, CLIENT_ID, CLIENT_SECRET, ORG_ID, WEBHOOK_SECRET.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, Response, request
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

MAX_EVENTS = 50


def verify_event(secret: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any] | None:
    """The event if ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` prove it comes
    from the broker (Standard Webhooks: the library checks the HMAC, accepts any of several ``v1``
    signatures while the broker rotates the secret, and refuses a timestamp more than 5 minutes
    off); None otherwise.

    ``secret`` is the ``whsec_...`` secret the developer console showed. A secret issued before the
    broker adopted Standard Webhooks (``brk_whsec_...``) is used as it is: its bytes are the key.
    """
    if not secret:
        return None
    key: str | bytes = secret if secret.startswith("whsec_") else secret.encode()
    try:
        event = Webhook(key).verify(body, dict(headers))
    except (WebhookVerificationError, ValueError):
        return None
    return event if isinstance(event, dict) else None


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
        event = verify_event(conf["webhook_secret"], request.headers, request.get_data())
        if event is None:
            return Response("bad or stale signature\n", status=400)
        try:
            event_id, event_type = str(event["id"]), str(event["type"])
        except (KeyError, TypeError):
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
