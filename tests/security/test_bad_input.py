"""Bad input gets a clean 4xx that says what was wrong, and nothing of it is stored (issue 21, item 6).

Text that is not text (a lone UTF-16 surrogate, NUL, ESC, a non-character), ids too large for any
row, binary or malformed frames on the live sockets, and bodies over the size limit: each is
refused without a traceback in the log. The SAVEPOINT test runs on SQLite and PostgreSQL: a message
whose storing fails after its conversation row was made leaves no row behind.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bot.channels import pipeline
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.migrate import upgrade_database
from bot.crm.models import Agent, AgentRole, Conversation, Message
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.visitors import named_visitor

PASSWORD = "a long enough password"
HUGE = str(2**64 + 1)


def _rows(db: sessionmaker[Session]) -> tuple[int, int]:
    with db() as session:
        return (
            session.scalar(select(func.count()).select_from(Conversation)) or 0,
            session.scalar(select(func.count()).select_from(Message)) or 0,
        )


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


# --- text that is not text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("escaped", "named"),
    [
        ("\\ud800", "lone surrogate (U+D800)"),
        ("\\udfff and more", "lone surrogate (U+DFFF)"),
        ("\\u0000", "NUL"),  # the widget route refuses it itself
        ("\\u001b[2J", "U+001B"),
        ("\\uffff", "U+FFFF"),
    ],
)
async def test_a_widget_message_that_is_not_text_is_400_and_nothing_is_stored(
    client: httpx.AsyncClient,
    db: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    escaped: str,
    named: str,
) -> None:
    # Written by hand: a JSON encoder would refuse to encode a lone surrogate.
    body = '{"session": "' + named_visitor("visitor-bad-text") + '", "text": "hello ' + escaped + '"}'
    response = await client.post(
        "/api/web/messages", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]
    assert _rows(db) == (0, 0)  # not even the conversation: it was no customer message
    assert _errors(caplog) == []


async def test_surrogate_pairs_and_ordinary_text_are_still_customer_messages(
    client: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    body = (
        '{"session": "'
        + named_visitor("visitor-emoji")
        + '", "text": "Danke \\ud83d\\ude00 \\u00e9t\\u00e9 \\u4f60\\u597d"}'
    )
    response = await client.post(
        "/api/web/messages", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    with db() as session:
        assert session.scalars(select(Message.text)).first() == "Danke \U0001f600 été 你好"


# --- console routes: ids, text, login first --------------------------------------------------------


@pytest.fixture
def agents(db: sessionmaker[Session]) -> None:
    password_hash = PasswordHasher().hash(PASSWORD)
    with db.begin() as session:
        session.add(
            Agent(name="Lead", email="lead@kefu.test", password_hash=password_hash, role=AgentRole.LEAD)
        )


@pytest.fixture
async def lead(web_app: FastAPI, agents: None) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web_app), base_url="http://testserver"
    ) as http:
        response = await http.post("/api/auth/login", json={"email": "lead@kefu.test", "password": PASSWORD})
        assert response.status_code == 200, response.text
        http.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield http


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/console/conversations/{HUGE}", None),
        ("POST", f"/api/console/conversations/{HUGE}/claim", None),
        ("POST", f"/api/console/conversations/{HUGE}/close", None),
        ("POST", f"/api/console/conversations/{HUGE}/transfer", {"agent_id": 1}),
        ("POST", "/api/console/conversations/1/transfer", {"agent_id": int(HUGE)}),
        ("GET", f"/api/console/conversations/{HUGE}/suggestions", None),
        ("GET", f"/api/kb/articles/return-policy/versions/{HUGE}", None),
        ("GET", f"/api/kb/articles/return-policy/diff?from=1&to={HUGE}", None),
        ("POST", "/api/kb/articles/return-policy/publish", {"version": int(HUGE)}),
        ("POST", f"/api/kb/gaps/{HUGE}/draft", None),
    ],
)
async def test_ids_beyond_64_bits_are_a_bad_request_not_a_server_error(
    lead: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, method: str, path: str, body: object
) -> None:
    response = await lead.request(method, path, json=body)
    assert response.status_code in (404, 422), response.text
    assert "error" in response.json()
    assert _errors(caplog) == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/console/conversations/1/messages", {"text": "hi \ud800"}, "text"),
        ("/api/console/conversations/1/messages", {"text": "hi \x1b]0;pwned\x07"}, "text"),
        ("/api/tickets/C-123456/notes", {"text": "note \x00"}, "text"),
        ("/api/auth/login", {"email": "a\ud800@x.test", "password": "x"}, "email"),
        ("/api/kb/articles", {"slug": "a", "title": "t\ufffe"}, "title"),
        ("/api/kb/articles", {"slug": "a", "title": "t", "tags": ["\udc00"]}, "tags.0"),
    ],
)
async def test_text_that_is_not_text_is_refused_on_every_form(
    lead: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, path: str, body: dict[str, str], field: str
) -> None:
    content = json.dumps(body)  # ASCII-only JSON: the surrogate travels as \ud800
    response = await lead.post(path, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith(f"{field}:"), response.text
    assert _errors(caplog) == []


@pytest.mark.parametrize(
    "body",
    [b"{not json at all", b"x" * 200_000, b"x" * 3_000_000],
    ids=["garbage", "large", "over-the-limit"],
)
async def test_console_routes_check_the_login_before_reading_the_body(
    client: httpx.AsyncClient, body: bytes
) -> None:
    for path in ("/api/console/conversations/1/messages", "/api/kb/articles", "/api/tickets/C-1/notes"):
        response = await client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 401, (path, response.status_code, response.text[:200])
        assert response.json()["error"] == "log in first"


# --- one body limit for every route ----------------------------------------------------------------


async def test_a_body_over_the_limit_is_refused_by_its_declared_length_on_any_route(
    client: httpx.AsyncClient, web_settings: Settings
) -> None:
    assert web_settings.max_request_body_bytes == 1024 * 1024
    big = b'{"email": "' + b"a" * 8_000_000 + b'", "password": "x"}'
    response = await client.post("/api/auth/login", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "too large" in response.json()["error"] or "limit" in response.json()["error"]


async def test_a_body_without_a_length_is_counted_as_it_streams(client: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"email": "'
        for _ in range(64):  # 64 x 64 KiB = 4 MiB, more than the limit
            sent += 65536
            yield b"a" * 65536
        yield b'", "password": "x"}'

    response = await client.post(
        "/api/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]


async def test_a_body_under_the_limit_is_read_as_before(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/login", json={"email": "nobody@kefu.test", "password": "x" * 1000}
    )
    assert response.status_code == 401


# --- live sockets ----------------------------------------------------------------------------------


@pytest.fixture
def sockets(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as test_client:
        yield test_client


def test_a_binary_frame_on_the_widget_socket_closes_it_with_1003(
    sockets: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with sockets.websocket_connect(
        "/api/web/live", subprotocols=["kefu.live", "kefu.visitor." + named_visitor("visitor-binary")]
    ) as socket:
        socket.send_bytes(b"\x00\x01binary")
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                socket.receive_json()
    assert closed.value.code == 1003
    assert _errors(caplog) == []


@pytest.mark.parametrize("frame", ["{not json", "[1, 2]", '"ping"'])
def test_a_frame_that_is_not_a_json_object_closes_the_widget_socket_with_1007(
    sockets: TestClient, caplog: pytest.LogCaptureFixture, frame: str
) -> None:
    with sockets.websocket_connect(
        "/api/web/live", subprotocols=["kefu.live", "kefu.visitor." + named_visitor("visitor-garbage")]
    ) as socket:
        socket.send_text(frame)
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                socket.receive_json()
    assert closed.value.code == 1007
    assert _errors(caplog) == []


def test_the_widget_socket_still_answers_pings(sockets: TestClient) -> None:
    with sockets.websocket_connect(
        "/api/web/live", subprotocols=["kefu.live", "kefu.visitor." + named_visitor("visitor-ping")]
    ) as socket:
        socket.send_text(json.dumps({"type": "ping"}))
        assert socket.receive_json() == {"type": "pong"}


def test_a_binary_frame_on_the_console_socket_closes_it_with_1003(
    sockets: TestClient, agents: None, caplog: pytest.LogCaptureFixture
) -> None:
    login = sockets.post("/api/auth/login", json={"email": "lead@kefu.test", "password": PASSWORD})
    assert login.status_code == 200
    with sockets.websocket_connect("/api/console/live") as socket:
        assert socket.receive_json()["type"] == "hello"
        socket.send_bytes(b"\xff\xfe")
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                socket.receive_json()
    assert closed.value.code == 1003
    assert _errors(caplog) == []


# --- all or nothing, on SQLite and PostgreSQL ------------------------------------------------------


def _fail_after_the_conversation_is_made(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, int]:
    """Accept a message whose storing fails right after its (new) conversation row was added."""

    def broken_store(*_args: object, **_kwargs: object) -> Message:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(pipeline, "store_inbound", broken_store)
    engine = make_engine(settings)
    try:
        sessions = make_sessionmaker(engine)
        with sessions() as session, pytest.raises(RuntimeError):
            pipeline.accept(session, settings, "web", "visitor-half", "hello", None)
        return _rows(sessions)
    finally:
        engine.dispose()


def test_a_failed_message_leaves_no_half_stored_rows_on_sqlite(
    settings: Settings, db_sessionmaker: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The conversation is made inside a SAVEPOINT (begin_nested); its RELEASE must not commit it.
    assert _fail_after_the_conversation_is_made(settings, monkeypatch) == (0, 0)


@pytest.mark.postgres
def test_a_failed_message_leaves_no_half_stored_rows_on_postgresql(
    postgres_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade_database(postgres_settings)
    assert _fail_after_the_conversation_is_made(postgres_settings, monkeypatch) == (0, 0)


def test_a_savepoint_rolled_back_on_sqlite_keeps_the_rest_of_the_transaction(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            session.add(Conversation(channel="web", external_id="kept", sender_id="s-kept"))
            session.flush()
            try:
                with session.begin_nested():
                    session.add(Conversation(channel="web", external_id="undone", sender_id="s-undone"))
                    session.flush()
                    raise ValueError("undo this part only")
            except ValueError:
                pass
    finally:
        engine.dispose()
    with db_sessionmaker() as session:
        assert session.scalars(select(Conversation.external_id)).all() == ["kept"]
