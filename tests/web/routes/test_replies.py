"""The saved-replies API through the real gateway app: leads write, edit, archive and restore
(audited, clear 4xx on bad input); agents list a chat's replies, get one filled from the CRM, and
cannot send a reply that still has a gap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.models import AuditLog, Conversation, Customer, Handoff, Order, Ticket
from bot.demo.seed import DEMO_PASSWORD_AGENT, DEMO_PASSWORD_LEAD, seed_demo_data
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.visitors import named_visitor

FURIOUS = "This is absolutely ridiculous, you useless thieves, I am furious!!"
WHERE = {
    "shortcut": "order-update",
    "title": "Order update",
    "body": "Hi {customer.first_name}, order {order.number} is {order.status}: {order.tracking_url}. "
    "Your ticket is {ticket.reference}. {agent.first_name}",
}


@pytest.fixture
async def app(web_settings: Settings, db_sessionmaker: sessionmaker[Session]) -> AsyncIterator[FastAPI]:
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, date(2026, 11, 20))
    application = create_app(web_settings)
    async with application.router.lifespan_context(application):
        yield application


async def _login(app: FastAPI, email: str, password: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


@pytest.fixture
async def lena(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    client = await _login(app, "lead@kefu.example", DEMO_PASSWORD_LEAD)
    yield client
    await client.aclose()


@pytest.fixture
async def ada(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    client = await _login(app, "ada@kefu.example", DEMO_PASSWORD_AGENT)
    yield client
    await client.aclose()


@pytest.fixture
async def customer(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


async def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    return str(response.json()["error"])


async def test_a_lead_creates_edits_archives_and_restores_and_each_change_is_audited(
    lena: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    created = await lena.post("/api/saved-replies", json=WHERE)
    assert created.status_code == 201, created.text
    reply = created.json()
    assert reply["language"] == "en" and reply["archived"] is False and reply["created_by"] == "Lena Lead"
    assert "order.number" in reply["placeholders"]

    edited = await lena.patch(f"/api/saved-replies/{reply['id']}", json={"title": "Where the order is"})
    assert edited.json()["title"] == "Where the order is" and edited.json()["body"] == WHERE["body"]
    archived = await lena.post(f"/api/saved-replies/{reply['id']}/archive")
    assert archived.json()["archived"] is True
    listed = (await lena.get("/api/saved-replies", params={"archived": "false"})).json()
    assert reply["id"] not in [r["id"] for r in listed["replies"]]
    assert "{order.tracking_url}" in [p["token"] for p in listed["placeholders"]]
    restored = await lena.post(f"/api/saved-replies/{reply['id']}/unarchive")
    assert restored.json()["archived"] is False

    with db_sessionmaker() as session:
        rows = session.scalars(
            select(AuditLog).where(
                AuditLog.record_type == "saved_reply", AuditLog.record_id == str(reply["id"])
            )
        ).all()
    assert [r.action for r in rows] == [
        "saved_reply_created",
        "saved_reply_edited",
        "saved_reply_archived",
        "saved_reply_restored",
    ]
    assert rows[1].details["before"] == {"title": "Order update"} and rows[0].source


async def test_bad_input_gets_a_clear_4xx_and_stores_nothing(
    lena: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    with db_sessionmaker() as session:
        before = session.scalars(select(AuditLog.id)).all()
    assert (await lena.post("/api/saved-replies", json=WHERE)).status_code == 201

    duplicate = await lena.post("/api/saved-replies", json={**WHERE, "title": "Another"})
    assert "already a saved reply '/order-update'" in await _error(duplicate, 409)
    empty = await lena.post("/api/saved-replies", json={**WHERE, "shortcut": "empty", "body": " \n "})
    assert "the reply text is empty" in await _error(empty, 400)
    typo = await lena.post("/api/saved-replies", json={**WHERE, "shortcut": "typo", "body": "{order.numbr}"})
    message = await _error(typo, 400)
    assert "unknown placeholder {order.numbr}" in message and "{order.number}" in message
    long = await lena.post("/api/saved-replies", json={**WHERE, "shortcut": "long", "body": "x" * 2001})
    assert "the limit is 2000" in await _error(long, 400)
    shouty = await lena.post("/api/saved-replies", json={**WHERE, "shortcut": "Order Update"})
    assert "lower-case letters and digits joined by hyphens" in await _error(shouty, 400)
    missing = await lena.post("/api/saved-replies", json={"shortcut": "x", "title": "x"})
    assert missing.status_code == 422
    control = await lena.post("/api/saved-replies", json={**WHERE, "shortcut": "ctl", "body": "a\x00b"})
    assert control.status_code == 422
    other = (await lena.post("/api/saved-replies", json={**WHERE, "shortcut": "other"})).json()
    clash = await lena.patch(f"/api/saved-replies/{other['id']}", json={"shortcut": "order-update"})
    assert "already a saved reply" in await _error(clash, 409)
    assert (await lena.patch("/api/saved-replies/999999", json={"title": "x"})).status_code == 404

    with db_sessionmaker() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.id.not_in(before))).all()
    assert actions.count("saved_reply_created") == 2 and "saved_reply_edited" not in actions


async def test_agents_may_not_write_them(ada: httpx.AsyncClient, customer: httpx.AsyncClient) -> None:
    refused = await ada.post("/api/saved-replies", json=WHERE)
    assert refused.status_code == 403 and refused.json()["error"] == "only support leads can do this"
    assert (await customer.post("/api/saved-replies", json=WHERE)).status_code == 401


async def _handed_over_chat(customer: httpx.AsyncClient, db: sessionmaker[Session], order_number: str) -> int:
    """A chat of Ana's in the queue (strong language needs no Rasa), its ticket about one order."""
    response = await customer.post(
        "/api/web/messages", json={"session": named_visitor("ana"), "text": FURIOUS}
    )
    body: dict[str, Any] = response.json()
    assert body["mode"] == "pending_agent"
    chat = int(body["conversation_id"])
    with db.begin() as session:
        ana = session.scalars(select(Customer).where(Customer.email == "ana.souza@example.com")).one()
        session.get_one(Conversation, chat).customer_id = ana.id
        ticket_id = session.scalars(select(Handoff.ticket_id).where(Handoff.conversation_id == chat)).one()
        ticket = session.get_one(Ticket, ticket_id)
        ticket.order_id = session.scalars(select(Order.id).where(Order.number == order_number)).one()
    return chat


async def test_an_agent_gets_the_reply_filled_from_the_crm_and_cannot_send_its_gaps(
    lena: httpx.AsyncClient,
    ada: httpx.AsyncClient,
    customer: httpx.AsyncClient,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    reply = (await lena.post("/api/saved-replies", json=WHERE)).json()
    old = (await lena.post("/api/saved-replies", json={**WHERE, "shortcut": "old-one"})).json()
    await lena.post(f"/api/saved-replies/{old['id']}/archive")
    chat = await _handed_over_chat(customer, db_sessionmaker, "100003")  # being prepared: no tracking yet

    listed = (await ada.get(f"/api/console/conversations/{chat}/saved-replies")).json()
    shortcuts = [r["shortcut"] for r in listed["replies"]]
    assert "order-update" in shortcuts and "old-one" not in shortcuts and listed["language"] == "en"

    rendered = await ada.post(f"/api/console/conversations/{chat}/saved-replies/{reply['id']}/render")
    assert rendered.status_code == 200, rendered.text
    with db_sessionmaker() as session:
        reference = session.scalars(select(Ticket.reference).where(Ticket.conversation_id == chat)).one()
    filled = rendered.json()
    assert filled["text"] == (
        "Hi Ana, order 100003 is being prepared in our warehouse: [tracking link?]. "
        f"Your ticket is {reference}. Ada"
    )
    assert filled["missing"] == [
        {
            "placeholder": "order.tracking_url",
            "marker": "[tracking link?]",
            "meaning": "a link to the carrier's tracking page",
        }
    ]
    archived = await ada.post(f"/api/console/conversations/{chat}/saved-replies/{old['id']}/render")
    assert "archived" in await _error(archived, 404)

    assert (await ada.post(f"/api/console/conversations/{chat}/claim")).status_code == 200
    gap = await ada.post(f"/api/console/conversations/{chat}/messages", json={"text": filled["text"]})
    assert "still has gaps to fill in: [tracking link?]" in await _error(gap, 400)
    edited = filled["text"].replace("[tracking link?]", "the link follows by e-mail")
    sent = await ada.post(f"/api/console/conversations/{chat}/messages", json={"text": edited})
    assert sent.status_code == 200
    history = await customer.get("/api/web/history", params={"session": named_visitor("ana")})
    texts = [m["text"] for m in history.json()["messages"]]
    assert texts[-1] == edited and filled["text"] not in texts
