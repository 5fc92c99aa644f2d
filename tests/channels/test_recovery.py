"""Messages that failed while a part was down are answered once it is back, or go to a person.

Rasa is an httpx mock transport here; tests/e2e/test_faults.py stops and restarts the real parts.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.recovery import MAX_ATTEMPTS, PendingAnswers
from bot.crm.conversations import get_or_create_conversation, mark_failed, mark_processed, store_inbound
from bot.crm.models import Conversation, ConversationMode, Direction, Handoff, Message, MessageStatus, utcnow
from bot.rasa_client import RasaClient
from bot.settings import Settings


class FakeRasa:
    """Up or down at will; answers "echo: <text>" and records what it was asked."""

    def __init__(self) -> None:
        self.up = False
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path in ("/status",):
            return httpx.Response(200, json={"model_file": "kefu.tar.gz"})
        if request.url.path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        text = httpx.Response(200, content=request.content).json()["message"]
        self.asked.append(text)
        return httpx.Response(200, json=[{"text": f"echo: {text}"}])


def _failed(db: sessionmaker[Session], visitor: str, *texts: str) -> list[int]:
    ids = []
    with db.begin() as session:
        conversation = get_or_create_conversation(session, "web", visitor)
        for text in texts:
            message = store_inbound(session, conversation, text)
            mark_failed(session, message, "cannot reach Rasa")
            ids.append(message.id)
    return ids


def _run(settings: Settings, db: sessionmaker[Session], rasa: FakeRasa) -> int:
    async def go() -> int:
        client = RasaClient(settings, transport=httpx.MockTransport(rasa))
        try:
            return await PendingAnswers(db, client, settings, None).run()
        finally:
            await client.aclose()

    return asyncio.run(go())


def _texts(db: sessionmaker[Session], visitor: str) -> list[tuple[str, str]]:
    with db() as session:
        conversation = session.scalars(select(Conversation).where(Conversation.external_id == visitor)).one()
        messages = session.scalars(
            select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
        )
        return [(m.author_kind.value, m.text) for m in messages]


def test_failed_messages_are_answered_in_order_once_rasa_is_back(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    _failed(db_sessionmaker, "ana", "where is my order", "hello?")
    rasa = FakeRasa()
    assert _run(settings, db_sessionmaker, rasa) == 0  # still down: nothing tried, nothing lost
    rasa.up = True
    for _ in range(3):
        with db_sessionmaker.begin() as session:  # the backoff would wait; the test does not
            for message in session.scalars(select(Message)):
                message.next_attempt_at = None
        _run(settings, db_sessionmaker, rasa)
    assert rasa.asked == ["where is my order", "hello?"]
    assert _texts(db_sessionmaker, "ana") == [
        ("customer", "where is my order"),
        ("customer", "hello?"),
        ("system", "Sorry for the wait. About your message \u201cwhere is my order\u201d:"),
        ("bot", "echo: where is my order"),
        ("system", "Sorry for the wait. About your message \u201chello?\u201d:"),
        ("bot", "echo: hello?"),
    ]
    _run(settings, db_sessionmaker, rasa)
    assert len(rasa.asked) == 2, "an answered message is never sent again"


def test_a_message_the_customer_moved_on_from_is_not_replayed(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    _failed(db_sessionmaker, "jonas", "first try")
    with db_sessionmaker.begin() as session:
        conversation = get_or_create_conversation(session, "web", "jonas")
        mark_processed(session, store_inbound(session, conversation, "second try, answered"))
    rasa = FakeRasa()
    rasa.up = True
    _run(settings, db_sessionmaker, rasa)
    assert rasa.asked == []
    with db_sessionmaker() as session:
        first = session.scalars(select(Message).where(Message.text == "first try")).one()
        assert first.status == MessageStatus.PROCESSED
        assert "moved on" in (first.error or "")


def test_a_message_unanswered_too_long_goes_to_a_person(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    [message_id] = _failed(db_sessionmaker, "mei", "my parcel never came")
    with db_sessionmaker.begin() as session:
        session.get_one(Message, message_id).created_at = utcnow() - timedelta(
            minutes=settings.pending_retry_minutes + 1
        )
    _run(settings, db_sessionmaker, FakeRasa())  # Rasa still down
    with db_sessionmaker() as session:
        conversation = session.scalars(select(Conversation).where(Conversation.external_id == "mei")).one()
        assert conversation.mode == ConversationMode.PENDING_AGENT
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == conversation.id)).one()
        assert handoff.reason == "bot_unavailable"
        last = session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation.id, Message.direction == Direction.OUTBOUND)
            .order_by(Message.id.desc())
        ).first()
        assert last is not None and "passed your message to a person" in last.text


def test_after_max_attempts_it_goes_to_a_person(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    [message_id] = _failed(db_sessionmaker, "sam", "help")
    with db_sessionmaker.begin() as session:
        session.get_one(Message, message_id).delivery_attempts = MAX_ATTEMPTS
    rasa = FakeRasa()
    rasa.up = True
    _run(settings, db_sessionmaker, rasa)
    assert rasa.asked == []
    with db_sessionmaker() as session:
        assert session.scalars(select(Conversation)).one().mode == ConversationMode.PENDING_AGENT
