"""``broker backup``, ``broker restore`` and ``broker migrate`` (see broker/ops/backup.py and
broker/migrations), and what ``broker --version`` prints."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from broker.errors import CommandError


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@click.command(
    "backup",
    help="write everything that is state (Redis data, keys, secrets) to FILE (tar.gz), while the broker runs",
    short_help="back up the data, keys and secrets to a file",
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(file: Path) -> int:
    from broker.ops.backup import backup
    from broker.runtime import configure_logging, load_settings, open_store

    settings = load_settings()
    configure_logging(settings.log_level)
    file = file.expanduser().resolve()
    if not file.parent.is_dir():
        raise CommandError(f"{file.parent} is not a directory")
    # No schema check: an older store is exactly what to back up before `broker migrate`.
    with open_store(settings, check_schema=False) as store:
        manifest = backup(store, settings, file, _progress)
    print(
        f"backup written: {file} (broker {manifest['broker_version']}, data-schema version "
        f"{manifest['schema_version']}, {len(manifest['members'])} members). It holds the keys and "
        "secrets: keep it as safe as they are."
    )
    return 0


@click.command(
    "restore",
    help="restore a backup FILE into a new, empty data directory (and its embedded Redis, or the "
    "empty Redis BROKER_REDIS_URL names)",
    short_help="restore a backup into a new data directory",
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data-dir",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="the new data directory (must not exist or be empty)",
)
def restore_command(file: Path, data_dir: Path) -> int:
    from broker.config import Settings
    from broker.ops.backup import (
        check_empty_data_dir,
        check_target,
        read_archive,
        restore_files,
        restore_redis,
    )
    from broker.runtime import configure_logging, load_settings

    data_dir = data_dir.expanduser().resolve()
    check_empty_data_dir(data_dir)
    with tempfile.TemporaryDirectory(prefix="broker-restore-") as work:
        archive = read_archive(file, Path(work))
        manifest = archive.manifest
        _progress(
            f"backup of {manifest['created']}: broker {manifest['broker_version']}, data-schema version "
            f"{manifest['schema_version']}"
        )
        os.environ["BROKER_DATA_DIR"] = str(data_dir)
        check_target(Settings.from_env(create_dirs=False))  # an external target: empty?
        notes = restore_files(archive, data_dir)
        try:
            # The settings of the restored directory: its development secrets are the backed-up ones.
            settings = load_settings()
            configure_logging(settings.log_level)
            total = restore_redis(archive, settings, _progress)
        except Exception as exc:
            raise CommandError(
                f"{exc} (the restore is incomplete: empty {data_dir} before trying again)"
            ) from exc
    for note in notes:
        print(note)
    print(f"restored into {data_dir}: {total} keys. Start the broker with BROKER_DATA_DIR={data_dir}")
    from broker.migrations import SCHEMA_VERSION

    if int(manifest["schema_version"]) < SCHEMA_VERSION:
        print(f"the data is at schema version {manifest['schema_version']}: run `broker migrate` first")
    return 0


@click.command(
    "migrate",
    help="bring the data up to this broker's data-schema version (back it up first)",
    short_help="upgrade the data to this broker's schema version",
)
@click.option("--dry-run", is_flag=True, help="list the migrations that would run, change nothing")
def migrate_command(dry_run: bool) -> int:
    from broker.migrations import migrate
    from broker.runtime import configure_logging, load_settings, open_store

    settings = load_settings()
    configure_logging(settings.log_level)
    with open_store(settings, check_schema=False) as store:
        migrate(store, settings, dry_run=dry_run, progress=_progress)
    return 0


def version_message() -> str:
    from broker import __version__
    from broker.migrations import SCHEMA_VERSION
    from broker.ops.engine import binary_version

    return f"broker {__version__}\ndata-schema version {SCHEMA_VERSION}\nembedded engine {binary_version()}"


def print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(version_message())
    ctx.exit()
