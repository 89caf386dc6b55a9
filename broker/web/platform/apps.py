"""Platform API: apps, installations, suspension.

Type checks run in marshmallow schemas (unknown fields rejected); the rules that need the catalog
or the whole record run in ``broker.apps.registry.validate``. Both sets of problems are merged so
one 400 names every bad field.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from marshmallow import RAISE, Schema, ValidationError, validate
from marshmallow import fields as mf

from broker.apps import registry as apps_svc
from broker.apps.registry import AppCreateSchema, AppUpdateSchema
from broker.consent import coverage, org_admin
from broker.consent import installations as inst_svc
from broker.core import ids
from broker.errors import UnsupportedMediaType, ValidationFailed
from broker.web.platform.auth import require_platform_key
from broker.web.platform.blueprint import bp
from broker.web.shared import context as web
from broker.web.shared import openapi_schemas as rs
from broker.web.shared.openapi import Reply, documented, links_to
from broker.web.shared.responses import NO_STORE
from broker.web.shared.schemas import member_field_choice

_URL = mf.String(validate=validate.Length(min=1, max=2000))


class InstallSchema(Schema):
    class Meta:
        unknown = RAISE

    client_id = mf.String(required=True, validate=validate.Regexp(apps_svc.CLIENT_ID_RE.pattern))
    scopes = mf.List(
        mf.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(min=1, max=50)
    )
    fields_ = member_field_choice()
    installed_by = mf.String(load_default="", validate=validate.Regexp(ids.USER_ID_OR_EMPTY))
    departments = mf.List(
        mf.String(validate=validate.Regexp(ids.DEPARTMENT_ID, error="not a department id")),
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={
            "description": "cover only these departments and their sub-departments; null: the whole org"
        },
    )


class InstallationPatchSchema(Schema):
    class Meta:
        unknown = RAISE

    enabled = mf.Boolean(truthy={True}, falsy={False})
    scopes = mf.List(
        mf.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(min=1, max=50)
    )
    fields_ = member_field_choice()
    departments = mf.List(
        mf.String(validate=validate.Regexp(ids.DEPARTMENT_ID, error="not a department id")),
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={
            "description": "cover only these departments and their sub-departments; null: the whole org"
        },
    )


_APP = {404: "No app with this client id"}
_INSTALLED = {404: "No such organization, or the app is not installed there"}


def _payload() -> Any:
    if not request.is_json:
        raise UnsupportedMediaType(
            f"expected Content-Type: application/json, got {request.mimetype or 'none'!r}"
        )
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ValidationFailed("the body must be a JSON object")
    return payload


def _load(schema: Schema, payload: dict[str, Any], semantic: Any = None) -> dict[str, Any]:
    """Schema problems plus semantic problems of the fields that passed, in one 400."""
    problems: dict[str, list[str]] = {}
    try:
        data: dict[str, Any] = schema.load(payload)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        for name, value in messages.items():
            problems[str(name)] = value if isinstance(value, list) else [str(value)]
        data = exc.valid_data if isinstance(exc.valid_data, dict) else {}
    if semantic is not None:
        for name, messages_ in semantic(data).items():
            if name not in problems:
                problems[name] = messages_
    if problems:
        apps_svc.raise_problems(problems)
    return data


def _app_json(
    record: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None, **extra: Any
) -> Reply:
    return _view(record) | extra, status, {**NO_STORE, **(headers or {})}


def _view(record: dict[str, Any]) -> dict[str, Any]:
    """The app with the fields its scopes reach that its data label does not declare."""
    from broker.ledger import reading

    received = reading.fields_received(web.store(), record["client_id"])
    return {
        **apps_svc.public_view(record),
        "label_drift": apps_svc.label_drift(web.catalog(), record),
        "received_beyond_label": apps_svc.received_beyond_label(received, record),
    }


@bp.post("/apps")
@documented(
    rs.NewAppSchema,
    status=201,
    location=True,
    links={
        **links_to(
            "/internal/v1/apps/{client_id}",
            {"client_id": "$response.body#/client_id"},
            GetApp="get",
            UpdateApp="patch",
            DeleteApp="delete",
        ),
        **links_to(
            "/internal/v1/apps/{client_id}/suspend",
            {"client_id": "$response.body#/client_id"},
            SuspendApp="post",
        ),
        **links_to(
            "/internal/v1/apps/{client_id}/secret",
            {"client_id": "$response.body#/client_id"},
            RotateSecret="post",
        ),
    },
    body=AppCreateSchema,
    summary="Register an app for a developer; its secrets are shown this once",
)
@require_platform_key
def create_app_view() -> Reply:
    settings, catalog = web.settings(), web.catalog()
    store = web.store()

    def semantic(data: dict[str, Any]) -> dict[str, list[str]]:
        problems = apps_svc.validate(settings, catalog, data)
        problems.update(apps_svc.developer_problems(store, data.get("developer_id")))
        return problems

    data = _load(AppCreateSchema(), _payload(), semantic)
    record, client_secret, webhook_secret = apps_svc.register_app(store, settings, catalog, data)
    extra: dict[str, Any] = {"webhook_secret": webhook_secret}
    if client_secret is not None:
        extra["client_secret"] = client_secret
    return _app_json(record, 201, {"Location": f"/internal/v1/apps/{record['client_id']}"}, **extra)


@bp.get("/apps")
@documented(rs.AppListSchema, query=rs.AppListQuery, summary="Every app, or one developer's")
@require_platform_key
def list_apps_view() -> Reply:
    developer_id = request.args.get("developer_id")
    if developer_id is not None and not ids.USER_ID_RE.match(developer_id):
        raise ValidationFailed("some fields are invalid", fields={"developer_id": ["not a user id"]})
    review = request.args.get("review")
    if review is not None and review not in apps_svc.REVIEWS:
        raise ValidationFailed(
            "some fields are invalid", fields={"review": ["must be pending, approved or rejected"]}
        )
    flagged = request.args.get("flagged")
    if flagged is not None and flagged not in ("true", "false"):
        raise ValidationFailed("some fields are invalid", fields={"flagged": ["must be true or false"]})
    records = apps_svc.list_apps(web.store(), developer_id)
    if review is not None:
        records = [r for r in records if r["kind"] == "org_app" and apps_svc.review_of(r) == review]
    views = [_view(r) for r in records]
    if flagged is not None:
        views = [
            v for v in views if bool(v["label_drift"] or v["received_beyond_label"]) == (flagged == "true")
        ]
    return {"apps": views}


@bp.get("/apps/<client_id>")
@documented(rs.AppSchema, errors=_APP, summary="One app")
@require_platform_key
def get_app_view(client_id: str) -> Reply:
    return _app_json(apps_svc.require_app(web.store(), client_id))


@bp.patch("/apps/<client_id>")
@documented(rs.AppSchema, body=AppUpdateSchema, errors=_APP, summary="Change an app's editable fields")
@require_platform_key
def update_app_view(client_id: str) -> Reply:
    store, settings, catalog = web.store(), web.settings(), web.catalog()
    current = apps_svc.require_app(store, client_id)
    payload = _payload()

    def semantic(data: dict[str, Any]) -> dict[str, list[str]]:
        merged = {**current, **data}
        return {k: v for k, v in apps_svc.validate(settings, catalog, merged).items() if k in data}

    data = _load(AppUpdateSchema(), payload, semantic)
    return _app_json(apps_svc.update_app(store, settings, catalog, client_id, data))


@bp.delete("/apps/<client_id>")
@documented(
    status=204, errors=_APP, summary="Delete an app: every grant, installation and token under it ends"
)
@require_platform_key
def delete_app_view(client_id: str) -> Reply:
    apps_svc.delete_app(web.store(), client_id)
    return Response(status=204)


@bp.post("/apps/<client_id>/secret")
@documented(
    rs.SecretRotatedSchema,
    errors={**_APP, 409: "A public client has no client secret"},
    summary="Issue a new client secret; the old one works for the overlap",
)
@require_platform_key
def rotate_secret_view(client_id: str) -> Reply:
    secret, old_expires = apps_svc.rotate_secret(web.store(), web.settings(), client_id)
    body = {"client_id": client_id, "client_secret": secret, "previous_secret_expires_at": old_expires}
    return body, 200, NO_STORE


@bp.post("/apps/<client_id>/webhook-secret")
@documented(rs.WebhookSecretRotatedSchema, errors=_APP, summary="Issue a new webhook signing secret")
@require_platform_key
def rotate_webhook_secret_view(client_id: str) -> Reply:
    secret = apps_svc.rotate_webhook_secret(web.store(), web.settings(), client_id)
    return {"client_id": client_id, "webhook_secret": secret}, 200, NO_STORE


@bp.post("/apps/<client_id>/secret/revoke-previous")
@documented(
    rs.SecretsRevokedSchema,
    errors={**_APP, 409: "A public client has no client secret"},
    summary="End every previous client secret now; only the current one works",
)
@require_platform_key
def revoke_previous_secrets_view(client_id: str) -> Reply:
    revoked = apps_svc.revoke_previous_secrets(web.store(), client_id)
    return {"client_id": client_id, "revoked": revoked}, 200, NO_STORE


@bp.post("/apps/<client_id>/webhook-secret/revoke-previous")
@documented(
    rs.WebhookSecretRevokedSchema,
    errors=_APP,
    summary="Stop signing deliveries with the previous webhook secret now",
)
@require_platform_key
def revoke_previous_webhook_secret_view(client_id: str) -> Reply:
    revoked = apps_svc.revoke_previous_webhook_secret(web.store(), client_id)
    return {"client_id": client_id, "revoked": revoked}, 200, NO_STORE


@bp.post("/apps/<client_id>/suspend")
@documented(
    rs.AppSchema,
    errors={**_APP, 409: "Already suspended"},
    summary="Suspend an app: every token it holds stops working at once",
)
@require_platform_key
def suspend_view(client_id: str) -> Reply:
    return _app_json(apps_svc.suspend_app(web.store(), client_id))


@bp.post("/apps/<client_id>/review")
@documented(
    rs.AppSchema,
    body=rs.AppReviewSchema(),
    errors={**_APP, 409: "Not an App Center app (only org apps are reviewed)"},
    summary="Approve an org app (App Centers list it) or reject it with a reason the developer sees",
)
@require_platform_key
def review_view(client_id: str) -> Reply:
    data = web.json_body(rs.AppReviewSchema())
    return _app_json(apps_svc.review_app(web.store(), client_id, data["decision"], data.get("reason", "")))


@bp.post("/apps/<client_id>/restore")
@documented(rs.AppSchema, errors={**_APP, 409: "Already active"}, summary="Restore a suspended app")
@require_platform_key
def restore_view(client_id: str) -> Reply:
    return _app_json(apps_svc.restore_app(web.store(), client_id))


# -- installations -------------------------------------------------------------------------------


def _inst_json(record: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return _with_coverage(inst_svc.public_view(record, web.catalog())), status, headers or {}


def _with_coverage(view: dict[str, Any]) -> dict[str, Any]:
    return {**view, **coverage.describe(web.store(), view["org_id"], view["client_id"])}


@bp.post("/orgs/<org_id>/installations")
@documented(
    rs.InstallationSchema,
    status=201,
    location=True,
    links=links_to(
        "/internal/v1/orgs/{org_id}/installations/{client_id}",
        {"org_id": "$request.path.org_id", "client_id": "$response.body#/client_id"},
        GetInstallation="get",
        UpdateInstallation="patch",
        RemoveInstallation="delete",
    ),
    body=InstallSchema,
    errors={404: "No such app or organization", 409: "Already installed, or not an org_app"},
    summary="Install an App Center app in an organization",
)
@require_platform_key
def install_view(org_id: str) -> Reply:
    data = _load(InstallSchema(), _payload())
    record = inst_svc.install(
        web.store(),
        data["client_id"],
        org_id,
        data.get("scopes"),
        data["installed_by"],
        data.get("departments"),
        data.get("fields"),
        web.catalog(),
    )
    return _inst_json(
        record, 201, {"Location": f"/internal/v1/orgs/{org_id}/installations/{data['client_id']}"}
    )


@bp.get("/orgs/<org_id>/installations")
@documented(
    rs.InstallationListSchema, errors={404: "No such organization"}, summary="An organization's installations"
)
@require_platform_key
def list_installations_view(org_id: str) -> Reply:
    records = inst_svc.list_org_installations(web.store(), org_id)
    return {"installations": [_with_coverage(inst_svc.public_view(r, web.catalog())) for r in records]}


@bp.get("/orgs/<org_id>/installations/<client_id>")
@documented(rs.InstallationSchema, errors=_INSTALLED, summary="One installation")
@require_platform_key
def get_installation_view(org_id: str, client_id: str) -> Reply:
    return _inst_json(inst_svc.require_installation(web.store(), client_id, org_id))


@bp.patch("/orgs/<org_id>/installations/<client_id>")
@documented(
    rs.InstallationSchema,
    body=InstallationPatchSchema,
    errors={**_INSTALLED, 404: "No such app, or it is not installed there"},
    summary="Switch an installation on or off, or change its choice (scopes and/or member fields), or its "
    "departments (exactly one of the three)",
)
@require_platform_key
def patch_installation_view(org_id: str, client_id: str) -> Reply:
    data = _load(InstallationPatchSchema(), _payload())
    if len({"choice" if k in ("scopes", "fields") else k for k in data}) != 1:
        problem = "send exactly one of enabled, the choice (scopes and/or fields) or departments"
        raise ValidationFailed(problem, fields={"_schema": [problem]})
    store = web.store()
    if "departments" in data:
        result = coverage.set_departments(
            store, web.settings().pairwise_key, org_id, client_id, data["departments"]
        )
        if result["changed"]:
            org_admin.audit(
                store,
                org_id,
                "platform",
                "installation.departments",
                {"app": client_id, "departments": result["departments"]},
            )
        record = inst_svc.require_installation(store, client_id, org_id)
    elif "scopes" in data or "fields" in data:
        record = org_admin.change_choice(
            store, web.catalog(), org_id, client_id, data.get("scopes"), data.get("fields")
        )
    elif data["enabled"]:
        record = inst_svc.enable(store, client_id, org_id)
    else:
        record = inst_svc.disable(store, client_id, org_id)
    return _inst_json(record)


@bp.delete("/orgs/<org_id>/installations/<client_id>")
@documented(status=204, errors=_INSTALLED, summary="Remove an installation and revoke its tokens")
@require_platform_key
def remove_installation_view(org_id: str, client_id: str) -> Reply:
    inst_svc.remove(web.store(), client_id, org_id)
    return Response(status=204)
