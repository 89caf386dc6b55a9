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
    return creds


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
