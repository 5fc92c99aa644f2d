"""`kefu db ...` and `kefu demo-logins`: create, migrate, seed or reset the CRM database."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime
from datetime import time as dtime

from bot.cli.common import CliError, Commands, database
from bot.crm import sla
from bot.crm.db import redact_database_url
from bot.crm.migrate import (
    database_revision,
    head_revision,
    new_revision,
    reset_database,
    upgrade_database,
)
from bot.crm.models import utcnow
from bot.demo.history import seed_history
from bot.demo.seed import DEMO_LOGINS, database_is_empty, seed_demo_data
from bot.settings import Settings

MAX_HISTORY_DAYS = 3660  # ten years; more is a typo


def add_commands(commands: Commands) -> None:
    _add_db_commands(commands)
    _add_demo_logins_command(commands)


# --- kefu db ... -------------------------------------------------------------------------------


def _add_db_commands(commands: Commands) -> None:
    db = commands.add_parser("db", help="create, migrate, seed or reset the CRM database")
    actions = db.add_subparsers(title="actions", metavar="ACTION", required=True)

    upgrade = actions.add_parser("upgrade", help="migrate the schema to the newest revision")
    upgrade.set_defaults(handler=_db_upgrade)

    seed = actions.add_parser("seed", help="add demo customers, orders and agents to an empty database")
    seed.add_argument(
        "--today", type=_iso_date, default=None, metavar="YYYY-MM-DD",
        help="the day the demo data is generated for (default: today, UTC)",
    )  # fmt: skip
    seed.add_argument(
        "--history-days", type=_days, default=90, metavar="N",
        help="days of past chats, hand-overs, tickets and satisfaction answers before that day, for the "
        "dashboard (default 90; 0 for none)",
    )  # fmt: skip
    seed.set_defaults(handler=_db_seed)

    revision = actions.add_parser(
        "revision", help="(developers) write a migration for model changes the database does not have yet"
    )
    revision.add_argument(
        "-m", "--message", required=True, help="what the migration does, e.g. 'add kb tables'"
    )
    revision.set_defaults(handler=_db_revision)

    reset = actions.add_parser("reset", help="drop every table, then migrate to the newest revision")
    reset.add_argument("--yes", action="store_true", help="confirm that all data may be deleted")
    reset.set_defaults(handler=_db_reset)


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    url = redact_database_url(settings.database_url)
    before = database_revision(settings)
    upgrade_database(settings)
    after = database_revision(settings)
    if before == after:
        print(f"Database {url} is up to date (revision {after}).")
    else:
        print(f"Database {url} upgraded from {before or 'an empty schema'} to revision {after}.")
    return 0


def _db_seed(args: argparse.Namespace, settings: Settings) -> int:
    url = redact_database_url(settings.database_url)
    if settings.kefu_env == "production":
        raise CliError("refusing to seed demo data in production: the demo agents' passwords are public")
    current, newest = database_revision(settings), head_revision(settings)
    if current != newest:
        revision = current or "none"
        raise CliError(
            f"the database at {url} is at revision {revision}, not {newest}; run `kefu db upgrade` first"
        )
    today: date = args.today or utcnow().date()
    started = time.perf_counter()
    with database(settings) as sessions, sessions.begin() as session:
        if not database_is_empty(session):
            print(f"Database {url} is already seeded (it has customers, orders or agents); nothing changed.")
            return 0
        policy = sla.load_policy(settings.sla_policy_file)
        summary = seed_demo_data(session, today, policy)
        history = None
        if args.history_days:
            midnight = datetime.combine(today, dtime(0), tzinfo=UTC)
            history = seed_history(
                session,
                days=args.history_days,
                now=midnight,
                policy=policy,
                reopen_days=settings.ticket_reopen_days,
            )
    seconds = time.perf_counter() - started
    print(f"Seeded {url} with demo data for {today:%Y-%m-%d} in {seconds:.1f} s: {summary.describe()}.")
    if history is not None:
        print(f"Added service history for the dashboard, {history.describe()}.")
    print("Run `kefu demo-logins` for the console logins.")
    return 0


def _db_revision(args: argparse.Namespace, settings: Settings) -> int:
    path = new_revision(settings, args.message)
    print(f"Wrote {path}; read it over before you commit it, autogenerate misses some changes.")
    return 0


def _db_reset(args: argparse.Namespace, settings: Settings) -> int:
    url = redact_database_url(settings.database_url)
    if not args.yes:
        raise CliError(f"`kefu db reset` deletes every table and row in {url}; add --yes if you mean it")
    dropped = reset_database(settings)
    revision = database_revision(settings)
    print(f"Dropped {len(dropped)} tables from {url} and migrated it to revision {revision}.")
    print("Run `kefu db seed` for demo data.")
    return 0


# --- kefu demo-logins ---------------------------------------------------------------------------


def _add_demo_logins_command(commands: Commands) -> None:
    demo_logins = commands.add_parser("demo-logins", help="print the console logins `kefu db seed` creates")
    demo_logins.set_defaults(handler=_demo_logins)


def _demo_logins(args: argparse.Namespace, settings: Settings) -> int:
    print("Demo console logins (created by `kefu db seed`):")
    width = max(len(email) for email, _password, _role in DEMO_LOGINS)
    for email, password, role in DEMO_LOGINS:
        print(f"  {role:<6} {email:<{width}}  {password}")
    return 0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_HISTORY_DAYS:
        raise argparse.ArgumentTypeError(
            f"expected a number of days from 0 to {MAX_HISTORY_DAYS}, got {text!r}"
        )
    return value
