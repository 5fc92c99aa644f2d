"""The web widget's live socket (/api/web/live) and the widget API's CORS, on the real app."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from bot.channels import widget_live
from bot.channels.widget import CHANNEL
from bot.crm.conversations import get_or_create_conversation, store_inbound, store_outbound
from bot.crm.models import AuthorKind
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.visitors import visitor_id

VISITOR = visitor_id()
OTHER_VISITOR = visitor_id()
SHOP = "https://shop.example"
RECEIVE_TIMEOUT_SECONDS = 10.0


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_settings(settings: Settings, db_sessionmaker: sessionmaker[Session]) -> Settings:
    """The test's migrated database; no Rasa, no scheduler, no encoder warm-up."""
    return settings.model_copy(
        update={
            "rasa_url": f"http://127.0.0.1:{_dead_port()}",
            "action_server_url": f"http://127.0.0.1:{_dead_port()}",
            "rasa_timeout_seconds": 2.0,
            "scheduler_enabled": False,
            "kb_warm_up": False,
        }
    )


@pytest.fixture
def client(live_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(live_settings)) as test_client:
        yield test_client


@pytest.fixture
def db(db_sessionmaker: sessionmaker[Session]) -> sessionmaker[Session]:
    """A session factory on the app's database, for arranging rows."""
    return db_sessionmaker


def say(db: sessionmaker[Session], visitor: str, author: AuthorKind, text: str) -> tuple[int, int]:
    """Store a message in the visitor's web conversation; returns (conversation id, message id)."""
    with db.begin() as session:
        conversation = get_or_create_conversation(session, CHANNEL, visitor)
        if author == AuthorKind.CUSTOMER:
            message = store_inbound(session, conversation, text)
        else:
            message = store_outbound(session, conversation, author, text, {"buttons": [], "metadata": {}})
        return conversation.id, message.id


def publish(client: TestClient, conversation_id: int, message_id: int, text: str) -> None:
    """What the gateway's routes do after storing a message: tell this process's live hub."""
    client.app.state.live.publish(  # type: ignore[attr-defined]
        {"type": "message", "conversation_id": conversation_id, "message": {"id": message_id, "text": text}}
    )


def receive(ws: WebSocketTestSession, timeout: float = RECEIVE_TIMEOUT_SECONDS) -> dict[str, Any]:
    """The next frame, or fail after `timeout` (TestClient's own receive waits forever)."""

    async def next_message() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    message = ws.portal.call(next_message)
    ws._raise_on_close(message)
    return dict(json.loads(message["text"]))


def connect(client: TestClient, visitor: str, after: int | None = None, **kwargs: Any) -> Any:
    """Open the live socket as the widget does: the visitor id offered as a subprotocol."""
    url = "/api/web/live" + ("" if after is None else f"?after={after}")
    return client.websocket_connect(url, subprotocols=["kefu.live", f"kefu.visitor.{visitor}"], **kwargs)


def test_connecting_sends_the_stored_messages_after_the_given_id_oldest_first(
    client: TestClient, db: sessionmaker[Session]
) -> None:
    _, first = say(db, VISITOR, AuthorKind.CUSTOMER, "where is my parcel?")
    _, second = say(db, VISITOR, AuthorKind.BOT, "Which order is it?")
    _, third = say(db, VISITOR, AuthorKind.CUSTOMER, "100001")
    _, fourth = say(db, VISITOR, AuthorKind.AGENT, "Hi, Ada here.")

    with connect(client, VISITOR, after=second) as ws:
        got = [receive(ws), receive(ws)]
    assert [frame["type"] for frame in got] == ["message", "message"]
    assert [frame["message"]["id"] for frame in got] == [third, fourth]
    assert got[0]["message"]["author"] == "customer" and got[0]["message"]["text"] == "100001"
    assert got[1]["message"]["author"] == "agent" and got[1]["message"]["text"] == "Hi, Ada here."
    assert set(got[1]["message"]) == {"id", "author", "text", "buttons", "metadata", "created_at"}
    assert first < second < third < fourth


def test_without_after_the_whole_conversation_is_sent(client: TestClient, db: sessionmaker[Session]) -> None:
    say(db, VISITOR, AuthorKind.CUSTOMER, "hello")
    say(db, VISITOR, AuthorKind.BOT, "Hi! How can I help?")
    with connect(client, VISITOR) as ws:
        texts = [receive(ws)["message"]["text"], receive(ws)["message"]["text"]]
    assert texts == ["hello", "Hi! How can I help?"]


def test_a_message_stored_and_published_later_arrives_at_once(
    client: TestClient, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the hub's wake-up the socket would not look again for a minute.
    monkeypatch.setattr(widget_live, "RECHECK_SECONDS", 60.0)
    conversation_id, asked = say(db, VISITOR, AuthorKind.CUSTOMER, "can a person help me?")
    with connect(client, VISITOR, after=0) as ws:
        assert receive(ws)["message"]["id"] == asked
        conversation_id, answered = say(db, VISITOR, AuthorKind.AGENT, "Sure, Sam here. What happened?")
        publish(client, conversation_id, answered, "Sure, Sam here. What happened?")
        frame = receive(ws, timeout=5)
    assert frame["type"] == "message"
    assert (frame["message"]["id"], frame["message"]["author"]) == (answered, "agent")
    assert frame["message"]["text"] == "Sure, Sam here. What happened?"


def test_a_message_nobody_published_still_arrives_on_the_next_check(
    client: TestClient, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scheduler's satisfaction survey is stored without telling the hub.
    monkeypatch.setattr(widget_live, "RECHECK_SECONDS", 0.2)
    say(db, VISITOR, AuthorKind.CUSTOMER, "thanks, bye")
    with connect(client, VISITOR) as ws:
        assert receive(ws)["message"]["text"] == "thanks, bye"
        _, survey = say(db, VISITOR, AuthorKind.BOT, "How would you rate the help you got?")
        frame = receive(ws, timeout=5)
    assert frame["message"]["id"] == survey


def test_a_visitor_who_has_not_written_yet_gets_their_first_messages(
    client: TestClient, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_live, "RECHECK_SECONDS", 0.2)
    with connect(client, VISITOR) as ws:
        _, first = say(db, VISITOR, AuthorKind.CUSTOMER, "hi")
        assert receive(ws, timeout=5)["message"]["id"] == first


def test_another_visitors_messages_are_never_sent(
    client: TestClient, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_live, "RECHECK_SECONDS", 0.2)
    say(db, OTHER_VISITOR, AuthorKind.CUSTOMER, "my address is 12 Secret Lane")
    mine_id, mine = say(db, VISITOR, AuthorKind.CUSTOMER, "hello")
    with connect(client, VISITOR) as ws:
        assert receive(ws)["message"]["id"] == mine
        # The other visitor's new message is published on the hub and stored; then one of ours.
        other_conversation, other_message = say(db, OTHER_VISITOR, AuthorKind.AGENT, "Your refund is EUR 80")
        publish(client, other_conversation, other_message, "Your refund is EUR 80")
        _, ours = say(db, VISITOR, AuthorKind.BOT, "Hi! How can I help?")
        publish(client, mine_id, ours, "Hi! How can I help?")
        frame = receive(ws, timeout=5)
        assert frame["message"]["id"] == ours
        ws.send_json({"type": "ping"})
        # Only the pong follows: nothing of the other visitor's was queued before it.
        assert receive(ws) == {"type": "pong"}


def test_ping_is_answered_with_pong(client: TestClient) -> None:
    with connect(client, VISITOR) as ws:
        ws.send_json({"type": "ping"})
        assert receive(ws) == {"type": "pong"}
        ws.send_json({"type": "ping"})  # the socket stays open for the next one
        assert receive(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    ("offered", "query", "reason_part"),
    [
        (["kefu.live"], "", "session is empty"),
        (["kefu.live", "kefu.visitor."], "", "session is empty"),
        (["kefu.live", f"kefu.visitor.{'x' * 129}"], "", "the limit is 128"),
        (["kefu.live", f"kefu.visitor.{VISITOR}"], "?after=-1", "after must be"),
        # An id in the URL would be written to logs: refused even when it is a good one.
        (["kefu.live", f"kefu.visitor.{VISITOR}"], f"?session={VISITOR}", "never in the URL"),
        ([], f"?session={VISITOR}", "never in the URL"),
    ],
)
def test_a_bad_session_id_or_cursor_closes_with_4400(
    client: TestClient, offered: list[str], query: str, reason_part: str
) -> None:
    url = f"/api/web/live{query}"
    with (
        client.websocket_connect(url, subprotocols=offered) as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        receive(ws)
    assert closed.value.code == 4400
    assert reason_part in closed.value.reason


@pytest.mark.parametrize("visitor", ["Qz", "history-3", "a" * 32, "A" * 40, VISITOR[:-1] + "x"])
def test_an_id_the_gateway_did_not_issue_closes_with_4401(
    client: TestClient, db: sessionmaker[Session], visitor: str
) -> None:
    say(db, visitor, AuthorKind.BOT, "Your order 100001 is on its way to Lisbon.")
    with connect(client, visitor) as ws, pytest.raises(WebSocketDisconnect) as closed:
        receive(ws)
    assert closed.value.code == 4401
    assert "POST /api/web/visitors" in closed.value.reason


def test_the_socket_answers_with_the_live_subprotocol_not_the_id(client: TestClient) -> None:
    with connect(client, VISITOR) as ws:
        assert ws.accepted_subprotocol == "kefu.live"


def test_a_foreign_origin_is_accepted(client: TestClient, db: sessionmaker[Session]) -> None:
    _, message = say(db, VISITOR, AuthorKind.BOT, "Welcome back!")
    with connect(client, VISITOR, headers={"Origin": "https://any-shop.example"}) as ws:
        assert receive(ws)["message"]["id"] == message
        ws.send_json({"type": "ping"})
        assert receive(ws) == {"type": "pong"}


# --- CORS for sites that embed the widget ----------------------------------------------------------------


def preflight(client: TestClient, path: str, origin: str) -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_cors_preflight_for_posting_a_message_succeeds_from_any_origin_by_default(client: TestClient) -> None:
    response = preflight(client, "/api/web/messages", SHOP)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers


def test_cors_headers_on_the_widget_api_responses(client: TestClient) -> None:
    history = client.post("/api/web/history", json={"session": VISITOR}, headers={"Origin": SHOP})
    assert history.status_code == 200 and history.headers["access-control-allow-origin"] == "*"
    # Errors carry the header too, so the widget can read and show them.
    refused = client.post(
        "/api/web/messages", json={"session": VISITOR, "text": "x" * 2001}, headers={"Origin": SHOP}
    )
    assert refused.status_code == 400 and refused.headers["access-control-allow-origin"] == "*"
    assert "the limit is 2000" in refused.json()["error"]


def test_other_routes_get_no_cors_headers(client: TestClient) -> None:
    response = preflight(client, "/api/console/queue", SHOP)
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": SHOP}).headers


def test_only_listed_origins_may_call_the_widget_api(live_settings: Settings) -> None:
    listed = live_settings.model_copy(update={"widget_allowed_origins": f"{SHOP}, https://www.shop.example"})
    with TestClient(create_app(listed)) as limited:
        allowed = preflight(limited, "/api/web/messages", SHOP)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == SHOP

        also = preflight(limited, "/api/web/messages", "https://www.shop.example")
        assert also.headers["access-control-allow-origin"] == "https://www.shop.example"

        unlisted = preflight(limited, "/api/web/messages", "https://evil.example")
        assert "access-control-allow-origin" not in unlisted.headers
        read = limited.get(f"/api/web/history?session={VISITOR}", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in read.headers
