"""The platform API's directory response bodies (users, orgs, members, import)."""

from __future__ import annotations

from marshmallow import fields, validate

from broker.web.shared.schemas import (
    PERMISSIONS,
    ROLES,
    _Body,
    _int,
    _str,
    _strings,
)

# -- platform directory ------------------------------------------------------------------------------


class UserSchema(_Body):
    """A person in the directory (never the password hash)."""

    id = _str()
    username = _str()
    nickname = fields.String()
    avatar = fields.String()
    name = fields.String()
    email = fields.String()
    mobile = fields.String()
    status = _str(validate=validate.OneOf(["active"]))
    created_at = _int()
    updated_at = fields.Integer()


class UserOrgsSchema(_Body):
    orgs = _strings(metadata={"description": "organization ids"})


class OrgSchema(_Body):
    id = _str()
    name = _str()
    allow_member_mini_programs = fields.Boolean(required=True)
    allowed_apps = fields.List(
        fields.String(), metadata={"description": "allowed even when mini-programs are off"}
    )
    blocked_apps = fields.List(fields.String(), metadata={"description": "blocked for the organization"})
    created_at = _int()
    updated_at = fields.Integer()


class PlatformMemberSchema(_Body):
    user_id = _str()
    seq = _int(metadata={"description": "join order; pass the last one as ?after="})
    role = fields.String(validate=validate.OneOf(ROLES))
    permissions = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)))


class PlatformMemberPageSchema(_Body):
    members = fields.List(fields.Nested(PlatformMemberSchema), required=True)
    next_cursor = fields.Integer(required=True, allow_none=True, metadata={"description": "?after="})


class MembershipSchema(_Body):
    user_id = _str()
    org_id = _str()
    role = _str(validate=validate.OneOf(ROLES))
    permissions = fields.List(fields.String(validate=validate.OneOf(PERMISSIONS)), required=True)


class ImportCountsSchema(_Body):
    users = _int()
    orgs = _int()
    memberships = _int()
    departments = fields.Integer()


class ImportResultSchema(_Body):
    imported = fields.Nested(ImportCountsSchema, required=True)


class DepartmentSchema(_Body):
    id = _str()
    name = _str()
    parent = fields.String(required=True, allow_none=True, metadata={"description": "null at the top level"})


class DepartmentRowSchema(DepartmentSchema):
    depth = _int(metadata={"description": "0 at the top level"})
    path = _str(metadata={"description": "names from the top, joined by ' / '"})
    members = _int(metadata={"description": "direct members"})


class DepartmentListSchema(_Body):
    departments = fields.List(
        fields.Nested(DepartmentRowSchema), required=True, metadata={"description": "in tree order"}
    )


class DepartmentDetailSchema(DepartmentSchema):
    members = _strings(metadata={"description": "user ids of its direct members, in join order"})


class MemberDepartmentsResultSchema(_Body):
    user_id = _str()
    org_id = _str()
    departments = _strings()
