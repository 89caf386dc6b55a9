"""The admin console API's response bodies."""

from __future__ import annotations

from marshmallow import EXCLUDE, fields, validate

from broker.web.shared.schemas import (
    PERMISSIONS,
    ROLES,
    AppSchema,
    InstallationSchema,
    _Body,
    _int,
    _limit,
    _Query,
    _str,
    _strings,
)

# -- admin console -----------------------------------------------------------------------------------


class AdminOrgSchema(_Body):
    """The organization and the signed-in person's role in it."""

    org_id = _str()
    name = _str()
    role = _str(validate=validate.OneOf(ROLES))
    permissions = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)), required=True)
    members = _int()


class CenterAppSchema(AppSchema):
    """An App Center app and whether this organization has added it."""

    developer_name = fields.String(metadata={"description": "the developer's nickname"})
    installed = fields.Boolean(required=True)


class AppCenterSchema(_Body):
    apps = fields.List(fields.Nested(CenterAppSchema), required=True)


class InstallationDetailSchema(InstallationSchema):
    """The installation and the member fields that flow to the app (``fields``)."""


class ImpactSchema(_Body):
    """What a disable, enable or remove would change, before doing it."""

    action = _str(validate=validate.OneOf(["disable", "enable", "remove"]))
    client_id = _str()
    org_id = _str()
    members = _int()
    enabled = fields.Boolean(required=True)
    change = _str(validate=validate.OneOf(["start", "stop", "none"]))
    fields_ = _strings(data_key="fields", attribute="fields")
    revokes_tokens = fields.Boolean(required=True)


class AppRequestSchema(_Body):
    """A member's request that the admins add an App Center app."""

    id = _str()
    org_id = _str()
    client_id = _str()
    requester = _str()
    reason = _str()
    status = _str(validate=validate.OneOf(["pending", "approved", "denied"]))
    decided_by = fields.String(required=True, allow_none=True)
    decision_reason = fields.String(required=True, allow_none=True)
    created_at = _int()
    decided_at = fields.Integer(required=True, allow_none=True)


class AppRequestListSchema(_Body):
    requests = fields.List(fields.Nested(AppRequestSchema), required=True)


class MemberRoleSchema(_Body):
    """A member's role in the organization."""

    user_id = _str()
    role = _str(validate=validate.OneOf(ROLES))
    permissions = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)), required=True)


class MemberRoleListSchema(_Body):
    """Every member with their role, in join order."""

    roles = fields.List(fields.Nested(MemberRoleSchema), required=True)


class AppPolicySchema(_Body):
    """Which apps the organization lets in."""

    allow_member_mini_programs = fields.Boolean(required=True)
    allowed_apps = _strings()
    blocked_apps = _strings()
    grants_ended = _int(metadata={"description": "members' grants this change ended"})


class OrgMemberSchema(_Body):
    """A member as the organization's own console shows them: by name."""

    user_id = _str()
    username = _str()
    nickname = _str()
    role = _str(validate=validate.OneOf(ROLES))
    seq = _int(metadata={"description": "join order"})


class OrgMemberListSchema(_Body):
    """Every member, in join order."""

    members = fields.List(fields.Nested(OrgMemberSchema), required=True)


class MemberAddedSchema(_Body):
    user_id = _str()
    role = _str(validate=validate.OneOf(ROLES))


class AuditEntrySchema(_Body):
    id = _str(metadata={"description": "stream id"})
    who = _str(metadata={"description": "user id"})
    what = _str(metadata={"description": "e.g. installation.installed, sub_admin.appointed"})
    when = _int(metadata={"description": "unix seconds"})
    details = fields.Dict(required=True)


class AuditQuery(_Query):
    """Filters and paging of an organization's audit trail."""

    class Meta:
        unknown = EXCLUDE

    what = fields.String(
        validate=validate.Regexp(r"^[a-z_]{1,32}\.[a-z_]{1,32}$"),
        metadata={"description": "only this action, e.g. member.added"},
    )
    who = fields.String(
        validate=validate.Regexp(r"^(usr_[0-9a-f]{16}|platform)$"),
        metadata={"description": "only changes by this person (user id), or `platform` for the platform API"},
    )
    limit = _limit(200, 200)
    cursor = fields.String(
        validate=validate.Length(max=100), metadata={"description": "next_cursor of the previous page"}
    )


class AuditPageSchema(_Body):
    """Newest first; ``next_cursor`` is where the next (older) page starts, null on the last."""

    audit = fields.List(fields.Nested(AuditEntrySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class DisbandedSchema(_Body):
    org_id = _str()
    disbanded = fields.Boolean(required=True, validate=validate.OneOf([True]))
    removed_installations = _strings()
