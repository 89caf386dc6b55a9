"""Where the tests run: the repository root, settings for a test app, the environment for a
``broker`` subprocess, and the app served over real HTTP on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from broker.config import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
ISSUER = "http://127.0.0.1:8080"  # the issuer of the apps make_settings configures


def make_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    env = {
        "BROKER_DATA_DIR": str(tmp_path / "data"),
        "BROKER_REDIS_URL": redis_url,
        "BROKER_ISSUER": ISSUER,
        "BROKER_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_env(env)
    return replace(settings, **overrides) if overrides else settings


class LiveServer:
    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server = make_server("127.0.0.1", port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(10)


def broker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for running the ``broker`` CLI as a subprocess (no BROKER_* leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    if os.environ.get("BROKER_REDIS_SERVER"):  # the engine this test run uses (docs/engine.md)
        env["BROKER_REDIS_SERVER"] = os.environ["BROKER_REDIS_SERVER"]
    env.update(
        {"BROKER_DATA_DIR": str(tmp_path / "data"), "BROKER_LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT)}
    )
    env.update(extra)
    return env


def broker_cli(
    tmp_path: Path, *args: str, timeout: float = 180, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m broker ARGS`` in its own environment (:func:`broker_env`), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        env=broker_env(tmp_path, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
