"""Messages that failed while a part was down are answered once it is back, or go to a person.

Rasa is an httpx mock transport here; tests/e2e/test_faults.py stops and restarts the real parts.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.pipeline import handle_message
from bot.channels.recovery import MAX_ATTEMPTS, PendingAnswers
from bot.crm.conversations import get_or_create_conversation, mark_failed, mark_processed, store_inbound
from bot.crm.models import Conversation, ConversationMode, Direction, Handoff, Message, MessageStatus, utcnow
from bot.live import LiveHub
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


def test_a_message_the_customer_sent_again_and_got_answered_is_not_replayed(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    _failed(db_sessionmaker, "jonas", "first try")
    with db_sessionmaker.begin() as session:
        conversation = get_or_create_conversation(session, "web", "jonas")
        mark_processed(session, store_inbound(session, conversation, "First try "))
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


def test_the_customers_next_message_first_answers_what_was_saved_in_order(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    _failed(db_sessionmaker, "lea", "where is my order", "and the refund?")
    rasa = FakeRasa()
    rasa.up = True

    async def go() -> list[str]:
        client = RasaClient(settings, transport=httpx.MockTransport(rasa))
        try:
            with db_sessionmaker() as session:
                handled = await handle_message(session, settings, client, LiveHub(), "web", "lea", "hello?")
                return [message.text for message in handled.replies]
        finally:
            await client.aclose()

    replies = asyncio.run(go())
    assert rasa.asked == ["where is my order", "and the refund?", "hello?"]
    assert replies == [
        "Sorry for the wait. About your message \u201cwhere is my order\u201d:",
        "echo: where is my order",
        "Sorry for the wait. About your message \u201cand the refund?\u201d:",
        "echo: and the refund?",
        "echo: hello?",
    ]
    assert _run(settings, db_sessionmaker, rasa) == 0, "nothing left for the scheduler to answer"
    assert len(rasa.asked) == 3


def test_a_message_left_unanswered_by_a_stopped_gateway_is_answered(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    with db_sessionmaker.begin() as session:
        conversation = get_or_create_conversation(session, "web", "ines")
        stored = store_inbound(session, conversation, "is the blue kettle in stock")
        stored.created_at = utcnow() - timedelta(minutes=2)  # the gateway died in the middle of its turn
        fresh = store_inbound(session, conversation, "still being answered")  # a turn in progress
    rasa = FakeRasa()
    rasa.up = True
    assert _run(settings, db_sessionmaker, rasa) == 1
    assert rasa.asked == ["is the blue kettle in stock"]
    with db_sessionmaker() as session:
        assert session.get_one(Message, fresh.id).status == MessageStatus.RECEIVED


async def test_once_the_bot_is_back_messages_waiting_out_a_backoff_are_answered_at_once(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    [message_id] = _failed(db_sessionmaker, "rui", "my parcel is late")
    with db_sessionmaker.begin() as session:
        message = session.get_one(Message, message_id)
        message.delivery_attempts, message.next_attempt_at = 3, utcnow() + timedelta(minutes=5)
    rasa = FakeRasa()
    client = RasaClient(settings, transport=httpx.MockTransport(rasa))
    pending = PendingAnswers(db_sessionmaker, client, settings, None)
    try:
        assert await pending.run() == 0  # down: seen down, nothing tried
        rasa.up = True
        assert await pending.run() == 1  # back: answered now, not in five minutes
    finally:
        await client.aclose()
    assert rasa.asked == ["my parcel is late"]


def test_a_saved_question_is_still_answered_after_a_different_later_one_was(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    _failed(db_sessionmaker, "mia", "how do I return the lamp")
    with db_sessionmaker.begin() as session:
        conversation = get_or_create_conversation(session, "web", "mia")
        mark_processed(session, store_inbound(session, conversation, "hello?"))  # small talk, answered
    rasa = FakeRasa()
    rasa.up = True
    assert _run(settings, db_sessionmaker, rasa) == 1
    assert rasa.asked == ["how do I return the lamp"]
    assert _texts(db_sessionmaker, "mia")[-2:] == [
        ("system", "Sorry for the wait. About your message \u201chow do I return the lamp\u201d:"),
        ("bot", "echo: how do I return the lamp"),
    ]
