"""Telegram in polling mode (local use) inside the real gateway app, against the fake Bot API on
loopback; Rasa is on a dead port, so what needs no bot and what happens when Rasa is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.pipeline import FALLBACK_TEXT
from bot.channels.telegram.channel import NOT_TEXT_TEXT, WEBHOOK_PATH
from bot.crm.models import Message, MessageStatus, TelegramUpdate
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.fakes.telegram_api import FakeTelegram, command_update, text_update
from tests.support.stack import free_port


@pytest.fixture
async def polling_app(
    settings: Settings, db_sessionmaker: sessionmaker[Session], fake_telegram: FakeTelegram
) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings.model_copy(
            update={
                "rasa_url": f"http://127.0.0.1:{free_port()}",
                "action_server_url": f"http://127.0.0.1:{free_port()}",
                "rasa_timeout_seconds": 2.0,
                "scheduler_enabled": False,
                "kb_warm_up": False,
                "telegram_bot_token": fake_telegram.token,
                "telegram_mode": "polling",
                "telegram_api_url": fake_telegram.base_url,
            }
        )
    )
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + 20
        while not app.state.telegram.ready:
            assert time.monotonic() < deadline, "the gateway did not connect to the fake Telegram"
            await asyncio.sleep(0.05)
        yield app


async def sent_to(fake: FakeTelegram, chat: int, count: int) -> list[str]:
    deadline = time.monotonic() + 20
    while len(fake.sent_messages(chat)) < count:
        assert time.monotonic() < deadline, f"chat {chat} got {fake.sent_messages(chat)}"
        await asyncio.sleep(0.05)
    return [str(m["text"]) for m in fake.sent_messages(chat)]


async def test_polling_answers_help_and_stores_the_update_once(
    polling_app: FastAPI, fake_telegram: FakeTelegram, db_sessionmaker: sessionmaker[Session]
) -> None:
    update = command_update(5001, "help")
    fake_telegram.queue_update(update)
    texts = await sent_to(fake_telegram, 5001, 1)
    assert "/agent" in texts[0] and "where is my order" in texts[0]
    with db_sessionmaker() as session:
        stored = session.get_one(TelegramUpdate, update["update_id"])
        assert stored.handled_at is not None
        inbound = session.scalars(
            select(Message).where(Message.channel == "telegram", Message.text == "/help")
        ).one()
        assert inbound.channel_message_id == str(update["update_id"])


async def test_with_rasa_down_the_customer_gets_the_polite_fallback_and_the_message_is_kept(
    polling_app: FastAPI, fake_telegram: FakeTelegram, db_sessionmaker: sessionmaker[Session]
) -> None:
    fake_telegram.queue_update(text_update(5002, "where is my parcel??"))
    texts = await sent_to(fake_telegram, 5002, 1)
    assert texts == [FALLBACK_TEXT]
    assert fake_telegram.calls("sendChatAction", ok=True), "no 'typing…' while the bot was asked"
    with db_sessionmaker() as session:
        inbound = session.scalars(select(Message).where(Message.text == "where is my parcel??")).one()
        assert inbound.status == MessageStatus.FAILED and inbound.error


async def test_a_photo_gets_an_explanation_and_leaves_a_record(
    polling_app: FastAPI, fake_telegram: FakeTelegram, db_sessionmaker: sessionmaker[Session]
) -> None:
    update = text_update(5003, "")
    del update["message"]["text"]
    update["message"]["photo"] = [{"file_id": "abc", "file_unique_id": "abc1", "width": 90, "height": 90}]
    fake_telegram.queue_update(update)
    texts = await sent_to(fake_telegram, 5003, 1)
    assert texts == [NOT_TEXT_TEXT]
    with db_sessionmaker() as session:
        assert session.scalars(select(Message.text).where(Message.direction == "in")).all() == ["[photo]"]


async def test_the_webhook_route_is_closed_in_polling_mode(polling_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=polling_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(WEBHOOK_PATH, json=text_update(5004, "hi"))
    assert response.status_code == 404
