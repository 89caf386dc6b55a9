"""``broker apps suspend|restore CLIENT_ID``: the operator's switch for a misbehaving app."""

from __future__ import annotations

import argparse
from typing import Any

from broker.errors import BrokerError


def register(sub: Any) -> None:
    apps = sub.add_parser("apps", help="operate on registered apps")
    apps_sub = apps.add_subparsers(dest="apps_command", required=True)
    for name, helptext in (
        ("suspend", "stop every token of the app at once"),
        ("restore", "let a suspended app work again"),
    ):
        cmd = apps_sub.add_parser(name, help=helptext)
        cmd.add_argument("client_id")
        cmd.set_defaults(func=cmd_apps_status, apps_action=name)


def cmd_apps_status(args: argparse.Namespace) -> int:
    from broker.apps import registry as apps_svc
    from broker.cli import CommandError
    from broker.runtime import load_settings, open_store

    settings = load_settings()
    with open_store(settings) as store:
        action = apps_svc.suspend_app if args.apps_action == "suspend" else apps_svc.restore_app
        try:
            record = action(store, args.client_id)
        except BrokerError as exc:
            raise CommandError(exc.detail) from None
    print(f"{record['client_id']} ({record['name']}): {record['status']}")
    return 0
