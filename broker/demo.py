"""``broker demo``: the production server seeded with the demo data of DESIGN's contract."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import click
from flask import Flask

from broker.config import Settings
from broker.directory import departments
from broker.directory import service as directory
from broker.storage import keys
from broker.storage.store import Store

CREDENTIALS_FILE = "demo-credentials.json"


def seed(store: Store, settings: Settings) -> dict[str, Any]:
    """Create (or find again) the demo data; returns the credentials document. Idempotent."""
    creds: dict[str, Any] = {
        "issuer": settings.issuer,
        "platform_api_key": settings.platform_api_key,
        "users": {},
        "orgs": {},
        "apps": {},
    }
    seed_directory(store, settings, creds)
    seed_apps(store, settings, creds)
    return creds


DEMO_ORGS = ("acme", "globex")
# name -> (org, role); dave belongs to no organization.
DEMO_USERS: dict[str, tuple[str | None, str | None]] = {
    "alice": ("acme", "admin"),
    "bob": ("acme", "member"),
    "carol": ("globex", "admin"),
    "dave": (None, None),
}


def _demo_passwords(settings: Settings) -> dict[str, str]:
    """Random demo passwords, generated once and kept in the data directory (mode 0600)."""
    path = settings.data_dir / "demo-passwords.json"
    stored: dict[str, str] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
            stored = (
                {k: v for k, v in loaded.items() if isinstance(v, str)} if isinstance(loaded, dict) else {}
            )
        except (OSError, ValueError):
            stored = {}
    missing = [name for name in DEMO_USERS if not stored.get(name)]
    if missing:
        for name in missing:
            stored[name] = secrets.token_urlsafe(12)
        write_credentials(path, stored)
    return stored


def seed_directory(store: Store, settings: Settings, creds: dict[str, Any]) -> None:
    """Demo orgs and users, found again by name on restart (the org id is kept in a name index)."""
    passwords = _demo_passwords(settings)
    org_ids: dict[str, str] = {}
    for name in DEMO_ORGS:
        index = keys.demo_org(name)
        oid = store.redis.get(index)
        if not oid or directory.get_org(store, oid) is None:
            oid = directory.create_org(store, {"name": name.capitalize()})["id"]
            store.redis.set(index, oid)
        org_ids[name] = oid
        creds["orgs"][name] = {"id": oid}
    for name, (org_name, role) in DEMO_USERS.items():
        user = directory.find_user_by_username(store, name)
        if user is None:
            user = directory.create_user(
                store,
                {
                    "username": name,
                    "password": passwords[name],
                    "nickname": name.capitalize(),
                    "avatar": f"{settings.issuer}/static/avatar.svg",
                    "name": f"{name.capitalize()} Example",
                    "email": f"{name}@example.com",
                },
            )
        elif directory.verify_password(store, name, passwords[name]) is None:
            directory.update_user(store, user["id"], {"password": passwords[name]})
        if org_name and role:
            directory.add_member(store, org_ids[org_name], user["id"], role)
        creds["users"][name] = {"id": user["id"], "password": passwords[name]}
    acme = org_ids["acme"]
    if not departments.tree(store, acme):  # first start: departments an admin can limit an app to
        for dep_name, member in (("Engineering", "alice"), ("Sales", "bob")):
            dep_id = departments.create(store, acme, dep_name)["id"]
            departments.assign(store, acme, creds["users"][member]["id"], [dep_id])


DEMO_APPS: dict[str, dict[str, Any]] = {
    "org_app": {
        "kind": "org_app",
        "client_type": "confidential",
        "name": "Team Roster",
        "description": "Shows your organization's member list in Team Roster",
        "redirect_uris": [],
        "scopes": ["org.members.read"],
        "developer": "alice",
        # examples/org_app listens here by default; the demo's server workers deliver its events.
        "webhook_url": "http://127.0.0.1:8770/webhook",
    },
    "mini_program": {
        "kind": "mini_program",
        "client_type": "public",
        "name": "Pocket Notes",
        "description": "",
        "redirect_uris": ["http://127.0.0.1:8765/callback"],
        "scopes": ["openid", "profile"],
        "developer": "alice",
    },
    "other_mini_program": {
        "kind": "mini_program",
        "client_type": "confidential",
        "name": "Lunch Vote",
        "description": "",
        "redirect_uris": ["http://127.0.0.1:8766/callback"],
        "scopes": ["openid", "profile"],
        "developer": "carol",
    },
}


def _demo_developer(creds: dict[str, Any], name: str) -> str:
    """Demo apps are owned by demo users (alice develops two, carol one); seed_directory runs first."""
    return str(creds["users"][name]["id"])


def _read_app_secrets(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def seed_apps(store: Store, settings: Settings, creds: dict[str, Any]) -> None:
    """Register the demo apps once; keep their client secrets in the data dir (Redis has hashes only).

    Idempotent across restarts: an app is reused while Redis still has it and the stored secret still
    verifies; otherwise it is re-created (or its secret rotated). Team Roster is added to acme (by
    alice, its admin) unless it already is; a switched-off installation is left as the admin left it.
    """
    from broker.apps import registry as apps_svc
    from broker.consent import installations as inst_svc
    from broker.core import catalog as catalog_mod

    catalog = catalog_mod.load(settings.scopes_dir)
    path = settings.data_dir / "demo-apps.json"
    saved = _read_app_secrets(path)
    changed = False
    for name, spec in DEMO_APPS.items():
        entry = saved.get(name) if isinstance(saved.get(name), dict) else None
        record = (
            apps_svc.get_app(store, str(entry["client_id"])) if entry and entry.get("client_id") else None
        )
        secret = entry.get("client_secret") if entry else None
        if (
            record is not None
            and spec["client_type"] == "confidential"
            and not (
                isinstance(secret, str)
                and apps_svc.verify_secret(store, settings, record["client_id"], secret)
            )
        ):
            secret, _ = apps_svc.rotate_secret(store, settings, record["client_id"])
            changed = True
        if record is None:
            data = {k: v for k, v in spec.items() if k != "developer"}
            data.update(
                developer_id=_demo_developer(creds, spec["developer"]),
                contact="developers@example.com",
                privacy_policy_url="https://example.com/privacy",
            )
            record, secret, _ = apps_svc.register_app(store, settings, catalog, data)
            changed = True
        elif spec.get("webhook_url") and record.get("webhook_url") != spec["webhook_url"]:
            record = apps_svc.update_app(
                store, settings, catalog, record["client_id"], {"webhook_url": spec["webhook_url"]}
            )
        saved[name] = {"client_id": record["client_id"], **({"client_secret": secret} if secret else {})}
        creds["apps"][name] = {
            "client_id": record["client_id"],
            **({"client_secret": secret} if secret else {}),
            "redirect_uris": record["redirect_uris"],
            "kind": record["kind"],
        }
        if spec.get("webhook_url"):
            creds["apps"][name]["webhook_url"] = spec["webhook_url"]
            creds["apps"][name]["webhook_secret"] = apps_svc.webhook_secret(
                store, settings, record["client_id"]
            )
    acme = creds.get("orgs", {}).get("acme")
    if isinstance(acme, dict) and acme.get("id"):
        client_id = creds["apps"]["org_app"]["client_id"]
        if inst_svc.get_installation(store, client_id, str(acme["id"])) is None:
            inst_svc.install(
                store,
                client_id,
                str(acme["id"]),
                ["org.members.read"],
                installed_by=_demo_developer(creds, "alice"),
            )
    if changed:
        write_credentials(path, saved)


def write_credentials(path: Path, creds: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh, indent=2)
    os.replace(tmp, path)


ALLOW_PRIVATE_ENV = "BROKER_WEBHOOK_ALLOW_PRIVATE"


def demo_settings(settings: Settings) -> Settings:
    """The demo's example apps receive webhooks on loopback (127.0.0.1:8770), which the broker
    refuses by default (broker.events.egress): the demo allows private destinations unless
    BROKER_WEBHOOK_ALLOW_PRIVATE is set explicitly (then that value wins)."""
    from dataclasses import replace

    if ALLOW_PRIVATE_ENV in os.environ:
        return settings
    return replace(settings, webhook_allow_private=True)


@click.command("demo", help="run the server seeded with demo data and print where to click")
@click.option("--port", type=int, metavar="PORT", help="override BROKER_PORT")
@click.option(
    "--credentials-out",
    type=click.Path(path_type=Path),
    metavar="CREDENTIALS_OUT",
    help="write the demo credentials as JSON to this file",
)
def demo(port: int | None, credentials_out: Path | None) -> int:
    from broker.commands import settings_with_port
    from broker.runtime import configure_logging
    from broker.server import run

    settings = demo_settings(settings_with_port(port))
    configure_logging(settings.log_level, settings.log_format)

    def on_ready(store: Store, app: Flask) -> None:
        creds = seed(store, settings)
        # Always in the data directory (the examples read it from there), and where asked.
        write_credentials(settings.data_dir / CREDENTIALS_FILE, creds)
        if credentials_out:
            write_credentials(credentials_out, creds)
        print(banner(settings, creds), flush=True)

    # The demo delivers webhooks from its own server workers, so one command runs everything.
    return run(settings, on_ready=on_ready, deliver_webhooks=True)


def banner(settings: Settings, creds: dict[str, Any]) -> str:
    base = settings.issuer
    lines = [
        "",
        "broker demo is running",
        f"  issuer / home:      {base}/",
        f"  sign in:            {base}/login",
        f"  discovery:          {base}/.well-known/openid-configuration",
        "  users (password):",
    ]
    roles = {
        name: f"{role} of {org}" if org else "no organization" for name, (org, role) in DEMO_USERS.items()
    }
    for name, user in creds["users"].items():
        lines.append(f"    {name:<8} {user['password']:<20} {roles.get(name, '')}")
    acme = creds["orgs"].get("acme", {}).get("id", "")
    lines += [
        f"  credentials (JSON): {settings.data_dir / CREDENTIALS_FILE}",
        "  walk-through (README.md):",
        f"    1. sign in as alice, open {base}/admin/orgs/{acme}/app-center and add Team Roster",
        f"    2. run examples/org_app/app.py --credentials {settings.data_dir / CREDENTIALS_FILE}"
        " and open http://127.0.0.1:8770/",
        f"    3. run examples/mini_program/app.py --credentials {settings.data_dir / CREDENTIALS_FILE}"
        " and open http://127.0.0.1:8765/ as bob",
        f"    4. as bob, open {base}/privacy to see and withdraw what each app received",
    ]
    if settings.webhook_allow_private:
        lines.append(
            "  webhooks may go to loopback and private addresses (the example apps are on 127.0.0.1);"
            " never set BROKER_WEBHOOK_ALLOW_PRIVATE in production"
        )
    lines.append("")
    return "\n".join(lines)
