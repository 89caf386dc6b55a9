"""``broker apps suspend|restore CLIENT_ID``: the operator's switch for a misbehaving app;
``broker apps review [CLIENT_ID approve|reject --reason ...]``: the operator's review of org apps."""

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


@apps.command("review", help="list org apps waiting for review, or approve or reject one")
@click.argument("client_id", required=False)
@click.argument("decision", required=False, type=click.Choice(["approve", "reject"]))
@click.option("--reason", default="", help="why (required to reject; the developer sees it)")
def review(client_id: str | None, decision: str | None, reason: str) -> int:
    from broker.apps import registry as apps_svc
    from broker.runtime import load_settings, open_store

    if client_id is not None and decision is None:
        raise CommandError("say approve or reject after the client id")
    settings = load_settings()
    with open_store(settings) as store:
        if client_id is None:
            waiting = apps_svc.apps_in_review(store, "pending")
            for record in waiting:
                who = f"developer {record['developer_id']}, {record['contact']}"
                print(f"{record['client_id']}  {record['name']}  ({who})")
            if not waiting:
                print("no org app is waiting for review")
            return 0
        try:
            record = apps_svc.review_app(store, client_id, str(decision), reason)
        except BrokerError as exc:
            fields = getattr(exc, "fields", None) or {}
            named = "; ".join(f"--{k}: {', '.join(v)}" for k, v in fields.items())
            raise CommandError(named or exc.detail) from None
    print(f"{record['client_id']} ({record['name']}): {record['review']}")
    return 0
