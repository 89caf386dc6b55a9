"""``broker directory import FILE``: the platform API's NDJSON import, from the shell.

Same validation and all-or-nothing semantics as ``POST /internal/v1/import``: every line is
checked first; any bad line means nothing is written and exit 1 with line-numbered errors.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from broker.core.progress import ProgressBar
from broker.directory import importer as dio
from broker.errors import CommandError

IMPORT_HELP = "import users, orgs and memberships from an NDJSON file"


@click.group("directory", help="directory tools (users, organizations, memberships)")
def directory() -> None:
    pass


@directory.command(
    "import",
    help=(
        f"{IMPORT_HELP}\n\nFILE: NDJSON file, one "
        '{"type": "user"|"org"|"department"|"membership", ...} per line'
    ),
    short_help=IMPORT_HELP,
)
@click.argument("file", type=click.Path(path_type=Path))
def import_file(file: Path) -> int:
    from broker.runtime import load_settings, open_store

    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror}") from None
    settings = load_settings()
    records, errors = dio.parse_lines(raw.splitlines())
    with open_store(settings) as store:
        try:
            plan = dio.prepare(store, records, errors, now=int(time.time()), progress=ProgressBar("checking"))
            dio.apply(store, plan, progress=ProgressBar("writing"))
        except dio.ImportInvalid as exc:
            for line in exc.lines():
                print(line, file=sys.stderr)
            print(f"{file}: {len(exc.errors)} invalid line(s); nothing was imported", file=sys.stderr)
            return 1
    print(
        f"imported {len(plan.users)} users, {len(plan.orgs)} organizations, "
        f"{len(plan.memberships)} memberships, {len(plan.departments)} departments from {file}"
    )
    return 0
