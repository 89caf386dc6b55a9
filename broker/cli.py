"""The ``broker`` command line: one click group, to which each area adds its own commands.

Exit codes: 0 success, 1 the command ran and found a problem (e.g. a ledger that does not
verify), 2 bad usage or configuration, 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Any

import click

from broker.apps.commands import apps
from broker.commands import scopes, serve
from broker.config import ConfigError
from broker.core.catalog import CatalogError
from broker.core.commands import keys
from broker.core.keyring import KeyringError
from broker.demo import demo
from broker.directory.commands import directory
from broker.errors import CommandError
from broker.events.commands import webhooks, worker
from broker.ledger.commands import ledger
from broker.ops.commands import backup_command, migrate_command, print_version, restore_command
from broker.runtime import ServeError
from broker.storage.embedded import EmbeddedRedisError

__all__ = ["CommandError", "cli", "main", "resolve"]

# Failures the user can fix (settings, scope catalog, keys, the data directory's Redis, a refused
# start, a command's own complaint): one line on stderr, no traceback, exit 2.
USER_ERRORS = (ConfigError, CatalogError, KeyringError, EmbeddedRedisError, ServeError, CommandError)


class CommandFailed(click.ClickException):
    """One of ``USER_ERRORS``, shown as ``broker <command>: <message>``."""

    exit_code = 2

    def __init__(self, command: str, message: str) -> None:
        super().__init__(message)
        self.command = command

    def show(self, file: IO[Any] | None = None) -> None:
        print(f"broker {self.command}: {self.message}", file=sys.stderr if file is None else file)


class BrokerGroup(click.Group):
    """The root group: lists commands in the order they are added, and names the command that
    failed in the message of a failure the user can fix."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise CommandFailed(str(ctx.invoked_subcommand), str(exc)) from exc


@click.group(
    cls=BrokerGroup,
    help="a consent-limited data-sharing broker",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_version,
    help="show the broker's version, the data-schema version it reads and the embedded engine's, and exit",
)
def cli() -> None:
    pass


for _command in (
    serve,
    scopes,
    demo,
    apps,
    worker,
    webhooks,
    keys,
    ledger,
    directory,
    migrate_command,
    backup_command,
    restore_command,
):
    cli.add_command(_command)


def resolve(argv: Sequence[str]) -> click.Context:
    """The context of the command ``broker ARGV`` would run, with every argument parsed and checked
    (unknown commands and options, types, choices, required arguments) but nothing run; raises
    ``click.UsageError``. Tests use it to hold the READMEs and compose file to real commands."""
    args = list(argv)
    # A group's only options (--help, --version) exit, so what follows it is COMMAND [ARGS].
    ctx = cli.make_context("broker", list(args))
    while isinstance(ctx.command, click.Group):
        name, command, args = ctx.command.resolve_command(ctx, args)
        assert name is not None and command is not None  # resolve_command raises otherwise
        ctx = command.make_context(name, list(args), parent=ctx)
    return ctx


def main(argv: Sequence[str] | None = None) -> int:
    """The ``broker`` entry point (and ``python -m broker``); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(cli.main(args, prog_name="broker", standalone_mode=False) or 0)
    except click.ClickException as exc:  # usage errors (exit 2) and CommandFailed (exit 2)
        exc.show()
        return exc.exit_code
    except click.Abort:  # click's form of KeyboardInterrupt
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
