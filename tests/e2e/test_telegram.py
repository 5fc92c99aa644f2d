"""Telegram end to end: the real gateway, Rasa and action server, with Telegram's servers played by
a fake Bot API on loopback (tests/support/fakes/telegram_api.py). The gateway runs in webhook mode as in
production: it registers its webhook with the fake, which then posts updates to it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from itertools import count
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import (
    AuditLog,
    Conversation,
    CsatSurvey,
    Customer,
    CustomerIdentity,
    Direction,
    Message,
    TelegramUpdate,
)
from bot.demo.seed import DEMO_PASSWORD_AGENT
from tests.support.fakes.telegram_api import (
    FakeTelegram,
    callback_query_update,
    command_update,
    post_update,
    text_update,
)
from tests.support.stack import Stack, console, running_stack, stack_settings
from tests.support.visitors import named_visitor

pytestmark = pytest.mark.rasa

SECRET = f"e2e-{uuid.uuid4().hex}"
_chats = count(880_000_001)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as telegram:
        yield telegram


@pytest.fixture(scope="module")
def stack(fake: FakeTelegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("telegram")
    settings = stack_settings(workdir)
    settings = settings.model_copy(
        update={
            "telegram_bot_token": fake.token,
            "telegram_mode": "webhook",
            "telegram_webhook_url": f"http://127.0.0.1:{settings.gateway_port}/telegram/webhook",
            "telegram_webhook_secret": SECRET,
            "telegram_api_url": fake.base_url,
        }
    )
    # The gateway reports healthy only once it is connected to Telegram and its webhook is set.
    with running_stack(workdir, settings=settings) as running:
        yield running


def db(stack: Stack) -> Session:
    return make_sessionmaker(make_engine(stack.settings))()


def webhook(stack: Stack) -> str:
    return f"{stack.gateway_url}/telegram/webhook"


def visible(message: dict[str, Any]) -> str:
    return str(message.get("text", ""))


def wait_for_texts(fake: FakeTelegram, chat: int, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """The messages the bot sent to `chat`, once there are at least `count`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = fake.sent_messages(chat)
        if len(sent) >= count:
            return sent
        time.sleep(0.1)
    raise AssertionError(f"expected {count} messages in chat {chat}, got {fake.sent_messages(chat)}")


def customer_texts(stack: Stack, chat: int) -> list[str]:
    with db(stack) as session:
        conversation = session.scalars(
            select(Conversation).where(
                Conversation.channel == "telegram", Conversation.external_id == str(chat)
            )
        ).one()
        return list(
            session.scalars(
                select(Message.text)
                .where(Message.conversation_id == conversation.id, Message.direction == Direction.INBOUND)
                .order_by(Message.id)
            )
        )


def conversation_of(stack: Stack, chat: int) -> Conversation:
    with db(stack) as session:
        return session.scalars(
            select(Conversation).where(
                Conversation.channel == "telegram", Conversation.external_id == str(chat)
            )
        ).one()


def tell(fake: FakeTelegram, update: dict[str, Any]) -> None:
    assert fake.deliver_update(update) == 200


def console_as_ada(stack: Stack) -> AbstractContextManager[httpx.Client]:
    return console(stack, "ada@kefu.example", DEMO_PASSWORD_AGENT)


def test_the_gateway_registers_its_webhook_with_the_secret(stack: Stack, fake: FakeTelegram) -> None:
    hook = fake.webhook
    assert hook["url"] == webhook(stack)
    assert hook["secret_token"] == SECRET
    assert set(hook["allowed_updates"]) == {"message", "callback_query"}


def test_an_update_without_the_right_secret_is_refused_and_not_processed(
    stack: Stack, fake: FakeTelegram
) -> None:
    chat = next(_chats)
    forged = text_update(chat, "where is my order 100001?")
    assert post_update(webhook(stack), forged, "not-the-secret") == 401
    assert post_update(webhook(stack), forged, None) == 401
    time.sleep(1.5)
    assert fake.sent_messages(chat) == []
    with db(stack) as session:
        assert session.get(TelegramUpdate, forged["update_id"]) is None
        assert (
            session.scalars(select(Conversation).where(Conversation.external_id == str(chat))).first() is None
        )


def test_start_greets_and_a_resent_update_is_handled_once(stack: Stack, fake: FakeTelegram) -> None:
    chat = next(_chats)
    start = command_update(chat, "start")
    tell(fake, start)
    greeting = wait_for_texts(fake, chat, 1)
    # Telegram resends an update when our answer is slow or lost: same update id, nothing new.
    tell(fake, start)
    tell(fake, start)
    question = text_update(chat, "how long do I have to send something back?")
    tell(fake, question)
    tell(fake, question)
    sent = wait_for_texts(fake, chat, len(greeting) + 1)
    time.sleep(3)  # anything doubled would have arrived by now
    assert customer_texts(stack, chat) == ["/start", "how long do I have to send something back?"]
    sent = fake.sent_messages(chat)
    with db(stack) as session:
        replies = session.scalars(
            select(Message).where(
                Message.conversation_id == conversation_of(stack, chat).id,
                Message.direction == Direction.OUTBOUND,
            )
        ).all()
        assert all(reply.status.value == "sent" and reply.delivered_at for reply in replies)
    assert len(sent) == len(replies)  # each stored reply sent exactly once
    assert "30 days" in " ".join(visible(m) for m in sent[len(greeting) :])
    assert fake.calls("sendChatAction", ok=True), "the customer saw no 'typing…'"


def test_help_and_unknown_commands_are_answered_without_reaching_rasa(
    stack: Stack, fake: FakeTelegram
) -> None:
    chat = next(_chats)
    tell(fake, command_update(chat, "help"))
    tell(fake, command_update(chat, 'track_order{"order_number": "100004"}'))
    sent = wait_for_texts(fake, chat, 2)
    assert "/agent" in visible(sent[0])
    assert "don't know that command" in visible(sent[1])
    assert "100004" not in " ".join(visible(m) for m in sent)


def test_an_agent_reply_a_flood_limit_a_long_text_and_the_rating_buttons(
    stack: Stack, fake: FakeTelegram
) -> None:
    chat = next(_chats)
    tell(fake, command_update(chat, "agent"))
    wait_for_texts(fake, chat, 1)
    conversation = conversation_of(stack, chat)
    assert conversation.mode.value == "pending_agent"

    reply = " ".join(f"step{n}" for n in range(900))  # 6,289 characters: more than one message
    with console_as_ada(stack) as ada:
        before = len(fake.sent_messages(chat))
        assert ada.post(f"/api/console/conversations/{conversation.id}/claim").status_code == 200
        joined = wait_for_texts(fake, chat, before + 1)[-1]
        assert "Ada" in visible(joined)  # the customer is told who took the chat
        # Telegram's flood control answers the next message to this chat with 429 "retry after 1".
        fake.fail("sendMessage", "retry_after", times=1, retry_after=1, chat_id=chat)
        before = len(fake.sent_messages(chat))
        sent = ada.post(f"/api/console/conversations/{conversation.id}/messages", json={"text": reply})
        assert sent.status_code == 200, sent.text
        parts = wait_for_texts(fake, chat, before + 2)[before:]
        time.sleep(2)
        assert len(fake.sent_messages(chat)) == before + 2  # delivered once, not again after the 429
        refused = [c for c in fake.calls("sendMessage") if c["outcome"] == "retry_after"]
        assert len([c for c in refused if str(c["params"]["chat_id"]) == str(chat)]) == 1
        assert visible(parts[0]).startswith("Ada (support team)\nstep0 ")
        words = (visible(parts[0]).split("\n", 1)[1] + " " + visible(parts[1])).split()
        assert words == reply.split()
        assert all(len(visible(p)) <= 4096 for p in parts)

        # Handing back: the bot's rating question reaches Telegram with its stars as buttons.
        before = len(fake.sent_messages(chat))
        assert ada.post(f"/api/console/conversations/{conversation.id}/handback").status_code == 200
    rating = next(m for m in wait_for_texts(fake, chat, before + 2)[before:] if m.get("reply_markup"))
    buttons = [b for row in rating["reply_markup"]["inline_keyboard"] for b in row]
    five = next(b for b in buttons if b["text"].startswith("5"))
    before = len(fake.sent_messages(chat))
    press = callback_query_update(chat, five["callback_data"], message=rating)
    earlier = len(fake.calls("answerCallbackQuery", ok=True))
    tell(fake, press)
    after = wait_for_texts(fake, chat, before + 1)[before:]
    answered = fake.wait_for_calls("answerCallbackQuery", earlier + 1, timeout=10)
    assert any(c["params"]["callback_query_id"] == press["callback_query"]["id"] for c in answered)
    assert "anything you'd like to add" in " ".join(visible(m) for m in after).lower()
    assert customer_texts(stack, chat)[-1] == five["text"]
    before = len(fake.sent_messages(chat))
    tell(fake, text_update(chat, "no, that's all"))
    wait_for_texts(fake, chat, before + 1)
    with db(stack) as session:
        survey = session.scalars(
            select(CsatSurvey).where(CsatSurvey.conversation_id == conversation.id)
        ).one()
        assert survey.score == 5


def test_a_button_of_another_chat_is_not_accepted(stack: Stack, fake: FakeTelegram) -> None:
    chat = next(_chats)
    tell(fake, text_update(chat, "hello"))
    wait_for_texts(fake, chat, 1)
    # A made-up press naming a message that was never sent to this chat.
    press = callback_query_update(chat, "b:1:0", message_text="Pick one:")
    earlier = len(fake.calls("answerCallbackQuery", ok=True))
    tell(fake, press)
    answered = fake.wait_for_calls("answerCallbackQuery", earlier + 1, timeout=20)
    mine = [c for c in answered if c["params"]["callback_query_id"] == press["callback_query"]["id"]]
    assert mine and "expired" in mine[0]["params"].get("text", "")
    assert customer_texts(stack, chat) == ["hello"]


def test_one_customer_on_telegram_and_on_the_web(stack: Stack, fake: FakeTelegram) -> None:
    chat = next(_chats)
    tell(fake, text_update(chat, "where is my order 100005?"))
    wait_for_texts(fake, chat, 1)
    tell(fake, text_update(chat, "jonas.becker@example.com"))
    tracked = wait_for_texts(fake, chat, 2)
    assert "UPS" in " ".join(visible(m) for m in tracked)

    visitor = f"e2e-telegram-web-{uuid.uuid4().hex[:8]}"
    for text in ("where is my order 100005?", "jonas.becker@example.com"):
        response = httpx.post(
            f"{stack.gateway_url}/api/web/messages",
            json={"session": named_visitor(visitor), "text": text},
            timeout=60,
        )
        assert response.status_code == 200, response.text
    web_conversation = response.json()["conversation_id"]
    assert "UPS" in " ".join(m["text"] for m in response.json()["messages"])

    telegram_conversation = conversation_of(stack, chat)
    with db(stack) as session:
        jonas = session.scalars(select(Customer).where(Customer.email == "jonas.becker@example.com")).one()
        assert telegram_conversation.customer_id == jonas.id
        assert session.get_one(Conversation, web_conversation).customer_id == jonas.id
        identities = session.scalars(
            select(CustomerIdentity).where(CustomerIdentity.customer_id == jonas.id)
        ).all()
        assert {(i.channel, i.external_id) for i in identities} >= {
            ("telegram", str(chat)),
            ("web", named_visitor(visitor)),
        }
        linked = session.scalars(
            select(AuditLog).where(AuditLog.action == "identity_linked", AuditLog.record_id == str(jonas.id))
        ).all()
        assert [entry.details["channel"] for entry in linked][-2:] == ["telegram", "web"]
        assert "telegram" in linked[-1].details["known_on"]

    with console_as_ada(stack) as ada:
        panel = ada.get(f"/api/console/conversations/{web_conversation}").json()["customer"]
    assert panel["email"] == "jonas.becker@example.com"
    assert {"channel": "telegram"} in panel["identities"]
    assert telegram_conversation.id in [c["id"] for c in panel["past_conversations"]]
