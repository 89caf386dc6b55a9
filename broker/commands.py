"""The ``serve`` and ``scopes check`` commands; each domain package keeps its own in its ``commands``
module, and ``broker.cli`` adds them all to the ``broker`` group."""

from __future__ import annotations

import sys

import click

from broker.config import Settings
from broker.core import catalog as catalog_mod

SERVE_HELP = "run the production server (embedded Redis unless BROKER_REDIS_URL)"
CHECK_HELP = "validate the scope catalog and print a summary"


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


@click.command("serve", help=SERVE_HELP, short_help=SERVE_HELP)
@click.option("--port", type=int, metavar="PORT", help="override BROKER_PORT")
def serve(port: int | None) -> int:
    from broker.runtime import configure_logging
    from broker.server import run

    settings = settings_with_port(port)
    configure_logging(settings.log_level, settings.log_format)
    return run(settings)


@click.group("scopes", help="scope catalog tools")
def scopes() -> None:
    pass


@scopes.command(
    "check",
    help=f"{CHECK_HELP}\n\nDIRECTORY: catalog directory (default BROKER_SCOPES_DIR)",
    short_help=CHECK_HELP,
)
@click.argument("directory", required=False)
def check(directory: str | None) -> int:
    try:
        catalog = catalog_mod.load(directory or Settings.from_env(create_dirs=False).scopes_dir)
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
