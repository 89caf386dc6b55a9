"""Redis Sentinel settings are validated at start-up; /readyz says when records cannot be confirmed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.app import create_app
from broker.config import ConfigError, Settings
from broker.storage.store import Store


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"BROKER_DATA_DIR": str(tmp_path / "data"), **extra}


def test_sentinels_are_parsed(tmp_path: Path) -> None:
    settings = Settings.from_env(
        env(tmp_path, BROKER_REDIS_SENTINELS="127.0.0.1:26379, [::1]:26380,s3.example:26381")
    )
    assert settings.redis_sentinels == (("127.0.0.1", 26379), ("::1", 26380), ("s3.example", 26381))
    assert settings.redis_sentinel_service == "mymaster"
    assert Settings.from_env(env(tmp_path)).redis_sentinels == ()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"BROKER_REDIS_SENTINELS": "127.0.0.1"}, "BROKER_REDIS_SENTINELS: expected a comma-separated list"),
        ({"BROKER_REDIS_SENTINELS": "h:99999"}, "BROKER_REDIS_SENTINELS: expected a comma-separated list"),
        (
            {"BROKER_REDIS_SENTINELS": "h:1", "BROKER_REDIS_SENTINEL_SERVICE": "my master"},
            "BROKER_REDIS_SENTINEL_SERVICE",
        ),
        (
            {"BROKER_REDIS_SENTINELS": "h:1", "BROKER_REDIS_URL": "redis://127.0.0.1:1"},
            "BROKER_REDIS_SENTINELS and BROKER_REDIS_URL are both set",
        ),
        (
            {"BROKER_REDIS_SENTINELS": "h:1", "BROKER_REDIS_CLUSTER": "true"},
            "BROKER_REDIS_SENTINELS and BROKER_REDIS_CLUSTER=true are both set",
        ),
        ({"BROKER_REDIS_SENTINEL_PASSWORD": "x"}, "apply only with BROKER_REDIS_SENTINELS"),
    ],
)
def test_invalid_sentinel_settings_are_clear_errors(
    tmp_path: Path, extra: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env(tmp_path, **extra))


def test_passwords_never_show_in_settings_repr(tmp_path: Path) -> None:
    settings = Settings.from_env(
        env(tmp_path, BROKER_REDIS_SENTINELS="h:1", BROKER_REDIS_SENTINEL_PASSWORD="s3cret-sentinel")
    )
    assert "s3cret-sentinel" not in repr(settings)


def test_readyz_is_503_while_records_cannot_be_confirmed(
    settings: Any, redis_server: Any, store: Store
) -> None:
    waiting = Store.from_url(redis_server.url, wait_replicas=1)  # a single node: no replica confirms
    response = create_app(settings, waiting).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["replication"] is False
    assert response.get_json()["checks"]["redis"] is True
    waiting.close()


def test_readyz_without_wait_has_no_replication_check(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert "replication" not in response.get_json()["checks"]
