"""The `kefu` command's entry point: reads the settings, runs one subcommand, reports errors in one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from alembic.util.exc import CommandError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bot.cli import agents, customers, db, kb, tickets
from bot.cli.common import CliError, Handler
from bot.crm.db import keep_sqlite_file_private, redact_database_url
from bot.errors import KefuError
from bot.settings import get_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `kefu` command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as error:
        reasons = "; ".join(str(detail["msg"]) for detail in error.errors())
        print(f"kefu: invalid settings: {reasons}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    url = redact_database_url(settings.database_url)
    try:
        # Any command may create the SQLite file (`kefu db upgrade` first of all): private from the start.
        keep_sqlite_file_private(settings.database_url)
    except OSError as error:
        print(f"kefu: cannot use the database at {url}: {error}", file=sys.stderr)
        return 1
    try:
        return handler(args, settings)
    except CliError as error:
        print(f"kefu: {error}", file=sys.stderr)
    except KefuError as error:
        print(f"kefu: {error.message}", file=sys.stderr)
    except DBAPIError as error:
        # Connection refused, unknown database, bad password, unwritable file ...: the driver says which.
        print(f"kefu: cannot use the database at {url}: {_first_line(error.orig)}", file=sys.stderr)
    except (SQLAlchemyError, CommandError) as error:
        print(f"kefu: database error at {url}: {_first_line(error)}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each area registers its group through one `_add_..._commands` function."""
    parser = argparse.ArgumentParser(
        prog="kefu", description="Kefu customer-service assistant: administration."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for group in (db, kb, tickets, customers, agents):
        group.add_commands(commands)
    return parser


def _first_line(error: BaseException | None) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
