"""The tickets API through the real gateway app: the queue order, history, status moves, roles, CSRF."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import priority, sla, tickets
from bot.crm.models import AuditLog, Severity, Ticket, ValueTier
from bot.demo.seed import DEMO_PASSWORD_AGENT, seed_demo_data
from bot.settings import Settings
from bot.web.app import create_app


@pytest.fixture
async def app(web_settings: Settings, db_sessionmaker: sessionmaker[Session]) -> AsyncIterator[FastAPI]:
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, date(2026, 11, 20))
    quiet = web_settings.model_copy(update={"scheduler_enabled": False, "kb_warm_up": False})
    application = create_app(quiet)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def agent(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        response = await client.post(
            "/api/auth/login", json={"email": "ada@kefu.example", "password": DEMO_PASSWORD_AGENT}
        )
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield client


def _add(db: sessionmaker[Session], severity: Severity, tier: ValueTier = ValueTier.REGULAR) -> str:
    with db.begin() as session:
        ticket = tickets.open_ticket(
            session,
            kind="complaint",
            category="other",
            subject=f"{severity} {tier}",
            actor="bot",
            policy=sla.default_policy(),
            severity=severity,
        )
        if tier is ValueTier.VIP:
            ticket.priority = priority.priority_for(severity, tier)
        return ticket.reference


async def test_the_queue_puts_urgent_first_then_the_oldest(
    agent: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    low = _add(db_sessionmaker, Severity.LOW)
    urgent = _add(db_sessionmaker, Severity.HIGH, ValueTier.VIP)
    high = _add(db_sessionmaker, Severity.HIGH)
    response = await agent.get("/api/tickets")
    assert response.status_code == 200
    order = [t["reference"] for t in response.json()["tickets"]]
    assert order.index(urgent) < order.index(high) < order.index(low)
    only_low = (await agent.get("/api/tickets", params={"priority": "low"})).json()["tickets"]
    assert low in [t["reference"] for t in only_low] and all(t["priority"] == "low" for t in only_low)
    # The demo's resolved ticket is not in the active queue unless asked for.
    assert "KF-000001" not in order
    resolved = (await agent.get("/api/tickets", params={"status": "resolved"})).json()["tickets"]
    assert [t["reference"] for t in resolved] == ["KF-000001"]


async def test_a_ticket_shows_its_history_and_the_view_is_audited(
    agent: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    response = await agent.get("/api/tickets/kf-000001")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "resolved" and body["resolution"].startswith("We sent a free repair kit")
    assert [e["kind"] for e in body["events"]][:1] == ["created"]
    assert body["allowed_statuses"] == ["closed", "open"]
    assert set(body["sla"]) == {"first_response", "resolution"}
    with db_sessionmaker() as session:
        assert session.scalars(select(AuditLog).where(AuditLog.action == "ticket_viewed")).first() is not None


async def test_status_moves_notes_and_priority(
    agent: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    reference = _add(db_sessionmaker, Severity.MEDIUM)
    assert (await agent.post(f"/api/tickets/{reference}/status", json={"status": "open"})).status_code == 200
    refused = await agent.post(f"/api/tickets/{reference}/status", json={"status": "closed"})
    assert refused.status_code == 409
    assert "can move to pending_customer, resolved" in refused.json()["error"]
    no_resolution = await agent.post(f"/api/tickets/{reference}/status", json={"status": "resolved"})
    assert no_resolution.status_code == 409 and "resolution" in no_resolution.json()["error"]
    note = await agent.post(f"/api/tickets/{reference}/notes", json={"text": "Called the carrier."})
    assert note.status_code == 200
    raised = await agent.post(
        f"/api/tickets/{reference}/priority", json={"priority": "urgent", "reason": "customer is travelling"}
    )
    assert raised.status_code == 200 and raised.json()["priority"] == "urgent"
    done = await agent.post(
        f"/api/tickets/{reference}/status",
        json={"status": "resolved", "resolution": "Parcel found and sent."},
    )
    assert done.status_code == 200
    kinds = [e["kind"] for e in done.json()["events"]]
    assert kinds == ["created", "status_changed", "note", "priority_changed", "status_changed"]
    with db_sessionmaker() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.reference == reference)).one()
        assert ticket.assigned_agent_id is not None and ticket.first_responded_at is not None


async def test_logins_csrf_and_unknown_tickets(app: FastAPI, agent: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as anonymous:
        assert (await anonymous.get("/api/tickets")).status_code == 401
        assert (await anonymous.get("/api/tickets/KF-000001")).status_code == 401
    without_csrf = await agent.post(
        "/api/tickets/KF-000002/status", json={"status": "open"}, headers={"X-CSRF-Token": ""}
    )
    assert without_csrf.status_code == 403
    missing = await agent.get("/api/tickets/KF-999999")
    assert missing.status_code == 404 and "KF-999999" in missing.json()["error"]
