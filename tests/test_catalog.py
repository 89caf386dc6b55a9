"""The scope catalog is data, validated at start-up and by `broker scopes check`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from broker.app import create_app
from broker.core import catalog as catalog_mod
from tests.support.environment import ROOT, broker_env

GOOD = (ROOT / "scopes" / "basic.toml").read_text()


def write(tmp_path: Path, text: str, name: str = "basic.toml") -> Path:
    directory = tmp_path / "scopes"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return directory


BAD = {
    "not toml": ("[fields.user_id\n", r"basic\.toml: not valid TOML"),
    "unknown key": (
        GOOD.replace(
            'sensitivity = "low"\nshareable = true\nbasic = true\nrequired = true',
            'sensitivity = "low"\nshareable = true\nbasic = true\nrequired = true\ncolour = 1',
            1,
        ),
        r"fields\.user_id: colour: Unknown field",
    ),
    "bad sensitivity": (
        GOOD.replace('sensitivity = "low"', 'sensitivity = "secret"', 1),
        r"fields\.user_id: sensitivity: Must be one of: low, moderate, high",
    ),
    "missing chinese": (
        GOOD.replace('description.zh = "你的昵称"\n', "", 1),
        r"fields\.nickname: description\.zh: Missing data for required field",
    ),
    "string boolean": (
        GOOD.replace("shareable = true", 'shareable = "yes"', 1),
        r"fields\.user_id: shareable: Not a valid boolean",
    ),
    "undeclared field": (
        GOOD.replace('fields = ["nickname", "avatar"]', 'fields = ["nickname", "shoe_size"]'),
        r"scopes\.profile: field 'shoe_size' is not declared",
    ),
    "non-shareable in scope": (
        GOOD.replace('fields = ["nickname", "avatar"]', 'fields = ["nickname", "email"]'),
        r"scopes\.profile: field 'email' is not shareable",
    ),
    "shareable non-basic without separate consent": (
        GOOD.replace(
            '[fields.email]\nsensitivity = "moderate"\nshareable = false',
            '[fields.email]\nsensitivity = "moderate"\nshareable = true',
        ).replace('fields = ["nickname", "avatar"]', 'fields = ["nickname", "avatar", "email"]'),
        r"scopes\.profile: field 'email' is not basic, so the scope must set separate_consent = true",
    ),
    "basic but not shareable": (
        GOOD.replace(
            '[fields.avatar]\nsensitivity = "low"\nshareable = true',
            '[fields.avatar]\nsensitivity = "low"\nshareable = false',
        ),
        r"fields\.avatar: a basic field must be shareable",
    ),
    "bad audience": (
        GOOD.replace('audience = "organization"', 'audience = "everyone"'),
        r"scopes\.org\.members\.read: audience: Must be one of: individual, organization",
    ),
    "no openid": (
        GOOD.replace("[scopes.openid]", "[scopes.login]"),
        r"must declare the individual scope 'openid'",
    ),
    "field twice": (
        GOOD.replace('fields = ["nickname", "avatar"]', 'fields = ["nickname", "nickname"]'),
        r"scopes\.profile: a field is listed twice",
    ),
    "bad scope name": (
        GOOD.replace("[scopes.profile]", '[scopes."Pro file"]'),
        r"scopes\.Pro file: invalid name .Pro file.: use lowercase letters",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_catalog_is_rejected_with_a_precise_message(tmp_path: Path, case: str) -> None:
    text, message = BAD[case]
    directory = write(tmp_path, text)
    with pytest.raises(catalog_mod.CatalogError, match=message) as info:
        catalog_mod.load(directory)
    assert str(directory / "basic.toml") in str(info.value) or case == "no openid"


def test_the_same_field_in_two_files_names_both(tmp_path: Path) -> None:
    directory = write(tmp_path, GOOD)
    write(
        tmp_path,
        '[fields.nickname]\nsensitivity = "low"\nshareable = true\nbasic = true\n'
        'description.en = "x"\ndescription.zh = "x"\n',
        name="more.toml",
    )
    with pytest.raises(
        catalog_mod.CatalogError, match=r"more\.toml: fields\.nickname: already declared in .*basic\.toml"
    ):
        catalog_mod.load(directory)


def test_empty_or_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(catalog_mod.CatalogError, match="does not exist"):
        catalog_mod.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(catalog_mod.CatalogError, match=r"no \*\.toml catalog files"):
        catalog_mod.load(tmp_path / "empty")


def test_version_changes_with_content(tmp_path: Path) -> None:
    first = catalog_mod.load(write(tmp_path, GOOD)).version
    second = catalog_mod.load(write(tmp_path, GOOD.replace("Your nickname", "Your display name"))).version
    assert first != second and len(first) == 16


def test_invalid_catalog_stops_the_app(tmp_path: Path, settings, store) -> None:
    from dataclasses import replace

    bad = write(tmp_path, BAD["undeclared field"][0])
    with pytest.raises(catalog_mod.CatalogError, match="shoe_size"):
        create_app(replace(settings, scopes_dir=bad), store)


def test_scopes_check_cli(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "broker", "scopes", "check"],
        env=broker_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"scope catalog OK: 9 fields, 6 scopes, version [0-9a-f]{16}", ok.stdout)
    bad = write(tmp_path, BAD["non-shareable in scope"][0])
    failed = subprocess.run(
        [sys.executable, "-m", "broker", "scopes", "check", str(bad)],
        env=broker_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1
    assert "invalid scope catalog:" in failed.stderr
    assert "basic.toml: scopes.profile: field 'email' is not shareable" in failed.stderr
