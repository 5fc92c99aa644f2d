"""`kefu agents ...`: console accounts (agents, leads, admins) from the command line."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import NoReturn

from argon2 import PasswordHasher
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.cli.common import CliError, Commands, database, shown
from bot.crm.audit import audit
from bot.crm.models import Agent, AgentRole, AgentSession
from bot.settings import Settings

MIN_PASSWORD_CHARS = 12
# The console's login form refuses longer passwords (LoginIn in bot/web/routes/auth.py), so such an
# account could never log in.
MAX_PASSWORD_CHARS = 1024
_hasher = PasswordHasher()


def add_commands(commands: Commands) -> None:
    group = commands.add_parser("agents", help="list, create, disable or enable console accounts")
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)

    lst = actions.add_parser("list", help="every console account, active or not")
    lst.set_defaults(handler=_list)

    create = actions.add_parser("create", help="add a console account (asks for its password)")
    create.add_argument("--email", required=True, help="the login; stored lower-cased")
    create.add_argument("--name", required=True, help="shown to colleagues, e.g. 'Ada Agent'")
    create.add_argument("--role", required=True, choices=[role.value for role in AgentRole])
    _add_password_stdin(create)
    create.set_defaults(handler=_create)

    disable = actions.add_parser("disable", help="block an account and end all its console logins")
    disable.add_argument("email")
    disable.set_defaults(handler=_disable)

    enable = actions.add_parser("enable", help="let a disabled account log in again")
    enable.add_argument("email")
    enable.set_defaults(handler=_enable)

    reset = actions.add_parser(
        "reset-password", help="set a new password (asks for it) and end all the account's logins"
    )
    reset.add_argument("email")
    _add_password_stdin(reset)
    reset.set_defaults(handler=_reset_password)


def _add_password_stdin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of asking (for scripts)",
    )


# --- the actions --------------------------------------------------------------------------------


def _list(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as sessions, sessions.begin() as session:
        agents = session.scalars(select(Agent).order_by(Agent.id)).all()
        rows = [
            (
                str(agent.id),
                shown(agent.name),
                shown(agent.email),
                agent.role.value,
                "yes" if agent.active else "no",
                f"{agent.last_seen_at:%Y-%m-%d %H:%M} UTC" if agent.last_seen_at else "never",
            )
            for agent in agents
        ]
    if not rows:
        print("No console accounts yet; add one with `kefu agents create`.")
        return 0
    header = ("ID", "NAME", "E-MAIL", "ROLE", "ACTIVE", "LAST SEEN")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _create(args: argparse.Namespace, settings: Settings) -> int:
    email, name, role = _valid_email(args.email), args.name.strip(), AgentRole(args.role)
    if not name or len(name) > 200:
        _refuse("the name must be 1 to 200 characters, e.g. --name 'Ada Agent'")
    with database(settings) as sessions:
        # Checked before asking for the password too, so nobody types it twice for nothing.
        with sessions.begin() as session:
            _refuse_taken(session, email)
        password_hash = _hasher.hash(_read_new_password(args.password_stdin))
        with sessions.begin() as session:
            _refuse_taken(session, email)
            agent = Agent(name=name, email=email, password_hash=password_hash, role=role, active=True)
            session.add(agent)
            session.flush()
            audit(
                session, "cli", "agent_created", "agent", agent.id,
                {"email": email, "name": name, "role": role.value},
            )  # fmt: skip
            print(f"Created {role.value} {name} <{email}> (id {agent.id}); they can log in now.")
    return 0


def _disable(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as sessions, sessions.begin() as session:
        agent = _find(session, args.email)
        was_active = agent.active
        agent.active = False
        ended = _end_logins(session, agent)
        if not was_active and not ended:
            print(f"{agent.email} is already disabled; nothing changed.")
            return 0
        audit(
            session, "cli", "agent_disabled", "agent", agent.id,
            {"email": agent.email, "logins_ended": ended},
        )  # fmt: skip
        print(f"Disabled {agent.email} and ended {_logins(ended)}; `kefu agents enable` undoes it.")
    return 0


def _enable(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as sessions, sessions.begin() as session:
        agent = _find(session, args.email)
        if agent.active:
            print(f"{agent.email} is already active; nothing changed.")
            return 0
        agent.active = True
        audit(session, "cli", "agent_enabled", "agent", agent.id, {"email": agent.email})
        print(f"Enabled {agent.email}; they can log in again with their current password.")
    return 0


def _reset_password(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as sessions:
        with sessions.begin() as session:
            _find(session, args.email)  # before asking for the password
        password_hash = _hasher.hash(_read_new_password(args.password_stdin))
        with sessions.begin() as session:
            agent = _find(session, args.email)
            agent.password_hash = password_hash
            ended = _end_logins(session, agent)
            audit(
                session, "cli", "agent_password_reset", "agent", agent.id,
                {"email": agent.email, "logins_ended": ended},
            )  # fmt: skip
            note = "" if agent.active else " The account is disabled; `kefu agents enable` lets it log in."
            print(f"New password set for {agent.email}; ended {_logins(ended)}.{note}")
    return 0


# --- helpers ------------------------------------------------------------------------------------


def _refuse(message: str) -> NoReturn:
    raise CliError(message)


def _valid_email(text: str) -> str:
    email = text.strip().lower()
    local, _at, domain = email.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in email) or len(email) > 320:
        _refuse(f"{text!r} is not an e-mail address; give one like ada@example.com")
    return email


def _find(session: Session, email: str) -> Agent:
    agent = session.scalar(select(Agent).where(Agent.email == email.strip().lower()))
    if agent is None:
        _refuse(f"there is no console account {email.strip()!r}; `kefu agents list` shows them all")
    return agent


def _refuse_taken(session: Session, email: str) -> None:
    if session.scalar(select(Agent.id).where(Agent.email == email)) is not None:
        _refuse(
            f"there is already an account {email}; use `kefu agents reset-password` or "
            "`kefu agents enable` to change it"
        )


def _end_logins(session: Session, agent: Agent) -> int:
    """Log the agent out everywhere; returns how many console logins were ended."""
    result = session.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id))
    return int(result.rowcount)  # type: ignore[attr-defined]  # a DELETE returns a CursorResult


def _logins(count: int) -> str:
    return f"{count} console login{'' if count == 1 else 's'}"


def _read_new_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            _refuse("--password-stdin: standard input was empty; send the password as its first line")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            _refuse("the two passwords differ; nothing changed, run the command again")
    if len(password) < MIN_PASSWORD_CHARS:
        _refuse(
            f"the password is {len(password)} characters long; use at least {MIN_PASSWORD_CHARS} "
            "(a few random words are easy to type and hard to guess)"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        _refuse(f"the password is longer than {MAX_PASSWORD_CHARS} characters; the login form takes no more")
    return password
