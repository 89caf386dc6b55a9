"""A ``python -m broker ...`` process for tests that need the real server (granian + Redis)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from broker.storage.embedded import free_port
from tests.support.environment import ROOT, broker_env


class Broker:
    """One ``python -m broker serve`` process with its output in files (no pipe can fill up)."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = broker_env(
            tmp_path,
            BROKER_PORT=str(self.port),
            BROKER_WORKERS="1",
            BROKER_THREADS="4",
            BROKER_ISSUER=self.url,
            **env,
        )
        self.args = args or ("serve",)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tmp_path / f"broker-{self.port}.log"

    def start(self, timeout: float = 60) -> Broker:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "broker", *self.args],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"broker exited {self.process.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or (after a kill -9) a dying predecessor's worker
            time.sleep(0.1)
        raise AssertionError(f"broker not ready in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def headers(self) -> dict[str, str]:
        secrets = json.loads((self.tmp_path / "data" / "dev-secrets.json").read_text())
        return {"Authorization": f"Bearer {secrets['BROKER_PLATFORM_API_KEY']}"}


def kill_all(started: list[Broker]) -> None:
    """Test teardown: nothing a test started may outlive it."""
    for broker in started:
        if broker.process is not None and broker.process.poll() is None:
            broker.process.kill()
            broker.process.wait(10)


def start_example(
    args: list[str], log: Path, env: dict[str, str] | None = None, port: int = 0
) -> subprocess.Popen[bytes]:
    """Start an example app (``python <args>``) and wait until its port answers."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            requests.get(f"http://127.0.0.1:{port}/events", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(log.read_text())
