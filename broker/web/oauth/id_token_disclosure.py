"""The id_token is a disclosure too (its `sub`): the record the token endpoint commits before it answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app

from broker.apps import registry as apps
from broker.errors import StorageUnavailable
from broker.web.shared import context as web

if TYPE_CHECKING:
    from broker.gate.disclosure import Gate
    from broker.web.oauth.models import Grant


def record_id_token_disclosure(client_id: str, grant: Grant | None, uid: str) -> None:
    """An id_token discloses ``sub`` (the person's pairwise id, the catalog field ``user_id``) to the
    app: record it before the token response leaves (DESIGN invariant 1). A grant that vanished
    between the code check and now means no token response at all."""
    if grant is None:
        raise StorageUnavailable("the grant changed while the token was being issued; try again")
    gate = cast("Gate", current_app.extensions["broker.gate"])
    developer = apps.developer_of(web.store(), client_id)
    gate.record_issued(
        client_id,
        developer_id=developer,
        user_id=uid,
        grant_id=grant.id,
        fields=["user_id"],
        endpoint="POST /oauth/token (id_token)",
        request_id=web.record_request_id(),
    )
    web.note_disclosure(client_id, 1)
