"""The foundation: configuration, catalog, health endpoints and error rendering."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.config import ConfigError, Settings
from broker.core import catalog as catalog_mod
from tests.support.environment import ROOT


def test_unknown_variable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown configuration variable BROKER_PROT"):
        Settings.from_env({"BROKER_DATA_DIR": str(tmp_path), "BROKER_PROT": "1"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BROKER_PORT", "eighty", "BROKER_PORT: expected a whole number from 0 to 65535"),
        ("BROKER_PORT", "70000", "BROKER_PORT: expected a whole number from 0 to 65535, got 70000"),
        ("BROKER_ISSUER", "ftp://x", "BROKER_ISSUER: expected an absolute http(s) URL"),
        ("BROKER_ISSUER", "https://x/?a=b", "must not have a query"),
        ("BROKER_REDIS_URL", "http://x", "BROKER_REDIS_URL: expected a redis://"),
        ("BROKER_ENV", "prod", "BROKER_ENV: expected one of development, production"),
        ("BROKER_CODE_TTL", "600", "BROKER_CODE_TTL: expected a whole number from 5 to 60"),
        ("BROKER_TRUST_PROXY", "maybe", "BROKER_TRUST_PROXY: expected true or false"),
        ("BROKER_SECRET_KEY", "short", "BROKER_SECRET_KEY: expected at least 32 characters"),
    ],
)
def test_invalid_values_name_the_variable(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env({"BROKER_DATA_DIR": str(tmp_path), name: value})


def test_production_requires_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BROKER_SECRET_KEY must be set when BROKER_ENV=production"):
        Settings.from_env({"BROKER_DATA_DIR": str(tmp_path), "BROKER_ENV": "production"})


def test_development_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings.from_env({"BROKER_DATA_DIR": str(tmp_path)})
    second = Settings.from_env({"BROKER_DATA_DIR": str(tmp_path)})
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert first.token_hash_key != first.secret_key
    assert "BROKER_SECRET_KEY" in first.dev_defaults
    assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o777 == 0o600


def test_unwritable_data_dir_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"BROKER_DATA_DIR: .* is not a writable directory"):
        Settings.from_env({"BROKER_DATA_DIR": str(blocker / "sub")})


def test_shipped_catalog_is_valid() -> None:
    catalog = catalog_mod.load(ROOT / "scopes")
    assert catalog.fields_of(["openid", "profile"]) == {"user_id", "nickname", "avatar"}
    assert not {"name", "email", "mobile"} & catalog.shareable()
    assert catalog.scope_names("organization") == ["org.departments.read", "org.members.read", "org.read"]


def test_healthz_and_readyz(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"redis": True, "configuration": True, "scope_catalog": True}


def test_unknown_path_is_json_for_apis_and_html_for_pages(client) -> None:
    api = client.get("/v1/nothing")
    assert api.status_code == 404
    assert api.mimetype == "application/problem+json"
    assert api.get_json()["error"] == "not_found"
    page = client.get("/nothing", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
