"""The OAuth 2.0 / OIDC protocol endpoints, one module per RFC where a behaviour belongs to one."""
