"""``broker demo``: the production server seeded with the demo data of DESIGN's contract."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from flask import Flask

from broker.config import Settings
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
    seed_apps(store, settings, creds)
    return creds


# Demo developers used only when the directory has no demo users (e.g. before it is seeded).
_FALLBACK_DEVELOPERS = {"devon": "usr_de0000000000de01", "olive": "usr_de0000000000de02"}

DEMO_APPS: dict[str, dict[str, Any]] = {
    "org_app": {
        "kind": "org_app",
        "client_type": "confidential",
        "name": "Team Roster",
        "description": "Shows your organization's member list in Team Roster",
        "redirect_uris": [],
        "scopes": ["org.members.read"],
        "developer": "alice",
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


def _demo_developer(store: Store, creds: dict[str, Any], name: str) -> str:
    """The named demo user if the directory seeded one, else a fixed stand-in developer."""
    user = creds.get("users", {}).get(name)
    if isinstance(user, dict) and user.get("id"):
        return str(user["id"])
    from broker.storage import keys

    fallback = "devon" if name == "alice" else "olive"
    uid = _FALLBACK_DEVELOPERS[fallback]
    if store.redis.hget(keys.user(uid), "status") != "active":
        store.redis.hset(
            keys.user(uid),
            mapping={
                "id": uid,
                "username": fallback,
                "nickname": fallback.capitalize(),
                "avatar": "",
                "name": "",
                "email": "",
                "mobile": "",
                "status": "active",
                "created_at": "0",
                "updated_at": "0",
            },
        )
    return uid


def _read_app_secrets(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def seed_apps(store: Store, settings: Settings, creds: dict[str, Any]) -> None:
    """Register the demo apps once; keep their client secrets in the data dir (Redis has hashes only).

    Idempotent across restarts: an app is reused while Redis still has it and the stored secret still
    verifies; otherwise it is re-created (or its secret rotated).
    """
    from broker.services import apps as apps_svc
    from broker.services import catalog as catalog_mod
    from broker.services import installations as inst_svc

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
                developer_id=_demo_developer(store, creds, spec["developer"]),
                contact="developers@example.com",
                privacy_policy_url="https://example.com/privacy",
            )
            record, secret, _ = apps_svc.register_app(store, settings, catalog, data)
            changed = True
        saved[name] = {"client_id": record["client_id"], **({"client_secret": secret} if secret else {})}
        creds["apps"][name] = {
            "client_id": record["client_id"],
            **({"client_secret": secret} if secret else {}),
            "redirect_uris": record["redirect_uris"],
            "kind": record["kind"],
        }
    acme = creds.get("orgs", {}).get("acme")
    if isinstance(acme, dict) and acme.get("id"):
        client_id = creds["apps"]["org_app"]["client_id"]
        installation = inst_svc.get_installation(store, client_id, str(acme["id"]))
        if installation is None:
            inst_svc.install(store, client_id, str(acme["id"]), ["org.members.read"])
        elif not installation["enabled"]:
            inst_svc.enable(store, client_id, str(acme["id"]))
    if changed:
        write_credentials(path, saved)


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
        f"  discovery:          {base}/.well-known/openid-configuration",
        "  users (password):",
    ]
    for name, user in creds["users"].items():
        lines.append(f"    {name:<8} {user['password']}")
    lines.append("")
    return "\n".join(lines)
