"""Fuzzing: schemathesis sends generated requests to every operation of the gateway's OpenAPI schema,
logged in as a lead, and no answer may be a server error (issue 21). Rasa and the action server
are on dead ports, so 503 (a part is down, said in the body) is the one 5xx that is right here.

The app runs in this process (ASGI, Rasa on a dead port). Examples are bounded per operation and
derandomized (a fixed seed), so a run is repeatable and takes about a minute on two cores.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from argon2 import PasswordHasher
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from bot.crm.models import Agent, AgentRole
from bot.settings import Settings
from bot.web.app import create_app

EXAMPLES_PER_OPERATION = 50
# Logging out would end the login the other operations use; its own tests are in tests/web.
SKIPPED = {("POST", "/api/auth/logout")}
BUDGET_SECONDS = 150


@pytest.fixture
def lead_app(web_settings: Settings, db_sessionmaker: sessionmaker[Session]) -> FastAPI:
    with db_sessionmaker.begin() as session:
        session.add(
            Agent(
                name="Lead",
                email="lead@kefu.test",
                password_hash=PasswordHasher().hash("a long enough password"),
                role=AgentRole.LEAD,
            )
        )
    # High enough not to turn the fuzzing into a rate-limit test.
    return create_app(web_settings.model_copy(update={"web_rate_per_minute": 0, "web_history_per_minute": 0}))


def test_no_generated_request_gets_a_server_error(lead_app: FastAPI) -> None:
    with TestClient(lead_app) as client:
        login = client.post(
            "/api/auth/login", json={"email": "lead@kefu.test", "password": "a long enough password"}
        )
        assert login.status_code == 200
        auth: dict[str, Any] = {
            "headers": {"X-CSRF-Token": login.json()["csrf_token"]},
            "cookies": dict(client.cookies),
        }
        schema = schemathesis.openapi.from_asgi("/openapi.json", lead_app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 30  # the walk found the routers' operations
        server_errors: list[str] = []
        started = time.monotonic()
        for operation in operations:
            if (operation.method.upper(), operation.path) in SKIPPED:
                continue

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: Any) -> None:
                response = case.call(**auth)
                # Rasa is on a dead port here: 503 "it is down" is the honest answer (health, suggestions).
                if response.status_code >= 500 and response.status_code != 503:
                    where = f"{case.method} {case.formatted_path}"
                    server_errors.append(f"{where} -> {response.status_code}: {response.text[:200]}")

            call()
        assert time.monotonic() - started < BUDGET_SECONDS
    assert server_errors == []
