"""Hardening (issue 21, item 7): forwarded addresses only from trusted proxies, open live sockets
and history reads limited, a CSP on every page, a private database file, and customers' control
characters shown as escapes by the CLI."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bot.cli.common import shown
from bot.crm.db import make_engine
from bot.crm.models import Agent, AgentRole, AuditLog
from bot.settings import PROJECT_ROOT, Settings
from bot.web.app import STATIC_DIR, create_app
from tests.security.test_route_auth import endpoints
from tests.support.visitors import named_visitor

PASSWORD = "a long enough password"


def _client(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _login_source(settings: Settings, db: sessionmaker[Session], proxy: str) -> str | None:
    app = create_app(settings)
    async with app.router.lifespan_context(app), _client(app, proxy) as http:
        response = await http.post(
            "/api/auth/login",
            json={"email": "nobody@kefu.test", "password": "wrong"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert response.status_code == 401
    with db() as session:
        return session.scalars(select(AuditLog.source).where(AuditLog.action == "login_failed")).one()


async def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    web_settings: Settings, db: sessionmaker[Session]
) -> None:
    assert await _login_source(web_settings, db, "127.0.0.1") == "127.0.0.1"


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    web_settings: Settings, db: sessionmaker[Session]
) -> None:
    trusting = web_settings.model_copy(update={"trusted_proxies": "10.0.0.0/8"})
    assert await _login_source(trusting, db, "10.1.2.3") == "203.0.113.9"


def test_the_gateway_runs_without_uvicorns_own_proxy_handling() -> None:
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: any local process could forge addresses.
    gateway = next(
        line for line in (PROJECT_ROOT / "Procfile").read_text().splitlines() if line.startswith("gateway:")
    )
    assert "--no-proxy-headers" in gateway


def test_open_live_sockets_are_limited_per_address(web_settings: Settings) -> None:
    app = create_app(web_settings.model_copy(update={"web_live_sockets_per_address": 2}))
    with TestClient(app) as client:
        with (
            client.websocket_connect(
                "/api/web/live", subprotocols=["kefu.live", "kefu.visitor." + named_visitor("a")]
            ),
            client.websocket_connect(
                "/api/web/live", subprotocols=["kefu.live", "kefu.visitor." + named_visitor("b")]
            ),
        ):
            with (
                client.websocket_connect(
                    "/api/web/live", subprotocols=["kefu.live", "kefu.visitor." + named_visitor("c")]
                ) as third,
                pytest.raises(WebSocketDisconnect) as closed,
            ):
                third.receive_json()
            assert closed.value.code == 4429
        # Both closed: a new one is let in again.
        with client.websocket_connect(
            "/api/web/live", subprotocols=["kefu.live", "kefu.visitor." + named_visitor("d")]
        ) as fourth:
            fourth.send_json({"type": "ping"})
            assert fourth.receive_json() == {"type": "pong"}


async def test_history_reads_are_rate_limited(web_settings: Settings) -> None:
    app = create_app(web_settings.model_copy(update={"web_history_per_minute": 3}))
    async with app.router.lifespan_context(app), _client(app) as http:
        answers = [
            (await http.get("/api/web/history", params={"session": named_visitor("v1")})).status_code
            for _ in range(4)
        ]
        assert answers == [200, 200, 200, 429]
        refused = await http.get("/api/web/history", params={"session": named_visitor("v1")})
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["retry_after"] >= 1
        assert (
            await http.get("/api/web/history", params={"session": named_visitor("v2")})
        ).status_code == 200


async def test_every_page_has_a_content_security_policy(
    web_settings: Settings, db: sessionmaker[Session]
) -> None:
    with db.begin() as session:
        session.add(
            Agent(
                name="L",
                email="l@kefu.test",
                password_hash=PasswordHasher().hash(PASSWORD),
                role=AgentRole.LEAD,
            )
        )
    app = create_app(web_settings)
    static_pages = [f"/static/{p.relative_to(STATIC_DIR)}" for p in STATIC_DIR.rglob("*.html")]
    static_pages += [
        f"/widget/{p.relative_to(STATIC_DIR / 'widget')}" for p in (STATIC_DIR / "widget").rglob("*.html")
    ]
    assert "/widget/demo.html" in static_pages
    # Every GET route without parameters, found by the same walk as the login test's.
    route_pages = [e.path for e in endpoints(app) if e.method == "GET" and "{" not in e.path]
    async with app.router.lifespan_context(app), _client(app) as http:
        login = await http.post("/api/auth/login", json={"email": "l@kefu.test", "password": PASSWORD})
        assert login.status_code == 200
        html = []
        for path in [*route_pages, *static_pages]:
            response = await http.get(path)
            if response.headers.get("content-type", "").startswith("text/html"):
                html.append(path)
                assert "default-src" in response.headers.get("content-security-policy", ""), path
                assert response.headers.get("x-content-type-options") == "nosniff", path
    assert {"/", "/console", "/console/lead", "/console/login", "/docs", "/widget/demo.html"} <= set(html)


def test_the_database_file_and_a_new_directory_are_private(tmp_path: Path) -> None:
    database = tmp_path / "var" / "kefu.db"
    make_engine(Settings(database_url=f"sqlite:///{database}", _env_file=None)).dispose()  # type: ignore[call-arg]
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_a_world_readable_database_file_is_made_private(tmp_path: Path) -> None:
    database = tmp_path / "kefu.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    make_engine(Settings(database_url=f"sqlite:///{database}", _env_file=None)).dispose()  # type: ignore[call-arg]
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("written", "printed"),
    [
        ("refund \x1b[2J\x1b]0;owned\x07 now", "refund \\x1b[2J\\x1b]0;owned\\x07 now"),
        ("two\nlines", "two\\x0alines"),
        ("csi \x9b31m", "csi \\x9b31m"),
        ("rtl \u202eevil", "rtl \\u202eevil"),
        ("plain été 你好", "plain été 你好"),
    ],
)
def test_the_cli_shows_control_characters_as_escapes(written: str, printed: str) -> None:
    assert shown(written) == printed


def test_multi_line_fields_keep_their_lines_but_not_escapes() -> None:
    assert shown("a\nb\x1b[1m", one_line=False) == "a\nb\\x1b[1m"
