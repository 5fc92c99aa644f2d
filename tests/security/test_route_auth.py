"""Who may reach which route: every route of the gateway, found by walking the app, is tried.

Only the routes in PUBLIC may answer without a console login: the web widget's API (its visitor id
is the key to a chat), the Telegram webhook (its own secret header, tests/e2e/test_telegram.py),
health, the demo page, static files, logging in, and the API docs in development. Every other
route must refuse a visitor without a login (401 from the API, a redirect to the login page from a
page, close code 4401 from a socket), and the routes in LEAD_ONLY must refuse an agent (403). A
route that is neither public nor lead-only must let an agent in. So a new route has to be put in
one of these groups here, and one that forgets its login check fails this test.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bot.crm.models import Agent, AgentRole
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.visitors import visitor_id

PASSWORD = "a long enough password"
AGENT_EMAIL, LEAD_EMAIL = "agent@kefu.test", "lead@kefu.test"

# (method, path) exactly as the app declares them; "WS" for WebSockets, "MOUNT" for static files.
PUBLIC = {
    ("GET", "/"): "the demo chat page",
    ("GET", "/healthz"): "health, for load balancers and monitoring",
    ("POST", "/api/web/messages"): "the widget: the visitor id is the key to the chat",
    ("GET", "/api/web/history"): "the widget: the visitor id is the key to the chat",
    ("POST", "/api/web/history"): "the widget: the visitor id is the key to the chat",
    ("POST", "/api/web/visitors"): "the widget: issues a new visitor id, storing nothing",
    ("WS", "/api/web/live"): "the widget: the visitor id is the key to the chat",
    ("POST", "/telegram/webhook"): "Telegram: X-Telegram-Bot-Api-Secret-Token, else 401",
    ("POST", "/api/auth/login"): "logging in (throttled, tests/web/routes/test_auth.py)",
    ("GET", "/console/login"): "the login page",
    ("MOUNT", "/static"): "the consoles' scripts and styles",
    ("MOUNT", "/widget"): "the widget's script and the demo shop page",
    # Development only: production builds the app without them (test below).
    ("GET", "/docs"): "API docs (development)",
    ("GET", "/docs/oauth2-redirect"): "API docs (development)",
    ("GET", "/openapi.json"): "API docs (development)",
}
LEAD_ONLY = {
    ("GET", "/api/dashboard"),
    ("GET", "/api/dashboard/{chart_id}.csv"),
    ("GET", "/api/kb/gaps"),
    ("POST", "/api/kb/gaps/{cluster_id}/draft"),
    ("POST", "/api/kb/articles"),
    ("PATCH", "/api/kb/articles/{slug}"),
    ("POST", "/api/kb/articles/{slug}/submit"),
    ("POST", "/api/kb/articles/{slug}/publish"),
    ("POST", "/api/kb/articles/{slug}/archive"),
    ("POST", "/api/kb/articles/{slug}/revert"),
    ("GET", "/api/saved-replies"),
    ("POST", "/api/saved-replies"),
    ("GET", "/api/saved-replies/{reply_id}"),
    ("PATCH", "/api/saved-replies/{reply_id}"),
    ("POST", "/api/saved-replies/{reply_id}/archive"),
    ("POST", "/api/saved-replies/{reply_id}/unarchive"),
    ("GET", "/api/value/charts"),
    ("GET", "/api/value/winback"),
    ("GET", "/api/value/winback.csv"),
    ("GET", "/api/value/{chart_id}.csv"),
    ("GET", "/console/lead"),
}
LEAD_REFUSAL = "only support leads can do this"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def url(self) -> str:
        """The path with every parameter filled in (ids that do not exist: nothing is changed)."""
        return re.sub(r"\{[^}]+\}", "1", self.path)

    @property
    def is_page(self) -> bool:
        return not self.path.startswith("/api/")


def _walk(routes: list[Any], prefix: str = "") -> Iterator[Endpoint]:
    """Every endpoint of the app, also inside included routers (FastAPI wraps those)."""
    for route in routes:
        if hasattr(route, "original_router"):
            inner = prefix + getattr(getattr(route, "include_context", None), "prefix", "")
            yield from _walk(route.original_router.routes, inner)
        elif isinstance(route, APIWebSocketRoute):
            yield Endpoint("WS", prefix + route.path)
        elif isinstance(route, Mount):
            yield Endpoint("MOUNT", prefix + route.path)
        elif isinstance(route, (APIRoute, Route)):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield Endpoint(method, prefix + route.path)
        else:
            raise AssertionError(f"a route of a kind this test does not know: {route!r}; teach it")


def endpoints(app: FastAPI) -> list[Endpoint]:
    return sorted(set(_walk(app.routes)), key=lambda e: (e.path, e.method))


@pytest.fixture
def app(web_settings: Settings, db_sessionmaker: sessionmaker[Session]) -> FastAPI:
    password_hash = PasswordHasher().hash(PASSWORD)
    with db_sessionmaker.begin() as session:
        session.add(Agent(name="Agent", email=AGENT_EMAIL, password_hash=password_hash, role=AgentRole.AGENT))
        session.add(Agent(name="Lead", email=LEAD_EMAIL, password_hash=password_hash, role=AgentRole.LEAD))
    return create_app(web_settings)


@pytest.fixture
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        yield app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def _logged_in(app: FastAPI, email: str) -> httpx.AsyncClient:
    client = _client(app)
    response = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


async def unprotected(app: FastAPI) -> list[str]:
    """Every non-public route that a visitor without a login is not refused by, and how it answered."""
    found = []
    async with _client(app) as nobody:
        for endpoint in endpoints(app):
            if endpoint.key in PUBLIC or endpoint.method in ("WS", "MOUNT"):
                continue
            response = await nobody.request(endpoint.method, endpoint.url, json={})
            if endpoint.is_page:
                refused = response.status_code == 401 or (
                    response.status_code in (302, 303, 307)
                    and response.headers["location"].startswith("/console/login")
                )
            else:
                refused = response.status_code == 401
            if not refused:
                found.append(f"{endpoint.method} {endpoint.path} -> {response.status_code}")
    return found


async def test_every_route_is_public_on_purpose_or_needs_a_login(running: FastAPI) -> None:
    found = endpoints(running)
    keys = {e.key for e in found}
    assert len(found) >= 45, [e.key for e in found]  # the walk really found the routers' routes
    assert not set(PUBLIC) - keys, f"PUBLIC lists routes that no longer exist: {set(PUBLIC) - keys}"
    assert not LEAD_ONLY - keys, f"LEAD_ONLY lists routes that no longer exist: {LEAD_ONLY - keys}"
    assert await unprotected(running) == []


async def test_pages_send_a_visitor_without_a_login_to_the_login_page(running: FastAPI) -> None:
    async with _client(running) as nobody:
        for page in ("/console", "/console/lead"):
            response = await nobody.get(page)
            assert response.status_code == 303
            assert response.headers["location"] == f"/console/login?next={page}"


async def test_agents_are_refused_every_lead_route_and_let_into_the_others(running: FastAPI) -> None:
    agent = await _logged_in(running, AGENT_EMAIL)
    lead = await _logged_in(running, LEAD_EMAIL)
    try:
        wrongly_open, wrongly_closed = [], []
        # Logging out last: it ends the session the other requests use.
        order = sorted(endpoints(running), key=lambda e: e.path == "/api/auth/logout")
        for endpoint in order:
            if endpoint.key in PUBLIC or endpoint.method in ("WS", "MOUNT"):
                continue
            response = await agent.request(endpoint.method, endpoint.url, json={})
            refused_as_agent = response.status_code == 403 and (
                endpoint.is_page or response.json().get("error") == LEAD_REFUSAL
            )
            if endpoint.key in LEAD_ONLY and not refused_as_agent:
                wrongly_open.append(f"{endpoint.method} {endpoint.path} -> {response.status_code}")
            if endpoint.key not in LEAD_ONLY and (response.status_code == 401 or refused_as_agent):
                wrongly_closed.append(f"{endpoint.method} {endpoint.path} -> {response.status_code}")
            if endpoint.key in LEAD_ONLY:
                # A lead gets past the role check (then 404/409/422 for the made-up ids, or 200).
                as_lead = await lead.request(endpoint.method, endpoint.url, json={})
                assert as_lead.status_code not in (401, 403), (
                    endpoint.key,
                    as_lead.status_code,
                    as_lead.text,
                )
        assert wrongly_open == [], "lead-only routes an agent got into"
        assert wrongly_closed == [], "routes an agent was refused: put them in LEAD_ONLY if that is meant"
    finally:
        await agent.aclose()
        await lead.aclose()


def test_the_console_socket_refuses_a_visitor_without_a_login_and_the_widget_socket_does_not(
    app: FastAPI,
) -> None:
    sockets = {e.path for e in endpoints(app) if e.method == "WS"}
    assert sockets == {"/api/console/live", "/api/web/live"}, "a new WebSocket: add it to this test"
    with TestClient(app) as client:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/api/console/live"):
            pass
        assert refused.value.code == 4401
        offer = ["kefu.live", f"kefu.visitor.{visitor_id()}"]
        with client.websocket_connect("/api/web/live", subprotocols=offer) as widget:
            widget.send_json({"type": "ping"})
            assert widget.receive_json() == {"type": "pong"}


async def test_a_route_that_forgets_its_login_check_is_caught(running: FastAPI) -> None:
    @running.get("/api/console/forgotten")
    def forgotten() -> dict[str, str]:
        return {"customers": "all of them"}

    @running.get("/console/forgotten-page")
    def forgotten_page() -> dict[str, str]:
        return {"page": "open"}

    assert await unprotected(running) == [
        "GET /api/console/forgotten -> 200",
        "GET /console/forgotten-page -> 200",
    ]


async def test_production_serves_no_api_docs(
    web_settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    production = web_settings.model_copy(
        update={"kefu_env": "production", "secret_key": "s" * 40, "rasa_token": "t" * 40}
    )
    app = create_app(production)
    keys = {e.key for e in endpoints(app)}
    assert not keys & {("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/docs/oauth2-redirect")}
    async with app.router.lifespan_context(app), _client(app) as nobody:
        assert (await nobody.get("/docs")).status_code == 404
        assert (await nobody.get("/openapi.json")).status_code == 404
