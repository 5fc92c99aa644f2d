"""The dashboard API through the real gateway app: leads only, every chart, CSV like the JSON, audit."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import metrics
from bot.crm.models import Agent, AuditLog, Conversation, utcnow
from bot.demo.history import seed_history
from bot.demo.seed import DEMO_PASSWORD_AGENT, DEMO_PASSWORD_LEAD, seed_demo_data
from bot.settings import Settings
from bot.web.app import create_app

TODAY = date(2026, 11, 20)
RANGE = {"from": "2026-10-21", "to": "2026-11-19"}  # the 30 days of history before TODAY


@pytest.fixture
async def app(web_settings: Settings, db_sessionmaker: sessionmaker[Session]) -> AsyncIterator[FastAPI]:
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, TODAY)
        seed_history(session, days=30, now=datetime.combine(TODAY, time(0), tzinfo=UTC))
    quiet = web_settings.model_copy(update={"scheduler_enabled": False, "kb_warm_up": False})
    application = create_app(quiet)
    async with application.router.lifespan_context(application):
        yield application


@asynccontextmanager
async def _client(
    app: FastAPI, email: str | None = None, password: str = ""
) -> AsyncIterator[httpx.AsyncClient]:
    """A console client, logged in when given an e-mail (GETs need no CSRF header)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        if email is not None:
            response = await client.post("/api/auth/login", json={"email": email, "password": password})
            assert response.status_code == 200, response.text
        yield client


@pytest.fixture
async def lead(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app, "lead@kefu.example", DEMO_PASSWORD_LEAD) as client:
        yield client


@pytest.fixture
async def agent(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app, "ada@kefu.example", DEMO_PASSWORD_AGENT) as client:
        yield client


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app) as client:
        yield client


def _charts(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {chart["id"]: chart for chart in body["charts"]}


async def test_logged_out_gets_401_and_an_agent_403(
    anonymous: httpx.AsyncClient, agent: httpx.AsyncClient
) -> None:
    for path in ("/api/dashboard", "/api/dashboard/volume.csv"):
        response = await anonymous.get(path, params=RANGE)
        assert response.status_code == 401, path
        response = await agent.get(path, params=RANGE)
        assert response.status_code == 403, path
        assert "lead" in response.json()["error"]


async def test_a_lead_gets_every_chart_for_the_range(
    lead: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    response = await lead.get("/api/dashboard", params=RANGE)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["range"] == RANGE
    assert datetime.fromisoformat(body["generated_at"]) <= utcnow()
    charts = _charts(body)
    assert list(charts) == list(metrics.CHART_IDS)
    for chart in body["charts"]:
        assert set(chart) == {"id", "title", "kind", "unit", "columns", "rows", "headline"}
    volume = charts["volume"]
    assert [row[0] for row in volume["rows"]] == [
        (date(2026, 10, 21) + timedelta(days=n)).isoformat() for n in range(30)
    ]
    with db_sessionmaker() as session:
        stored = session.scalar(select(func.count()).select_from(Conversation))
    assert charts["containment"]["headline"]["conversations"] == stored == sum(r[1] for r in volume["rows"])
    # Only confirmed and assumed resolutions count: below the ~80% that were not handed over.
    assert 60 <= charts["containment"]["headline"]["containment_percent"] <= 75
    outcomes = [row[0] for row in charts["containment"]["rows"]]
    assert outcomes == ["confirmed", "assumed", "not resolved", "handed to a person"]
    assert [row[0] for row in charts["resolution_over_time"]["rows"]] == [row[0] for row in volume["rows"]]


async def test_the_default_range_is_the_last_30_days_up_to_today(lead: httpx.AsyncClient) -> None:
    body = (await lead.get("/api/dashboard")).json()
    today = utcnow().date()
    assert body["range"] == {"from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()}
    assert len(_charts(body)["volume"]["rows"]) == 30


async def test_each_csv_matches_its_chart_and_is_audited(
    lead: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    charts = _charts((await lead.get("/api/dashboard", params=RANGE)).json())
    for chart_id, chart in charts.items():
        response = await lead.get(f"/api/dashboard/{chart_id}.csv", params=RANGE)

        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert response.headers["content-disposition"] == (
            f'attachment; filename="kefu-{chart_id}-2026-10-21-2026-11-19.csv"'
        )
        header, *rows = list(csv.reader(io.StringIO(response.text)))
        assert header == chart["columns"]
        assert rows == [["" if cell is None else str(cell) for cell in row] for row in chart["rows"]]

    with db_sessionmaker() as session:
        lead_id = session.scalar(select(Agent.id).where(Agent.email == "lead@kefu.example"))
        exports = session.scalars(
            select(AuditLog).where(AuditLog.action == "dashboard_exported").order_by(AuditLog.id)
        ).all()
    assert [row.record_id for row in exports] == list(metrics.CHART_IDS)
    assert {row.actor for row in exports} == {f"agent:{lead_id}"}
    assert all(row.record_type == "dashboard" and row.details == RANGE for row in exports)
    assert all(row.source == "127.0.0.1" for row in exports)


async def test_an_unknown_chart_is_404_and_not_audited(
    lead: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    response = await lead.get("/api/dashboard/revenue.csv", params=RANGE)

    assert response.status_code == 404
    assert "volume" in response.json()["error"]  # names the charts there are
    with db_sessionmaker() as session:
        assert session.scalar(select(func.count()).where(AuditLog.action == "dashboard_exported")) == 0


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"from": "2026-11-19", "to": "2026-10-21"}, "after"),
        ({"from": "2025-01-01", "to": "2026-11-19"}, "at most 400"),
        ({"from": "2026-13-01", "to": "2026-11-19"}, "from must be a date"),
        ({"from": "2026-10-21", "to": "yesterday"}, "to must be a date"),
    ],
)
async def test_bad_ranges_are_400_with_a_reason(
    lead: httpx.AsyncClient, params: dict[str, str], says: str
) -> None:
    for path in ("/api/dashboard", "/api/dashboard/volume.csv"):
        response = await lead.get(path, params=params)
        assert response.status_code == 400, (path, response.text)
        assert says in response.json()["error"]


async def test_a_400_day_range_is_still_allowed(lead: httpx.AsyncClient) -> None:
    response = await lead.get("/api/dashboard", params={"from": "2025-10-16", "to": "2026-11-19"})
    assert response.status_code == 200, response.text
    assert len(_charts(response.json())["volume"]["rows"]) == 400
