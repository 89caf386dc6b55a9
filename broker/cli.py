"""The ``broker`` command line. Each area contributes its subcommands through ``register``.

Exit codes: 0 success, 1 the command ran and found a problem (e.g. a ledger that does not
verify), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from broker.config import ConfigError
from broker.core.catalog import CatalogError
from broker.core.keyring import KeyringError
from broker.storage.embedded import EmbeddedRedisError

# Modules that add subcommands; each has ``register(subparsers)`` and sets ``func`` on its parsers.
COMMAND_MODULES = (
    "broker.commands",
    "broker.demo",
    "broker.apps.commands",
    "broker.events.commands",
    "broker.core.commands",
    "broker.ledger.commands",
    "broker.directory.commands",
)


class CommandError(Exception):
    """A command failed in a way the user can fix; printed without a traceback, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="broker", description="a consent-limited data-sharing broker")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from broker.runtime import ServeError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, CatalogError, KeyringError, EmbeddedRedisError, ServeError, CommandError) as exc:
        print(f"broker {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
