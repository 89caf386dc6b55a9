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
    if required_scope in catalog.scopes:
        always = {f for f in catalog.scopes[required_scope].fields if catalog.fields[f].required}
        if audience == "organization":  # no consent page: every field of the required scope flows
            always = set(catalog.scopes[required_scope].fields)
    cls = _Body.from_dict(
        {
            rename.get(f, f): fields.String(
                required=f in always,
                allow_none=f != "user_id",  # the pairwise id is computed; the rest is read as stored
                metadata={"description": catalog.fields[f].description["en"]},
            )
            for f in names
        },
        name=name,
    )
    cls.__doc__ = {
        "Me": "The person as this app may see them: the pairwise user_id, then only the granted fields.",
        "UserInfo": "OIDC userinfo: the pairwise subject, then only the claims the grant allows.",
        "MemberProfile": "A member as this app may see them: the fields of the installation's scopes.",
    }[name.removesuffix("Schema")]
    return cls


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
