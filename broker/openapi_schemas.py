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


class GenericObjectSchema(_Open):
    """Fallback for responses not yet described field by field: any JSON object."""


RESPONSE_SCHEMAS: dict[str, type[Schema]] = {
    "Problem": ProblemSchema,
    "OAuthError": OAuthErrorSchema,
    "Discovery": DiscoverySchema,
    "Jwks": JwksSchema,
    "Token": TokenSchema,
    "Introspection": IntrospectionSchema,
    "GenericObject": GenericObjectSchema,
}

# endpoint name -> component name of its 2xx JSON body; others fall back to GenericObject.
ENDPOINT_RESPONSES: dict[str, str] = {}
