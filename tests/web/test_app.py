"""The web channel API, health check and demo page, on the real app with Rasa down."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import bot.channels.pipeline as pipeline
import bot.crm.conversations as conversations
from bot.channels.widget import FALLBACK_TEXT, WAITING_FOR_AGENT_TEXT
from bot.crm.models import (
    AuthorKind,
    Conversation,
    ConversationMode,
    Direction,
    Message,
    MessageStatus,
    utcnow,
)
from bot.rasa_client import RasaClient, RasaUnavailable, normalise_replies
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.visitors import visitor_id

STATIC_DIR = Path(__file__).resolve().parents[2] / "bot" / "web" / "static"
# Two visitors, with ids as the gateway issues them (POST /api/web/visitors).
VISITOR_1 = visitor_id()
VISITOR_2 = visitor_id()


# --- helpers -------------------------------------------------------------------------------------


def count(db: sessionmaker[Session], model: type[Conversation] | type[Message]) -> int:
    with db() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def messages_of(db: sessionmaker[Session], conversation_id: int) -> list[Message]:
    with db() as session:
        return list(
            session.scalars(
                select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
            )
        )


def set_mode(db: sessionmaker[Session], conversation_id: int, mode: ConversationMode) -> None:
    with db.begin() as session:
        conversation = session.get_one(Conversation, conversation_id)
        conversation.mode = mode
        conversation.closed_at = utcnow() if mode == ConversationMode.CLOSED else None


async def post(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/api/web/messages", json=body)


# --- refused input: 4xx, a message naming the problem, nothing stored -------------------------------


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"session": VISITOR_1, "text": ""}, 400, "text is empty: type a message"),
        ({"session": VISITOR_1, "text": "   \n\t  "}, 400, "text is empty: type a message"),
        ({"session": VISITOR_1, "text": "x" * 2001}, 400, "text is 2001 characters; the limit is 2000"),
        ({"session": VISITOR_1, "text": "a\x00b"}, 400, "text contains a NUL character"),
        (
            {"session": "visitor 1", "text": "hi"},
            400,
            "session may contain only letters, digits, '-' and '_'",
        ),
        ({"session": "../etc", "text": "hi"}, 400, "session may contain only letters, digits"),
        ({"session": "", "text": "hi"}, 400, "session is empty"),
        ({"session": "v" * 129, "text": "hi"}, 400, "session is 129 characters; the limit is 128"),
        (
            {"session": VISITOR_1, "text": "hi", "client_message_id": "a b"},
            400,
            "client_message_id may contain only",
        ),
        ({"session": VISITOR_1}, 422, "text is missing"),
        ({"text": "hello"}, 422, "session is missing"),
        ({}, 422, "session is missing; text is missing"),
        ({"session": VISITOR_1, "text": 42}, 422, "text must be a string"),
        ({"session": [VISITOR_1], "text": "hi"}, 422, "session must be a string"),
    ],
)
async def test_bad_message_is_refused_with_a_clear_error(
    client: httpx.AsyncClient, db: sessionmaker[Session], body: dict[str, Any], status: int, error: str
) -> None:
    response = await client.post("/api/web/messages", json=body)

    assert response.status_code == status
    assert error in response.json()["error"]
    assert count(db, Conversation) == 0
    assert count(db, Message) == 0


@pytest.mark.parametrize(
    ("content", "content_type", "error"),
    [
        ('{"session": VISITOR_1, "text": ', "application/json", "the request body is not valid JSON"),
        ("[]", "application/json", "the request body must be a JSON object"),
        ("session=visitor-1&text=hi", "application/x-www-form-urlencoded", "must be a JSON object"),
        ("", "application/json", "the request body must be a JSON object"),
    ],
)
async def test_body_that_is_not_a_json_object_is_refused(
    client: httpx.AsyncClient, db: sessionmaker[Session], content: str, content_type: str, error: str
) -> None:
    response = await client.post("/api/web/messages", content=content, headers={"Content-Type": content_type})

    assert response.status_code == 422
    assert error in response.json()["error"]
    assert count(db, Message) == 0


async def test_oversized_body_is_refused_before_parsing(
    client: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    response = await post(client, session=VISITOR_1, text="x" * 200_000)

    assert response.status_code == 413
    assert "the limit is 65536" in response.json()["error"]
    assert count(db, Message) == 0


async def test_text_at_the_limit_is_accepted_after_trimming(client: httpx.AsyncClient) -> None:
    response = await post(client, session=VISITOR_1, text="  " + "x" * 2000 + "\n")

    assert response.status_code == 200


# --- Rasa down: the customer still gets an answer, the message is kept ----------------------------


async def test_rasa_down_gives_polite_fallback_and_keeps_the_message(
    client: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    response = await post(client, session=VISITOR_1, text="  Where is my order?  ")

    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == "bot"
    assert [(m["author"], m["text"]) for m in body["messages"]] == [("system", FALLBACK_TEXT)]

    stored = messages_of(db, body["conversation_id"])
    inbound, fallback = stored
    assert inbound.id == body["message_id"]
    assert (inbound.direction, inbound.author_kind) == (Direction.INBOUND, AuthorKind.CUSTOMER)
    assert inbound.text == "Where is my order?"
    assert inbound.status == MessageStatus.FAILED
    assert inbound.error and "cannot reach Rasa" in inbound.error
    assert (fallback.direction, fallback.author_kind, fallback.status) == (
        Direction.OUTBOUND,
        AuthorKind.SYSTEM,
        MessageStatus.SENT,
    )
    assert fallback.text == FALLBACK_TEXT


async def test_rasa_that_never_answers_times_out_into_the_fallback(
    web_settings: Settings, db: sessionmaker[Session]
) -> None:
    # A socket that accepts connections but never replies: Rasa hung on a slow action.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings = web_settings.model_copy(
            update={"rasa_url": f"http://127.0.0.1:{silent.getsockname()[1]}", "rasa_timeout_seconds": 0.5}
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
        ):
            response = await post(client, session=VISITOR_1, text="hello")

    assert response.status_code == 200
    assert response.json()["messages"][0]["text"] == FALLBACK_TEXT
    inbound = messages_of(db, response.json()["conversation_id"])[0]
    assert inbound.status == MessageStatus.FAILED
    assert inbound.error and "did not answer in time" in inbound.error


async def test_new_conversation_gets_an_unguessable_rasa_sender_id(
    client: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    first = (await post(client, session=VISITOR_1, text="hi")).json()
    second = (await post(client, session=VISITOR_1, text="again")).json()
    other = (await post(client, session=VISITOR_2, text="hi")).json()

    assert first["conversation_id"] == second["conversation_id"] != other["conversation_id"]
    with db() as session:
        sender_ids = list(session.scalars(select(Conversation.sender_id)))
    assert len(set(sender_ids)) == 2
    assert all(len(s) == 32 and "visitor" not in s for s in sender_ids)


# --- history -------------------------------------------------------------------------------------


async def test_history_returns_the_conversation_in_order(client: httpx.AsyncClient) -> None:
    await post(client, session=VISITOR_1, text="first")
    await post(client, session=VISITOR_1, text="second")
    await post(client, session=VISITOR_2, text="someone else")

    response = await client.get("/api/web/history", params={"session": VISITOR_1})

    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == "bot"
    assert [(m["author"], m["text"]) for m in body["messages"]] == [
        ("customer", "first"),
        ("system", FALLBACK_TEXT),
        ("customer", "second"),
        ("system", FALLBACK_TEXT),
    ]
    ids = [m["id"] for m in body["messages"]]
    assert ids == sorted(ids)
    times = [datetime.fromisoformat(m["created_at"]) for m in body["messages"]]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    assert all(m["buttons"] == [] and isinstance(m["metadata"], dict) for m in body["messages"])


async def test_history_of_unknown_session_is_empty(
    client: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    response = await client.get("/api/web/history", params={"session": visitor_id()})

    assert response.status_code == 200
    assert response.json() == {"conversation_id": None, "mode": "bot", "messages": []}
    assert count(db, Conversation) == 0


async def test_history_refuses_bad_or_missing_session(client: httpx.AsyncClient) -> None:
    bad = await client.get("/api/web/history", params={"session": "<script>"})
    missing = await client.get("/api/web/history")

    assert bad.status_code == 400
    assert "session may contain only" in bad.json()["error"]
    assert missing.status_code == 422
    assert missing.json() == {"error": "session (query parameter) is missing"}


# --- retries with the same client_message_id ---------------------------------------------------------


async def test_repeated_client_message_id_is_answered_but_not_stored_twice(
    client: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    first = await post(client, session=VISITOR_1, text="hello", client_message_id="msg-1")
    retry = await post(client, session=VISITOR_1, text="hello", client_message_id="msg-1")

    assert retry.status_code == 200
    assert retry.json() == first.json()
    stored = messages_of(db, first.json()["conversation_id"])
    assert [(m.author_kind, m.channel_message_id) for m in stored] == [
        (AuthorKind.CUSTOMER, "msg-1"),
        (AuthorKind.SYSTEM, None),
    ]


async def test_retry_returns_only_the_replies_to_that_message(client: httpx.AsyncClient) -> None:
    first = (await post(client, session=VISITOR_1, text="one", client_message_id="msg-1")).json()
    await post(client, session=VISITOR_1, text="two", client_message_id="msg-2")

    retry = (await post(client, session=VISITOR_1, text="one", client_message_id="msg-1")).json()

    assert retry["message_id"] == first["message_id"]
    assert [m["id"] for m in retry["messages"]] == [m["id"] for m in first["messages"]]


async def test_client_message_id_of_another_chat_is_refused(
    client: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    await post(client, session=VISITOR_1, text="mine", client_message_id="msg-1")

    response = await post(client, session=VISITOR_2, text="replay", client_message_id="msg-1")

    assert response.status_code == 409
    assert "client_message_id was already used" in response.json()["error"]
    assert count(db, Conversation) == 1
    assert count(db, Message) == 2


async def test_concurrent_duplicate_is_answered_as_a_retry(
    client: httpx.AsyncClient, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = (await post(client, session=VISITOR_1, text="hello", client_message_id="msg-1")).json()
    # The duplicate check runs before the other request has committed: the unique constraint decides.
    real_find = pipeline.find_message_by_channel_id
    calls = iter([None])
    monkeypatch.setattr(
        pipeline, "find_message_by_channel_id", lambda *args: next(calls, None) or real_find(*args)
    )

    second = await post(client, session=VISITOR_1, text="hello", client_message_id="msg-1")

    assert second.status_code == 200
    assert second.json()["message_id"] == first["message_id"]
    assert count(db, Message) == 2


def test_conversation_created_concurrently_is_reused(
    web_settings: Settings, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find = conversations.find_conversation
    first_call = True

    def find_after_other_request_committed(session: Session, channel: str, external_id: str) -> Any:
        nonlocal first_call
        if first_call:
            first_call = False
            with db.begin() as other:
                other.add(Conversation(channel=channel, external_id=external_id, sender_id="other-request"))
            return None
        return real_find(session, channel, external_id)

    monkeypatch.setattr(conversations, "find_conversation", find_after_other_request_committed)

    with db.begin() as session:
        conversation = conversations.get_or_create_conversation(session, "web", "visitor-1")
        # The transaction survived the lost race and can go on storing the message.
        conversations.store_inbound(session, conversation, "hello")

    assert conversation.sender_id == "other-request"
    assert count(db, Conversation) == 1
    assert len(messages_of(db, conversation.id)) == 1


# --- conversations with a person, and closed ones -------------------------------------------------


@pytest.fixture
def conversation_id(db: sessionmaker[Session]) -> Iterator[int]:
    with db.begin() as session:
        conversation = conversations.get_or_create_conversation(session, "web", VISITOR_1)
    yield conversation.id


async def test_waiting_for_agent_skips_the_bot_and_says_so_once(
    client: httpx.AsyncClient, db: sessionmaker[Session], conversation_id: int
) -> None:
    set_mode(db, conversation_id, ConversationMode.PENDING_AGENT)

    first = (await post(client, session=VISITOR_1, text="hello?")).json()
    second = (await post(client, session=VISITOR_1, text="anyone there?")).json()

    assert first["mode"] == second["mode"] == "pending_agent"
    # Rasa is down: had it been asked, the answer would be the fallback.
    assert [m["text"] for m in first["messages"]] == [WAITING_FOR_AGENT_TEXT]
    assert second["messages"] == []
    inbound = [m for m in messages_of(db, conversation_id) if m.direction == Direction.INBOUND]
    assert [m.status for m in inbound] == [MessageStatus.PROCESSED, MessageStatus.PROCESSED]


async def test_agent_chatting_gets_no_automatic_notice(
    client: httpx.AsyncClient, db: sessionmaker[Session], conversation_id: int
) -> None:
    set_mode(db, conversation_id, ConversationMode.AGENT)
    with db.begin() as session:
        conversation = session.get_one(Conversation, conversation_id)
        conversations.store_outbound(session, conversation, AuthorKind.AGENT, "Hi, I'm Ana. How can I help?")

    body = (await post(client, session=VISITOR_1, text="my parcel is late")).json()

    assert body["mode"] == "agent"
    assert body["messages"] == []


async def test_closed_conversation_reopens_with_the_bot(
    client: httpx.AsyncClient, db: sessionmaker[Session], conversation_id: int
) -> None:
    set_mode(db, conversation_id, ConversationMode.CLOSED)

    body = (await post(client, session=VISITOR_1, text="one more question")).json()

    assert body["conversation_id"] == conversation_id
    assert body["mode"] == "bot"
    assert [m["text"] for m in body["messages"]] == [FALLBACK_TEXT]  # the bot was asked (and is down)
    with db() as session:
        conversation = session.get_one(Conversation, conversation_id)
        assert (conversation.mode, conversation.closed_at) == (ConversationMode.BOT, None)


# --- health check and page -----------------------------------------------------------------------


async def test_healthz_reports_rasa_and_action_server_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == {"ok": True}
    assert body["rasa"]["ok"] is False
    assert body["rasa"]["model_loaded"] is False
    assert "cannot reach Rasa" in body["rasa"]["detail"]
    assert body["action_server"] == {"ok": False}


async def test_demo_page_is_served_with_its_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    script = await client.get("/static/demo-chat.js")
    style = await client.get("/static/demo-chat.css")

    assert page.status_code == 200
    assert 'aria-live="polite"' in page.text
    assert 'data-max-chars="2000"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: the machine is offline
    assert script.status_code == 200 and style.status_code == 200


def test_demo_script_never_inserts_html() -> None:
    source = (STATIC_DIR / "demo-chat.js").read_text()
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source


async def test_unknown_route_answers_json_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/web/nothing")

    assert response.status_code == 404
    assert "error" in response.json()


# --- Rasa client: normalising what the REST channel returns ----------------------------------------


def test_custom_metadata_is_merged_into_the_text_before_it() -> None:
    # What Rasa's REST channel returns for utter_message(text=..., buttons=..., json_message=...).
    raw = [
        {"recipient_id": "s", "text": "Which order?", "buttons": [{"title": "Latest", "payload": "/latest"}]},
        {"recipient_id": "s", "custom": {"metadata": {"kb_article": "returns"}, "kind": "kb"}},
        {"recipient_id": "s", "text": "Or type the number."},
        {"recipient_id": "s", "custom": {"type": "csat"}},
        {"recipient_id": "s", "image": "https://example.com/a.png"},
    ]

    replies = normalise_replies(raw)

    assert [(r.text, r.buttons, r.metadata) for r in replies] == [
        (
            "Which order?",
            [{"title": "Latest", "payload": "/latest"}],
            {"kb_article": "returns", "kind": "kb"},
        ),
        ("Or type the number.", [], {}),
        ("", [], {"type": "csat"}),
        ("", [], {"image": "https://example.com/a.png"}),
    ]


async def test_rasa_server_error_is_unavailable(web_settings: Settings) -> None:
    failing = httpx.MockTransport(lambda request: httpx.Response(500, text="Internal Server Error"))
    rasa = RasaClient(web_settings, transport=failing)
    try:
        with pytest.raises(RasaUnavailable, match="HTTP 500"):
            await rasa.send("sender", "hello", {})
    finally:
        await rasa.aclose()
