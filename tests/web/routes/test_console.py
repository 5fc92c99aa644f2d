"""The agent console API and pages through the real gateway app: roles on every route, the queue,
claims, replies reaching the customer's history, transfer, hand-back, close, strong language,
waiting customers, live events over the WebSocket, and expired logins.

Rasa is on a dead port here: these tests are about what the gateway does without the bot. The
end-to-end tests (tests/e2e) run the same hand-over with the real Rasa and action server.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bot.crm.models import (
    AgentSession,
    AuditLog,
    Conversation,
    ConversationMode,
    CsatSurvey,
    Handoff,
    Message,
    MessageStatus,
    Ticket,
    utcnow,
)
from bot.demo.seed import DEMO_PASSWORD_AGENT, DEMO_PASSWORD_LEAD, seed_demo_data
from bot.rasa_client import RasaClient
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.visitors import named_visitor

FURIOUS = "This is absolutely ridiculous, you useless thieves, I am furious!!"


@pytest.fixture
def quiet_settings(web_settings: Settings, db_sessionmaker: sessionmaker[Session]) -> Settings:
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, date(2026, 11, 20))
    return web_settings.model_copy(update={"scheduler_enabled": False, "kb_warm_up": False})


@pytest.fixture
async def app(quiet_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(quiet_settings)
    async with application.router.lifespan_context(application):
        yield application


async def _login(app: FastAPI, email: str, password: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


@pytest.fixture
async def ada(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    client = await _login(app, "ada@kefu.example", DEMO_PASSWORD_AGENT)
    yield client
    await client.aclose()


@pytest.fixture
async def sam(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    client = await _login(app, "sam@kefu.example", DEMO_PASSWORD_AGENT)
    yield client
    await client.aclose()


@pytest.fixture
async def lead(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    client = await _login(app, "lead@kefu.example", DEMO_PASSWORD_LEAD)
    yield client
    await client.aclose()


@pytest.fixture
async def customer(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


async def _say(customer: httpx.AsyncClient, visitor: str, text: str) -> dict[str, Any]:
    response = await customer.post(
        "/api/web/messages", json={"session": named_visitor(visitor), "text": text}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _waiting_chat(customer: httpx.AsyncClient, visitor: str) -> int:
    """A chat in the queue: strong language sends it to a person without needing Rasa."""
    body = await _say(customer, visitor, FURIOUS)
    assert body["mode"] == "pending_agent"
    return int(body["conversation_id"])


async def _history(customer: httpx.AsyncClient, visitor: str) -> list[dict[str, Any]]:
    response = await customer.get("/api/web/history", params={"session": named_visitor(visitor)})
    return list(response.json()["messages"])


# --- who may reach what ------------------------------------------------------------------------------


def _all_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, also inside included routers (FastAPI wraps those)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _all_routes(route.original_router.routes)
        else:
            yield route


def _console_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes = []
    for route in _all_routes(app.routes):
        if not isinstance(route, APIRoute):
            continue
        if not route.path.startswith(
            ("/api/console", "/api/tickets", "/api/kb", "/api/dashboard", "/api/saved-replies")
        ):
            continue
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        for method in route.methods or ():
            routes.append((method, path))
    return routes


LEAD_ONLY = [
    ("GET", "/api/dashboard"),
    ("GET", "/api/dashboard/csat.csv"),
    ("GET", "/api/kb/gaps"),
    ("POST", "/api/kb/articles"),
    ("PATCH", "/api/kb/articles/returns"),
    ("POST", "/api/kb/articles/returns/publish"),
    ("POST", "/api/kb/articles/returns/archive"),
    ("POST", "/api/kb/gaps/1/draft"),
    ("GET", "/api/saved-replies"),
    ("POST", "/api/saved-replies"),
    ("PATCH", "/api/saved-replies/1"),
    ("POST", "/api/saved-replies/1/archive"),
]


async def test_nobody_logged_out_reaches_any_console_route(app: FastAPI, customer: httpx.AsyncClient) -> None:
    routes = _console_routes(app)
    assert len(routes) >= 25  # the console, tickets, knowledge base and dashboard APIs
    for method, path in routes:
        response = await customer.request(method, path, json={})
        assert response.status_code == 401, (method, path, response.status_code)
    for page in ("/console", "/console/lead"):
        response = await customer.get(page)
        assert response.status_code == 303 and response.headers["location"] == f"/console/login?next={page}"
    assert (await customer.get("/console/login")).status_code == 200


async def test_agents_cannot_reach_lead_pages_or_routes(
    ada: httpx.AsyncClient, lead: httpx.AsyncClient
) -> None:
    for method, path in LEAD_ONLY:
        response = await ada.request(method, path, json={})
        assert response.status_code == 403, (method, path, response.status_code)
    page = await ada.get("/console/lead")
    assert page.status_code == 403 and "for support leads" in page.text
    assert (await ada.get("/console")).status_code == 200
    assert (await lead.get("/console/lead")).status_code == 200
    assert (await lead.get("/api/dashboard")).status_code == 200
    # Leads work chats too.
    assert (await lead.get("/api/console/queue")).status_code == 200


async def test_state_changes_without_the_csrf_header_are_refused(
    ada: httpx.AsyncClient, customer: httpx.AsyncClient
) -> None:
    chat = await _waiting_chat(customer, "csrf-visitor")
    token = ada.headers.pop("X-CSRF-Token")
    refused = await ada.post(f"/api/console/conversations/{chat}/claim")
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["error"]
    ada.headers["X-CSRF-Token"] = token
    assert (await ada.post(f"/api/console/conversations/{chat}/claim")).status_code == 200


async def test_an_expired_login_is_sent_back_to_the_login_page(
    ada: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    with db_sessionmaker.begin() as session:
        session.execute(update(AgentSession).values(expires_at=utcnow() - timedelta(minutes=1)))
    response = await ada.get("/api/console/queue")
    assert response.status_code == 401 and "expired" in response.json()["error"]
    page = await ada.get("/console")
    assert page.status_code == 303 and page.headers["location"].startswith("/console/login")


# --- the hand-over from the agent's side ---------------------------------------------------------


async def test_strong_language_puts_the_chat_in_the_queue_with_a_ticket(
    customer: httpx.AsyncClient, ada: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    body = await _say(customer, "angry", FURIOUS)
    assert body["mode"] == "pending_agent"
    told = body["messages"][0]["text"]
    assert "bringing in a person" in told and "Nobody from our team is online" not in told or "e-mail" in told
    queue = (await ada.get("/api/console/queue")).json()["queue"]
    row = next(r for r in queue if r["conversation_id"] == body["conversation_id"])
    assert row["reason"] == "negative_sentiment" and row["last_message"] == FURIOUS
    assert row["ticket"] and row["mode"] == "pending_agent"
    with db_sessionmaker() as session:
        stored = session.scalars(
            select(Message).where(Message.conversation_id == body["conversation_id"])
        ).first()
        assert stored is not None and stored.text == FURIOUS and stored.status is MessageStatus.PROCESSED


async def test_the_strong_language_trigger_can_be_switched_off(
    quiet_settings: Settings, customer: httpx.AsyncClient
) -> None:
    off = create_app(quiet_settings.model_copy(update={"handoff_triggers": "repeated_fallback"}))
    async with off.router.lifespan_context(off):
        transport = httpx.ASGITransport(app=off)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            body = (
                await client.post(
                    "/api/web/messages", json={"session": named_visitor("calm"), "text": FURIOUS}
                )
            ).json()
    # It went to the bot (which is down here: the polite fallback), not to the queue.
    assert body["mode"] == "bot" and body["messages"][0]["metadata"]["notice"] == "bot_unavailable"


async def test_claim_reply_and_the_customer_sees_it(
    customer: httpx.AsyncClient,
    ada: httpx.AsyncClient,
    sam: httpx.AsyncClient,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    chat = await _waiting_chat(customer, "visitor-1")
    # Sam may not write in a chat nobody claimed, nor in Ada's.
    assert (
        await sam.post(f"/api/console/conversations/{chat}/messages", json={"text": "hi"})
    ).status_code == 403
    claimed = await ada.post(f"/api/console/conversations/{chat}/claim")
    assert claimed.status_code == 200
    second = await sam.post(f"/api/console/conversations/{chat}/claim")
    assert second.status_code == 409 and "Ada Agent has already taken" in second.json()["error"]
    refused = await sam.post(f"/api/console/conversations/{chat}/messages", json={"text": "me too"})
    assert refused.status_code == 403 and "not yours" in refused.json()["error"]

    sent = await ada.post(
        f"/api/console/conversations/{chat}/messages", json={"text": "Hello, I'm Ada. Let's sort this."}
    )
    assert sent.status_code == 200
    texts = [m["text"] for m in await _history(customer, "visitor-1")]
    assert texts[-2:] == [
        "Ada from our support team has joined the chat.",
        "Hello, I'm Ada. Let's sort this.",
    ]
    authors = [m["author"] for m in await _history(customer, "visitor-1")]
    assert authors[-1] == "agent"
    with db_sessionmaker() as session:
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == chat)).one()
        assert handoff.first_agent_reply_at is not None
        ticket = session.get_one(Ticket, handoff.ticket_id)
        assert ticket.first_responded_at is not None and ticket.status.value == "open"
        actions = set(session.scalars(select(AuditLog.action)))
        assert {"chat_claimed", "handoff_requested"} <= actions


async def test_a_customer_who_keeps_writing_is_shown_to_the_agent_in_order(
    customer: httpx.AsyncClient, ada: httpx.AsyncClient
) -> None:
    chat = await _waiting_chat(customer, "chatty")
    said = ["hello?", "is anyone there", "my order is 100004", "pat@example.com"]
    replies = [await _say(customer, "chatty", text) for text in said]
    # One "a person will reply" notice per wait, and a thank-you for the e-mail.
    assert replies[-1]["messages"][0]["text"].startswith(
        "Thank you. If nobody can answer here soon, we'll write to pat@example.com"
    )
    detail = (await ada.get(f"/api/console/conversations/{chat}")).json()
    customer_lines = [m["text"] for m in detail["messages"] if m["author"] == "customer"]
    assert customer_lines == [FURIOUS, *said]
    assert detail["handoff"]["contact"] == "pat@example.com"
    queue_row = next(
        r for r in (await ada.get("/api/console/queue")).json()["queue"] if r["conversation_id"] == chat
    )
    assert queue_row["last_message"] == "pat@example.com"


async def test_transfer_then_hand_back_then_the_bot_answers_again(
    customer: httpx.AsyncClient,
    ada: httpx.AsyncClient,
    sam: httpx.AsyncClient,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    chat = await _waiting_chat(customer, "visitor-2")
    await ada.post(f"/api/console/conversations/{chat}/claim")
    agents = (await ada.get("/api/console/agents")).json()["agents"]
    sam_id = next(a["id"] for a in agents if a["name"] == "Sam Agent")
    moved = await ada.post(f"/api/console/conversations/{chat}/transfer", json={"agent_id": sam_id})
    assert moved.status_code == 200
    assert (
        await ada.post(f"/api/console/conversations/{chat}/messages", json={"text": "x"})
    ).status_code == 403
    assert (
        await sam.post(f"/api/console/conversations/{chat}/messages", json={"text": "Sam here."})
    ).status_code == 200

    back = await sam.post(f"/api/console/conversations/{chat}/handback")
    assert back.status_code == 200 and back.json()["mode"] == "bot"
    history = await _history(customer, "visitor-2")
    assert history[-1]["text"].startswith("You're back with the Kefu assistant")
    with db_sessionmaker() as session:
        survey = session.scalars(select(CsatSurvey).where(CsatSurvey.conversation_id == chat)).one()
        # Rasa is down here, so the survey waits for the scheduler rather than being lost.
        assert survey.trigger == "agent_handback" and survey.status.value == "pending"
    # The next message goes to the bot again (down here, so the polite fallback).
    after = await _say(customer, "visitor-2", "thanks, one more question")
    assert after["mode"] == "bot" and after["messages"][0]["metadata"]["notice"] == "bot_unavailable"


async def test_close_ends_the_chat_and_a_late_claim_gets_409(
    customer: httpx.AsyncClient,
    ada: httpx.AsyncClient,
    sam: httpx.AsyncClient,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    chat = await _waiting_chat(customer, "visitor-3")
    await ada.post(f"/api/console/conversations/{chat}/claim")
    closed = await ada.post(f"/api/console/conversations/{chat}/close")
    assert closed.status_code == 200
    late = await sam.post(f"/api/console/conversations/{chat}/claim")
    assert late.status_code == 409 and "closed" in late.json()["error"]
    assert (
        await ada.post(f"/api/console/conversations/{chat}/messages", json={"text": "x"})
    ).status_code == 409
    with db_sessionmaker() as session:
        assert session.get_one(Conversation, chat).mode is ConversationMode.CLOSED
    missing = await ada.post("/api/console/conversations/999999/claim")
    assert missing.status_code == 404


async def test_two_agents_claiming_through_the_api_at_once(
    customer: httpx.AsyncClient, ada: httpx.AsyncClient, sam: httpx.AsyncClient
) -> None:
    for n in range(5):
        chat = await _waiting_chat(customer, f"race-{n}")
        results = await asyncio.gather(
            ada.post(f"/api/console/conversations/{chat}/claim"),
            sam.post(f"/api/console/conversations/{chat}/claim"),
        )
        assert sorted(r.status_code for r in results) == [200, 409]


async def test_the_customer_panel_and_the_view_is_audited(
    customer: httpx.AsyncClient, ada: httpx.AsyncClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    chat = await _waiting_chat(customer, "known")
    with db_sessionmaker.begin() as session:
        conversation = session.get_one(Conversation, chat)
        conversation.customer_id = session.scalar(
            select(Ticket.customer_id).where(Ticket.reference == "KF-000001")
        )
    detail = (await ada.get(f"/api/console/conversations/{chat}")).json()
    panel = detail["customer"]
    assert panel["name"] == "Ana Souza" and panel["tier"] in {"vip", "key", "regular"}
    assert panel["orders"] and panel["orders"][0]["shipments"] is not None
    assert "KF-000001" in [t["reference"] for t in panel["tickets"]]
    assert set(panel["rfm"]) == {"recency", "frequency", "monetary"}
    # What the relationship is worth (seeding rescored the base) and what could drive her away.
    assert panel["lifetime_value"]["to_date"] > 0 and panel["lifetime_value"]["future"] is not None
    assert "complaints" in panel["defection"]["reasons"]
    assert "complaint" in panel["defection"]["details"]
    with db_sessionmaker() as session:
        viewed = session.scalars(select(AuditLog).where(AuditLog.action == "customer_viewed")).all()
        assert viewed and viewed[-1].actor.startswith("agent:")


# --- live events -------------------------------------------------------------------------------------


@pytest.fixture
def live_client(quiet_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(quiet_settings)) as client:
        yield client


def test_the_console_gets_new_customer_messages_live(live_client: TestClient) -> None:
    login = live_client.post(
        "/api/auth/login", json={"email": "ada@kefu.example", "password": DEMO_PASSWORD_AGENT}
    )
    assert login.status_code == 200
    with live_client.websocket_connect("/api/console/live") as socket:
        assert socket.receive_json()["type"] == "hello"
        live_client.post("/api/web/messages", json={"session": named_visitor("live-1"), "text": FURIOUS})
        events = [socket.receive_json() for _ in range(3)]
        messages = [e["message"]["text"] for e in events if e["type"] == "message"]
        assert messages[0] == FURIOUS and "bringing in a person" in messages[1]
        assert any(e["type"] == "queue" for e in events)
        live_client.post(
            "/api/web/messages",
            json={"session": named_visitor("live-1"), "text": "<img src=x onerror=alert(1)>"},
        )
        event = socket.receive_json()
        assert event["type"] == "message" and event["message"]["text"] == "<img src=x onerror=alert(1)>"


def test_the_live_socket_refuses_anyone_not_logged_in(live_client: TestClient) -> None:
    url = "/api/console/live"
    with pytest.raises(WebSocketDisconnect) as refused, live_client.websocket_connect(url) as socket:
        socket.receive_json()
    assert refused.value.code == 4401
    live_client.post("/api/auth/login", json={"email": "ada@kefu.example", "password": DEMO_PASSWORD_AGENT})
    with (
        pytest.raises(WebSocketDisconnect) as foreign,
        live_client.websocket_connect(
            "/api/console/live", headers={"origin": "https://evil.example"}
        ) as socket,
    ):
        socket.receive_json()
    assert foreign.value.code == 4401


class RecordingRasa:
    """Rasa's HTTP API as the gateway uses it: records every call, answers every message."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.url.path, body))
        if request.url.path.endswith("/trigger_intent"):
            return httpx.Response(200, json={"messages": [{"text": "How would you rate the help you got?"}]})
        if request.url.path == "/webhooks/rest/webhook":
            return httpx.Response(200, json=[{"text": f"answer to: {body['message']}"}])
        return httpx.Response(200, json={})

    def resets(self, sender_id: str) -> list[list[dict[str, Any]]]:
        """The event lists appended to this conversation's tracker that resume it."""
        path = f"/conversations/{sender_id}/tracker/events"
        return [body for p, body in self.calls if p == path and body[0]["event"] == "resume"]


@pytest.fixture
async def rasa(app: FastAPI, quiet_settings: Settings) -> AsyncIterator[RecordingRasa]:
    fake = RecordingRasa()
    app.state.rasa = RasaClient(quiet_settings, transport=httpx.MockTransport(fake))
    yield fake
    await app.state.rasa.aclose()


def _sender(db_sessionmaker: sessionmaker[Session], chat: int) -> str:
    with db_sessionmaker() as session:
        return session.get_one(Conversation, chat).sender_id


def _stops_the_form(events: list[dict[str, Any]]) -> bool:
    return (
        {"event": "active_loop", "name": None} in events
        and {"event": "slot", "name": "requested_slot", "value": None} in events
        and {"event": "slot", "name": "order_number", "value": None} in events
        and events[-1] == {"event": "action", "name": "action_listen"}
    )


async def test_hand_back_stops_the_form_the_bot_was_asking_before_the_survey(
    customer: httpx.AsyncClient,
    ada: httpx.AsyncClient,
    rasa: RecordingRasa,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    chat = await _waiting_chat(customer, "form-then-agent")
    await ada.post(f"/api/console/conversations/{chat}/claim")
    back = await ada.post(f"/api/console/conversations/{chat}/handback")
    assert back.status_code == 200
    sender = _sender(db_sessionmaker, chat)
    [reset] = rasa.resets(sender)
    assert _stops_the_form(reset)
    paths = [path for path, _ in rasa.calls]
    assert paths.index(f"/conversations/{sender}/tracker/events") < paths.index(
        f"/conversations/{sender}/trigger_intent"
    )


async def test_after_close_the_next_message_reaches_a_bot_with_no_form_in_progress(
    customer: httpx.AsyncClient,
    ada: httpx.AsyncClient,
    rasa: RecordingRasa,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    chat = await _waiting_chat(customer, "closed-mid-form")
    await ada.post(f"/api/console/conversations/{chat}/claim")
    assert (await ada.post(f"/api/console/conversations/{chat}/close")).status_code == 200
    sender = _sender(db_sessionmaker, chat)
    assert rasa.resets(sender) == []
    said = await _say(customer, "closed-mid-form", "when exactly will they call?")
    assert said["mode"] == "bot"
    [reset] = rasa.resets(sender)
    assert _stops_the_form(reset)
    paths = [path for path, _ in rasa.calls]
    assert paths.index(f"/conversations/{sender}/tracker/events") < paths.index("/webhooks/rest/webhook")


async def test_a_waiting_customer_is_told_the_wait_once_and_nothing_after_an_agent_joins(
    customer: httpx.AsyncClient, ada: httpx.AsyncClient
) -> None:
    chat = await _waiting_chat(customer, "still-waiting")
    told = (await _history(customer, "still-waiting"))[-1]
    assert "waiting ahead of you" in told["text"] or "Nobody from our team is online" in told["text"]
    # Told once per wait: the estimate they just got still stands.
    assert (await _say(customer, "still-waiting", "hello? is anyone there"))["messages"] == []
    await ada.post(f"/api/console/conversations/{chat}/claim")
    with_agent = await _say(customer, "still-waiting", "my order never came")
    assert with_agent["mode"] == "agent" and with_agent["messages"] == []
