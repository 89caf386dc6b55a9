"""The data API's response schemas, built from the scope catalog (one per audience)."""

from __future__ import annotations

from marshmallow import Schema, fields

from broker.core.catalog import Catalog
from broker.web.shared.schemas import (
    _Body,
)

# -- data API: built from the scope catalog ----------------------------------------------------------


def _profile(name: str, catalog: Catalog, audience: str, required_scope: str, rename: dict[str, str]) -> type:
    """The fields the catalog can disclose to this audience (each string or null); the fields of the
    scope the endpoint requires that the catalog marks required are always present."""
    scopes = [s for s in catalog.scopes.values() if s.audience == audience]
    names = [f for f in catalog.fields if catalog.fields[f].shareable and any(f in s.fields for s in scopes)]
    always = set()
    if required_scope in catalog.scopes:  # the admin chooses the rest field by field (issue 13, item 2)
        always = {f for f in catalog.scopes[required_scope].fields if catalog.fields[f].required}
    declared = {rename.get(f, f): _field(catalog, f, f in always, audience) for f in names}
    cls = _Body.from_dict(declared, name=name)
    cls.__doc__ = {
        "Me": "The person as this app may see them: the pairwise user_id, then only the granted fields.",
        "UserInfo": "OIDC userinfo: the pairwise subject, then only the claims the grant allows.",
        "MemberProfile": "A member as this app may see them: the fields the admin chose within the scopes.",
    }[name.removesuffix("Schema")]
    return cls


def _field(catalog: Catalog, name: str, required: bool, audience: str) -> fields.Field:
    """One disclosed field: a string (or, ``type = "list"``, a list of strings) or null; the pairwise
    id is computed, the rest is read as stored."""
    about = catalog.fields[name]
    text = about.described("en", "organization" if audience == "organization" else "individual")
    if about.type == "list":
        return fields.List(
            fields.String(), required=required, allow_none=True, metadata={"description": text}
        )
    return fields.String(required=required, allow_none=name != "user_id", metadata={"description": text})


def data_schemas(catalog: Catalog) -> dict[str, type[Schema]]:
    """Me, UserInfo, MemberProfile and MemberPage for this deployment's catalog."""
    from broker.web.shared.claims import MEMBER_SCOPE, OIDC_CLAIMS

    me = _profile("MeSchema", catalog, "individual", "openid", {})
    userinfo = _profile("UserInfoSchema", catalog, "individual", "openid", OIDC_CLAIMS)
    member = _profile("MemberProfileSchema", catalog, "organization", MEMBER_SCOPE, {})

    class MemberPageSchema(_Body):
        """One page of an org's members, each filtered to the installation's fields."""

        members = fields.List(fields.Nested(member), required=True)
        next_cursor = fields.String(required=True, allow_none=True)

    return {"Me": me, "UserInfo": userinfo, "MemberProfile": member, "MemberPage": MemberPageSchema}
