"""`kefu agents ...` on the test's database, checked through the console's real login."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.cli import main as cli
from bot.crm.models import Agent, AuditLog
from bot.settings import Settings, get_settings

# The console app and its client (tests/web/conftest.py), to log in as the accounts made here.
from tests.web.conftest import client, web_app, web_settings  # noqa: F401

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple tulip lantern"


@dataclass
class Run:
    code: int
    out: str
    err: str


Kefu = Callable[..., Run]


@pytest.fixture
def kefu(
    settings: Settings,
    db_sessionmaker: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Kefu]:
    """`kefu` run in-process on the test's migrated database, configured the way the command is: by
    DATABASE_URL, from a directory without a .env. Returns the exit status and what it printed."""
    for name in os.environ:
        if name.startswith("KEFU_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()

    def run(*args: str, stdin: str = "") -> Run:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    yield run
    get_settings.cache_clear()


def create(kefu: Kefu, email: str, password: str = PASSWORD, role: str = "agent") -> Run:
    return kefu(
        "agents", "create", "--email", email, "--name", "Nia New", "--role", role, "--password-stdin",
        stdin=f"{password}\n",
    )  # fmt: skip


async def log_in(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/api/auth/login", json={"email": email, "password": password})


def agents(db: sessionmaker[Session]) -> list[Agent]:
    with db() as session:
        return list(session.scalars(select(Agent)))


async def test_created_agent_can_log_in(kefu: Kefu, client: httpx.AsyncClient) -> None:  # noqa: F811
    created = create(kefu, "  Nia.New@Example.COM ", role="lead")
    assert created.code == 0, created.err
    assert "nia.new@example.com" in created.out

    response = await log_in(client, "nia.new@example.com", PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["agent"]["role"] == "lead"
    assert (await client.get("/api/auth/me")).json()["agent"]["email"] == "nia.new@example.com"


def test_list_shows_every_account(kefu: Kefu, db_sessionmaker: sessionmaker[Session]) -> None:
    assert "No console accounts" in kefu("agents", "list").out
    assert create(kefu, "nia@example.com", role="lead").code == 0
    assert create(kefu, "sam@example.com").code == 0
    assert kefu("agents", "disable", "sam@example.com").code == 0
    with db_sessionmaker.begin() as session:
        nia = session.scalars(select(Agent).where(Agent.email == "nia@example.com")).one()
        nia.last_seen_at = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)

    listed = kefu("agents", "list")

    assert listed.code == 0
    header, *lines = listed.out.splitlines()
    assert header.split() == ["ID", "NAME", "E-MAIL", "ROLE", "ACTIVE", "LAST", "SEEN"]
    assert lines[0].split()[3:] == ["nia@example.com", "lead", "yes", "2026-03-04", "05:06", "UTC"]
    assert lines[1].split()[3:] == ["sam@example.com", "agent", "no", "never"]


async def test_password_can_be_typed_twice_at_the_prompt(
    kefu: Kefu,
    client: httpx.AsyncClient,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    typed = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    mismatch = kefu("agents", "create", "--email", "nia@example.com", "--name", "Nia", "--role", "agent")
    assert mismatch.code == 1
    assert "differ" in mismatch.err

    typed = iter([PASSWORD, PASSWORD])
    matched = kefu("agents", "create", "--email", "nia@example.com", "--name", "Nia", "--role", "agent")
    assert matched.code == 0, matched.err
    assert (await log_in(client, "nia@example.com", PASSWORD)).status_code == 200


def test_duplicate_email_is_refused(kefu: Kefu, db_sessionmaker: sessionmaker[Session]) -> None:
    assert create(kefu, "nia@example.com").code == 0

    again = create(kefu, "NIA@example.com", password=NEW_PASSWORD)

    assert again.code != 0
    assert "already an account nia@example.com" in again.err
    assert "Traceback" not in again.err
    assert [agent.email for agent in agents(db_sessionmaker)] == ["nia@example.com"]


def test_short_password_is_refused(kefu: Kefu, db_sessionmaker: sessionmaker[Session]) -> None:
    result = create(kefu, "nia@example.com", password="short pass")

    assert result.code != 0
    assert "at least 12" in result.err
    assert agents(db_sessionmaker) == []


def test_bad_role_and_bad_email_are_refused(
    kefu: Kefu, db_sessionmaker: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        kefu("agents", "create", "--email", "nia@example.com", "--name", "Nia", "--role", "boss")
    assert exited.value.code == 2
    assert "invalid choice: 'boss'" in capsys.readouterr().err

    no_email = create(kefu, "nia.example.com")
    assert no_email.code != 0 and "not an e-mail address" in no_email.err
    assert agents(db_sessionmaker) == []


def test_unknown_email_is_named(kefu: Kefu) -> None:
    for action in ("disable", "enable"):
        result = kefu("agents", action, "nobody@example.com")
        assert result.code != 0
        assert "no console account 'nobody@example.com'" in result.err
    reset = kefu("agents", "reset-password", "nobody@example.com", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert reset.code != 0 and "no console account" in reset.err


async def test_disable_logs_out_everywhere_and_blocks_login(
    kefu: Kefu,
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    assert create(kefu, "nia@example.com").code == 0
    assert (await log_in(client, "nia@example.com", PASSWORD)).status_code == 200
    assert (await client.get("/api/auth/me")).status_code == 200

    disabled = kefu("agents", "disable", "NIA@example.com")
    assert disabled.code == 0, disabled.err
    assert "1 console login" in disabled.out

    assert (await client.get("/api/auth/me")).status_code == 401
    assert (await log_in(client, "nia@example.com", PASSWORD)).status_code == 401

    assert kefu("agents", "enable", "nia@example.com").code == 0
    # The old login stays ended; the account can log in afresh.
    assert (await client.get("/api/auth/me")).status_code == 401
    assert (await log_in(client, "nia@example.com", PASSWORD)).status_code == 200
    assert (await client.get("/api/auth/me")).status_code == 200


async def test_reset_password_replaces_the_old_one_and_ends_logins(
    kefu: Kefu,
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    assert create(kefu, "nia@example.com").code == 0
    assert (await log_in(client, "nia@example.com", PASSWORD)).status_code == 200

    short = kefu("agents", "reset-password", "nia@example.com", "--password-stdin", stdin="too short\n")
    assert short.code != 0 and "at least 12" in short.err
    assert (await client.get("/api/auth/me")).status_code == 200  # a refused reset changes nothing

    reset = kefu("agents", "reset-password", "nia@example.com", "--password-stdin", stdin=f"{NEW_PASSWORD}\n")
    assert reset.code == 0, reset.err

    assert (await client.get("/api/auth/me")).status_code == 401
    assert (await log_in(client, "nia@example.com", PASSWORD)).status_code == 401
    assert (await log_in(client, "nia@example.com", NEW_PASSWORD)).status_code == 200


def test_every_change_is_audited_without_the_password(
    kefu: Kefu, db_sessionmaker: sessionmaker[Session]
) -> None:
    assert create(kefu, "nia@example.com").code == 0
    assert kefu("agents", "disable", "nia@example.com").code == 0
    assert kefu("agents", "enable", "nia@example.com").code == 0
    reset = kefu("agents", "reset-password", "nia@example.com", "--password-stdin", stdin=f"{NEW_PASSWORD}\n")
    assert reset.code == 0
    # Refused or idle commands change nothing, so they leave no trace.
    assert kefu("agents", "enable", "nia@example.com").code == 0
    assert create(kefu, "nia@example.com").code != 0

    with db_sessionmaker() as session:
        rows = session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        (agent,) = session.scalars(select(Agent)).all()
    assert [(row.actor, row.action) for row in rows] == [
        ("cli", "agent_created"),
        ("cli", "agent_disabled"),
        ("cli", "agent_enabled"),
        ("cli", "agent_password_reset"),
    ]
    assert all(row.record_type == "agent" and row.record_id == str(agent.id) for row in rows)
    assert rows[0].details == {"email": "nia@example.com", "name": "Nia New", "role": "agent"}
    for row in rows:
        assert PASSWORD not in repr(row.details) and NEW_PASSWORD not in repr(row.details)
        assert row.details["email"] == "nia@example.com"
