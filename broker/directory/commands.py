"""``broker directory import FILE``: the platform API's NDJSON import, from the shell.

Same validation and all-or-nothing semantics as ``POST /internal/v1/import``: every line is
checked first; any bad line means nothing is written and exit 1 with line-numbered errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from broker.core.progress import ProgressBar
from broker.directory import importer as dio


def register(sub: Any) -> None:
    directory = sub.add_parser("directory", help="directory tools (users, organizations, memberships)")
    directory_sub = directory.add_subparsers(dest="directory_command", required=True)
    imp = directory_sub.add_parser("import", help="import users, orgs and memberships from an NDJSON file")
    imp.add_argument(
        "file", type=Path, help='NDJSON file, one {"type": "user"|"org"|"membership", ...} per line'
    )
    imp.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from broker.cli import CommandError
    from broker.runtime import load_settings, open_store

    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror}") from None
    settings = load_settings()
    records, errors = dio.parse_lines(raw.splitlines())
    with open_store(settings) as store:
        try:
            plan = dio.prepare(store, records, errors, now=int(time.time()), progress=ProgressBar("checking"))
            dio.apply(store, plan, progress=ProgressBar("writing"))
        except dio.ImportInvalid as exc:
            for line in exc.lines():
                print(line, file=sys.stderr)
            print(f"{args.file}: {len(exc.errors)} invalid line(s); nothing was imported", file=sys.stderr)
            return 1
    print(
        f"imported {len(plan.users)} users, {len(plan.orgs)} organizations, "
        f"{len(plan.memberships)} memberships from {args.file}"
    )
    return 0
