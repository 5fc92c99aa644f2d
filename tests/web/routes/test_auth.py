"""Console logins are refused for a while after repeated failures, per e-mail address and per client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.models import Agent, AgentRole, AuditLog, utcnow
from bot.web.routes.auth import (
    LOGIN_FAILURE_WINDOW,
    LOGIN_MAX_FAILURES_PER_EMAIL,
    LOGIN_MAX_FAILURES_PER_SOURCE,
)

PASSWORD = "correct horse battery"
ADA, SAM = "ada@example.com", "sam@example.com"
CLIENT_ADDRESS = "127.0.0.1"  # what httpx.ASGITransport reports as the client


@pytest.fixture(autouse=True)
def accounts(db: sessionmaker[Session]) -> None:
    password_hash = PasswordHasher().hash(PASSWORD)
    with db.begin() as session:
        for name, email in (("Ada", ADA), ("Sam", SAM)):
            session.add(Agent(name=name, email=email, password_hash=password_hash, role=AgentRole.AGENT))


async def log_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/api/auth/login", json={"email": email, "password": password})


async def fail(http: httpx.AsyncClient, email: str, times: int) -> None:
    for _ in range(times):
        response = await log_in(http, email, "wrong password")
        assert response.status_code == 401, response.text


def add_failures(db: sessionmaker[Session], email: str, times: int, age: timedelta) -> None:
    """Failed logins from `client`'s address, written the way the login writes them, `age` ago."""
    with db.begin() as session:
        for _ in range(times):
            session.add(
                AuditLog(
                    actor="anonymous",
                    action="login_failed",
                    record_type="agent",
                    details={"email": email},
                    source=CLIENT_ADDRESS,
                    created_at=utcnow() - age,
                )
            )


@pytest.fixture
async def elsewhere(web_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on another address than `client`."""
    transport = httpx.ASGITransport(app=web_app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_after_five_failures_even_the_right_password_waits(
    client: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    assert LOGIN_MAX_FAILURES_PER_EMAIL == 5
    await fail(client, ADA, 3)
    await fail(client, " ADA@Example.com", 2)  # the same account, however it is typed

    response = await log_in(client, ADA)

    assert response.status_code == 429
    message = response.json()["error"]
    assert "too many failed logins" in message and "wait 15 minutes" in message
    assert (await client.get("/api/auth/me")).status_code == 401
    with db() as session:
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        emails = {row.details["email"] for row in session.scalars(select(AuditLog))}
    assert actions == ["login_failed"] * 5 + ["login_throttled"]
    assert emails == {ADA}


async def test_four_failures_still_let_the_right_password_in(client: httpx.AsyncClient) -> None:
    await fail(client, ADA, LOGIN_MAX_FAILURES_PER_EMAIL - 1)

    assert (await log_in(client, ADA)).status_code == 200
    # A success does not wipe the slate: one more failure reaches the limit.
    await fail(client, ADA, 1)
    assert (await log_in(client, ADA)).status_code == 429


async def test_unknown_emails_are_throttled_like_real_ones(client: httpx.AsyncClient) -> None:
    await fail(client, "nobody@example.com", LOGIN_MAX_FAILURES_PER_EMAIL)

    response = await log_in(client, "nobody@example.com")

    assert response.status_code == 429  # so a 429 does not tell an attacker the account exists


async def test_the_client_limit_spans_accounts(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    assert LOGIN_MAX_FAILURES_PER_SOURCE == 20
    await fail(client, ADA, LOGIN_MAX_FAILURES_PER_EMAIL)
    assert (await log_in(client, ADA)).status_code == 429
    assert (await log_in(client, SAM)).status_code == 200  # another account from the same client

    # Guessing one password for each of many addresses never reaches an address's limit ...
    for number in range(LOGIN_MAX_FAILURES_PER_SOURCE - LOGIN_MAX_FAILURES_PER_EMAIL):
        await fail(client, f"guess{number}@example.com", 1)

    # ... but does reach the client's.
    refused = await log_in(client, SAM)
    assert refused.status_code == 429
    assert "wait" in refused.json()["error"]
    # Sam from another address is not held up by this client.
    assert (await log_in(elsewhere, SAM)).status_code == 200


async def test_the_client_limit_is_not_reached_one_short(
    client: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    for number in range(LOGIN_MAX_FAILURES_PER_SOURCE - 1):
        add_failures(db, f"guess{number}@example.com", 1, age=timedelta(minutes=1))

    assert (await log_in(client, SAM)).status_code == 200


async def test_failures_older_than_the_window_do_not_count(
    client: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    minute = timedelta(minutes=1)
    add_failures(db, ADA, LOGIN_MAX_FAILURES_PER_SOURCE, age=LOGIN_FAILURE_WINDOW + minute)
    assert (await log_in(client, ADA)).status_code == 200

    add_failures(db, ADA, LOGIN_MAX_FAILURES_PER_EMAIL, age=LOGIN_FAILURE_WINDOW - minute)
    response = await log_in(client, ADA)
    assert response.status_code == 429
    # The newest counted failure leaves the window in a minute; the message says so.
    assert "wait 1 minute and try again" in response.json()["error"]


async def test_a_strangers_failures_do_not_lock_the_agent_out(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    # Agent e-mails are easy to guess: someone elsewhere tries Ada's until they are refused ...
    await fail(elsewhere, ADA, LOGIN_MAX_FAILURES_PER_EMAIL)
    assert (await log_in(elsewhere, ADA)).status_code == 429

    # ... and Ada, from her own address, logs in as usual.
    assert (await log_in(client, ADA)).status_code == 200
