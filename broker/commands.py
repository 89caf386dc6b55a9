"""Core subcommands: serve, scopes check. Other areas register theirs in their own modules."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from broker.config import Settings
from broker.core import catalog as catalog_mod


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the production server (embedded Redis unless BROKER_REDIS_URL)")
    serve.add_argument("--port", type=int, help="override BROKER_PORT")
    serve.set_defaults(func=cmd_serve)

    scopes = sub.add_parser("scopes", help="scope catalog tools")
    scopes_sub = scopes.add_subparsers(dest="scopes_command", required=True)
    check = scopes_sub.add_parser("check", help="validate the scope catalog and print a summary")
    check.add_argument("directory", nargs="?", help="catalog directory (default BROKER_SCOPES_DIR)")
    check.set_defaults(func=cmd_scopes_check)


def settings_with_port(port: int | None) -> Settings:
    """Settings with ``--port`` applied; the default issuer follows the port so links work."""
    import os
    from dataclasses import replace

    from broker.runtime import load_settings

    settings = load_settings()
    if port is None:
        return settings
    if "BROKER_ISSUER" in os.environ:
        return replace(settings, port=port)
    host = settings.host if settings.host not in {"0.0.0.0", "::", ""} else "127.0.0.1"  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    return replace(settings, port=port, issuer=f"http://{host}:{port}")


def cmd_serve(args: argparse.Namespace) -> int:
    from broker.runtime import configure_logging
    from broker.server import run

    settings = settings_with_port(args.port)
    configure_logging(settings.log_level)
    return run(settings)


def cmd_scopes_check(args: argparse.Namespace) -> int:
    directory = args.directory or Settings.from_env(create_dirs=False).scopes_dir
    try:
        catalog = catalog_mod.load(directory)
    except catalog_mod.CatalogError as exc:
        print(f"invalid scope catalog: {exc}", file=sys.stderr)
        return 1
    print(
        f"scope catalog OK: {len(catalog.fields)} fields, {len(catalog.scopes)} scopes, "
        f"version {catalog.version}"
    )
    for scope in catalog.scopes.values():
        flag = " (separate consent)" if scope.separate_consent else ""
        print(f"  {scope.name:<20} {scope.audience:<13} {', '.join(scope.fields)}{flag}")
    return 0
