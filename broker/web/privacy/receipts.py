"""The person's consent receipts: ``/privacy/v1/receipts`` (list) and ``/privacy/v1/receipts/<id>``.

JSON API for the signed-in person; errors are always RFC 9457 problem JSON here (even for a
browser), because these are API endpoints. Someone else's receipt is simply not found.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, request

from broker.consent import receipts
from broker.core import cursors
from broker.errors import NotFound, ValidationFailed
from broker.web.interactions.session import login_required
from broker.web.privacy.blueprint import bp
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import TEXT, documented
from broker.web.shared.responses import no_store

MAX_LIMIT = 100
_MEMBER_RE = re.compile(r"^\d{13}:[0-9a-f-]{36}$")
_ID_RE = re.compile(r"^[0-9a-f-]{36}$")


def _user() -> str:
    return login_required("sign in to read your consent receipts")


def _limit() -> int:
    raw = request.args.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationFailed(
            "some fields are invalid", fields={"limit": [f"must be a whole number from 1 to {MAX_LIMIT}"]}
        )
    return int(raw)


def _cursor() -> str | None:
    raw = request.args.get("cursor")
    if raw is None or raw == "":
        return None
    try:
        member = cursors.decode(raw)
    except ValueError:
        member = ""
    if not _MEMBER_RE.match(member):
        raise ValidationFailed(
            "some fields are invalid", fields={"cursor": ["is not a cursor from this list"]}
        )
    return member


@bp.get("/privacy/v1/receipts")
@documented(rs.ReceiptPageSchema, query=rs.ReceiptListQuery)
def list_receipts() -> Any:
    """The person's consent receipts, newest first."""
    uid = _user()
    limit, cursor = _limit(), _cursor()
    items, nxt = receipts.list_receipts(web.store(), uid, limit=limit, cursor=cursor)
    body: dict[str, Any] = {"receipts": items, "next_cursor": None}
    if nxt is not None:
        body["next_cursor"] = cursors.encode(nxt)
    return body


@bp.get("/privacy/v1/receipts/<receipt_id>")
@documented(
    rs.ReceiptSchema,
    media={"application/jose": TEXT},
    query=rs.ReceiptQuery,
    errors={404: "No such receipt of yours"},
)
def get_receipt(receipt_id: str) -> Any:
    """One consent receipt: the signed JWS (default) or, with ``?format=json``, its payload too."""
    uid = _user()
    fmt = request.args.get("format", "jws")
    if fmt not in {"jws", "json"}:
        raise ValidationFailed("some fields are invalid", fields={"format": ["must be jws or json"]})
    token = receipts.get_receipt(web.store(), uid, receipt_id) if _ID_RE.match(receipt_id) else None
    if token is None:
        raise NotFound("no such consent receipt")
    if fmt == "json":
        return {"receipt": receipts.unverified_payload(token), "jws": token}
    response = Response(token, mimetype="application/jose")
    response.headers["Content-Disposition"] = f'attachment; filename="consent-receipt-{receipt_id}.jws"'
    no_store(response)
    return response
