"""The OAuth / OpenID Connect response bodies (discovery, JWKS, token, introspection, revocation)."""

from __future__ import annotations

from marshmallow import fields, validate

from broker.web.shared.schemas import (
    _Body,
    _int,
    _str,
    _strings,
)

# -- OAuth / OpenID Connect ----------------------------------------------------------------------------


class DiscoverySchema(_Body):
    """OpenID Provider / RFC 8414 authorization server metadata: what this server supports."""

    issuer = _str()
    authorization_endpoint = _str()
    token_endpoint = _str()
    jwks_uri = _str()
    userinfo_endpoint = _str()
    revocation_endpoint = _str()
    introspection_endpoint = _str()
    scopes_supported = _strings()
    response_types_supported = _strings()
    response_modes_supported = _strings()
    grant_types_supported = _strings()
    token_endpoint_auth_methods_supported = _strings()
    revocation_endpoint_auth_methods_supported = _strings()
    introspection_endpoint_auth_methods_supported = _strings()
    code_challenge_methods_supported = _strings()
    subject_types_supported = _strings()
    id_token_signing_alg_values_supported = _strings()
    claims_supported = _strings()
    prompt_values_supported = _strings()
    ui_locales_supported = _strings()
    service_documentation = _str()
    claims_parameter_supported = fields.Boolean(required=True)
    request_parameter_supported = fields.Boolean(required=True)
    request_uri_parameter_supported = fields.Boolean(required=True)
    authorization_response_iss_parameter_supported = fields.Boolean(required=True)
    end_session_endpoint = _str()
    backchannel_logout_supported = fields.Boolean(required=True)
    backchannel_logout_session_supported = fields.Boolean(required=True)


class JwkSchema(_Body):
    """A public JSON Web Key (RFC 7517): EC P-256 for id_tokens (/oauth/jwks), OKP Ed25519 with
    ``alg`` EdDSA for the ledger (/ledger/v1/keys)."""

    kty = _str(validate=validate.OneOf(["EC", "OKP", "RSA"]))
    kid = _str()
    alg = fields.String()
    use = fields.String()
    crv = fields.String()
    x = fields.String()
    y = fields.String()
    n = fields.String()
    e = fields.String()


class JwksSchema(_Body):
    """A JWK Set (RFC 7517 section 5): public keys only."""

    keys = fields.List(fields.Nested(JwkSchema), required=True)


class TokenSchema(_Body):
    """RFC 6749 section 5.1 access token response."""

    access_token = _str()
    token_type = _str(validate=validate.OneOf(["Bearer"]))
    expires_in = _int(metadata={"description": "seconds"})
    scope = _str(metadata={"description": "the scopes granted, space-separated"})
    refresh_token = fields.String(metadata={"description": "not for client_credentials"})
    id_token = fields.String(metadata={"description": "authorization_code with openid: an ES256 JWT"})


class IntrospectionSchema(_Body):
    """RFC 7662 introspection response: only ``active`` when the token is not (or no longer) valid."""

    active = fields.Boolean(required=True)
    scope = fields.String()
    client_id = fields.String()
    token_type = fields.String(validate=validate.OneOf(["Bearer", "refresh_token"]))
    exp = fields.Integer()
    iat = fields.Integer()
    iss = fields.String()
    sub = fields.String(metadata={"description": "person's token: the pairwise user id"})
    org_id = fields.String(metadata={"description": "organization token: the organization"})


class RevokedSchema(_Body):
    """RFC 7009: an empty JSON object, also for an unknown or someone else's token."""
