"""``broker apps suspend|restore CLIENT_ID``: the operator's switch for a misbehaving app."""

from __future__ import annotations

import click

from broker.errors import BrokerError, CommandError


@click.group("apps", help="operate on registered apps")
def apps() -> None:
    pass


@apps.command("suspend", help="stop every token of the app at once")
@click.argument("client_id")
def suspend(client_id: str) -> int:
    return set_status("suspend", client_id)


@apps.command("restore", help="let a suspended app work again")
@click.argument("client_id")
def restore(client_id: str) -> int:
    return set_status("restore", client_id)


def set_status(action: str, client_id: str) -> int:
    from broker.apps import registry as apps_svc
    from broker.runtime import load_settings, open_store

    settings = load_settings()
    with open_store(settings) as store:
        change = apps_svc.suspend_app if action == "suspend" else apps_svc.restore_app
        try:
            record = change(store, client_id)
        except BrokerError as exc:
            raise CommandError(exc.detail) from None
    print(f"{record['client_id']} ({record['name']}): {record['status']}")
    return 0
