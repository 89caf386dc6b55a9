"""Marshmallow schemas describing JSON responses, for the OpenAPI document only (views do not use them)."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields


class _Open(Schema):
    """Responses may grow members; clients must ignore unknown ones, so the schemas allow them."""

    class Meta:
        unknown = INCLUDE


class ProblemSchema(_Open):
    """RFC 9457 problem body every JSON error uses (see broker.app.render_error)."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    error = fields.String(required=True)
    detail = fields.String(required=True)


class OAuthErrorSchema(_Open):
    """RFC 6749 section 5.2 error body of the token, revocation and introspection endpoints."""

    error = fields.String(required=True)
    error_description = fields.String()


class HealthSchema(_Open):
    status = fields.String(required=True)


class DiscoverySchema(_Open):
    """OpenID Provider metadata; only the members every client relies on are required."""

    issuer = fields.String(required=True)
    authorization_endpoint = fields.String(required=True)
    token_endpoint = fields.String(required=True)
    jwks_uri = fields.String(required=True)


class JwksSchema(_Open):
    keys = fields.List(fields.Dict(), required=True)


class TokenSchema(_Open):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer()
    refresh_token = fields.String()
    id_token = fields.String()
    scope = fields.String()


class IntrospectionSchema(_Open):
    active = fields.Boolean(required=True)


class MeSchema(_Open):
    """The person as this app may see them: the pairwise user_id, then only the ticked fields."""

    user_id = fields.String(required=True)
    nickname = fields.String()
    avatar = fields.String()


class UserInfoSchema(_Open):
    """OIDC userinfo: always the pairwise subject, then only the claims the grant allows."""

    sub = fields.String(required=True)


class MemberPageSchema(_Open):
    """One page of an org's members, each filtered to the granted fields."""

    members = fields.List(fields.Dict(), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class GenericObjectSchema(_Open):
    """Fallback for responses not yet described field by field: any JSON object."""


RESPONSE_SCHEMAS: dict[str, type[Schema]] = {
    "Problem": ProblemSchema,
    "OAuthError": OAuthErrorSchema,
    "Discovery": DiscoverySchema,
    "Jwks": JwksSchema,
    "Token": TokenSchema,
    "Introspection": IntrospectionSchema,
    "Me": MeSchema,
    "UserInfo": UserInfoSchema,
    "MemberPage": MemberPageSchema,
    "GenericObject": GenericObjectSchema,
}

# endpoint name -> component name of its 2xx JSON body; others fall back to GenericObject.
ENDPOINT_RESPONSES: dict[str, str] = {
    "oauth.discovery": "Discovery",
    "oauth.jwks": "Jwks",
    "oauth.token": "Token",
    "oauth.introspect": "Introspection",
    "api.me": "Me",
    "api.userinfo": "UserInfo",
    "api.members": "MemberPage",
}
