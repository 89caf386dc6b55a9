"""``broker demo``: the production server seeded with the demo data of DESIGN's contract."""

from __future__ import annotations

import argparse
import json
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from broker.config import Settings
from broker.services import directory
from broker.storage import keys
from broker.storage.store import Store


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the server seeded with demo data and print where to click")
    demo.add_argument("--port", type=int, help="override BROKER_PORT")
    demo.add_argument("--credentials-out", type=Path, help="write the demo credentials as JSON to this file")
    demo.set_defaults(func=cmd_demo)


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


def write_credentials(path: Path, creds: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh, indent=2)
    os.replace(tmp, path)


def cmd_demo(args: argparse.Namespace) -> int:
    from broker.commands import settings_with_port
    from broker.server import configure_logging, run

    settings = settings_with_port(args.port)
    configure_logging(settings.log_level)

    def on_ready(store: Store, app: Flask) -> None:
        creds = seed(store, settings)
        if args.credentials_out:
            write_credentials(args.credentials_out, creds)
        print(banner(settings, creds), flush=True)

    return run(settings, on_ready=on_ready)


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
    lines.append("")
    return "\n".join(lines)
