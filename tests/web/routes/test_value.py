"""Customer equity and loyalty through the real gateway app: leads only, every chart, CSV like the JSON."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import loyalty
from bot.crm.models import AuditLog
from bot.demo.seed import DEMO_PASSWORD_AGENT, DEMO_PASSWORD_LEAD, seed_demo_data
from bot.settings import Settings
from bot.web.app import create_app

TODAY = date(2026, 11, 20)


@pytest.fixture
async def app(web_settings: Settings, db_sessionmaker: sessionmaker[Session]) -> AsyncIterator[FastAPI]:
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, TODAY)
    quiet = web_settings.model_copy(update={"scheduler_enabled": False, "kb_warm_up": False})
    application = create_app(quiet)
    async with application.router.lifespan_context(application):
        yield application


async def _login(client: httpx.AsyncClient, email: str, password: str) -> None:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text


async def test_leads_see_equity_and_loyalty_and_export_each_chart(
    app: FastAPI, db_sessionmaker: sessionmaker[Session]
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/api/value/charts")).status_code == 401
        await _login(client, "ada@kefu.example", DEMO_PASSWORD_AGENT)
        assert (await client.get("/api/value/charts")).status_code == 403
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await _login(client, "lead@kefu.example", DEMO_PASSWORD_LEAD)
        body = (await client.get("/api/value/charts")).json()
        charts = {chart["id"]: chart for chart in body["charts"]}
        assert tuple(charts) == loyalty.CHART_IDS
        # The demo shop is valued by seeding's rescoring: equity is positive and VIPs carry a share.
        assert charts["equity_tiers"]["headline"]["equity_eur"] > 0
        vip = next(row for row in charts["equity_tiers"]["rows"] if row[0] == "vip")
        assert vip[1] > 0 and vip[3] > 0
        assert 0 < charts["loyalty"]["headline"]["repeat_purchase_rate"] <= 100
        assert len(charts["cohort_retention"]["rows"]) >= 20  # two years of monthly cohorts

        response = await client.get("/api/value/cohort_retention.csv")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.text)))
        assert rows[0] == charts["cohort_retention"]["columns"]
        assert len(rows) - 1 == len(charts["cohort_retention"]["rows"])
        assert (await client.get("/api/value/nothing.csv")).status_code == 404
    with db_sessionmaker() as session:
        exported = session.scalars(
            select(AuditLog.record_id).where(AuditLog.action == "value_chart_exported")
        ).all()
        assert exported == ["cohort_retention"]


async def test_winback_list_is_ranked_filterable_and_exported(
    app: FastAPI, db_sessionmaker: sessionmaker[Session]
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await _login(client, "lead@kefu.example", DEMO_PASSWORD_LEAD)
        everyone = (await client.get("/api/value/winback")).json()["customers"]
        assert {c["stage"] for c in everyone} == {"churned", "declining"}
        values = [c["value_if_won_back_eur"] for c in everyone]
        assert values == sorted(values, reverse=True) and values[0] > 0
        assert all(c["reasons"] for c in everyone if c["stage"] == "churned")  # a year silent at least

        churned = (await client.get("/api/value/winback", params={"stage": "churned"})).json()["customers"]
        assert churned and {c["stage"] for c in churned} == {"churned"} and len(churned) < len(everyone)
        silent = (await client.get("/api/value/winback", params={"reason": "long_silence"})).json()[
            "customers"
        ]
        assert silent and all("long_silence" in c["reasons"].split() for c in silent)
        assert (await client.get("/api/value/winback", params={"reason": "moon"})).status_code == 400

        response = await client.get("/api/value/winback.csv", params={"stage": "churned"})
        assert response.status_code == 200
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [int(r["customer_id"]) for r in rows] == [c["customer_id"] for c in churned]
    with db_sessionmaker() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.record_id == "winback")).all()
        assert actions == ["winback_exported"]
