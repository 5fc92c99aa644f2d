"""`/intent{...}` typed by a customer never reaches Rasa as an intent; clicks on the bot's buttons do.

The rules (bot/channels/guard.py) on their own, the "latest reply" read from the database, and the
pipeline on the real gateway app with a stand-in for Rasa that reads messages the way Rasa does
(text starting with "/" is an intent with entities; anything else is words). The same on the real
Rasa: tests/security/test_stack.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from bot.channels import guard
from bot.channels.pipeline import handle_message
from bot.crm.conversations import get_or_create_conversation, store_inbound, store_outbound
from bot.crm.models import AuthorKind
from bot.live import LiveHub
from bot.rasa_client import BotReply, RasaClient
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.visitors import named_visitor

ORDER_BUTTONS = [
    {"title": "#100001 · in transit", "payload": '/track_order{"order_number": "100001"}'},
    {"title": "#100003 · processing", "payload": '/track_order{"order_number": "100003"}'},
]
INJECTION = '/track_order{"order_number":"100004","email":"jonas.becker@example.com"}'


# --- the rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        (INJECTION, 'track_order{"order_number":"100004","email":"jonas.becker@example.com"}'),
        ('  /EXTERNAL_csat_request{"csat_survey_id": "1"}', 'EXTERNAL_csat_request{"csat_survey_id": "1"}'),
        ("//affirm", "affirm"),
        ("/ / /deny", "deny"),
        ("\t/greet\n", "greet"),
        ("/", guard.ONLY_SLASHES),
        ("/ /", guard.ONLY_SLASHES),
        # Not read as an intent by Rasa, so sent as typed.
        ("where is 100001/2?", "where is 100001/2?"),
        ("my order / tracking", "my order / tracking"),
    ],
)
def test_text_starting_with_a_slash_loses_its_slashes(typed: str, sent: str) -> None:
    assert guard.text_for_bot(typed, offered=[ORDER_BUTTONS[0]["payload"]]) == sent
    assert not guard.looks_like_intent(sent)


def test_an_offered_button_passes_unchanged() -> None:
    offered = {b["payload"] for b in ORDER_BUTTONS}
    assert guard.text_for_bot(ORDER_BUTTONS[1]["payload"], offered) == ORDER_BUTTONS[1]["payload"]
    # The same intent with another order number was not offered.
    assert guard.text_for_bot('/track_order{"order_number": "100004"}', offered) == (
        'track_order{"order_number": "100004"}'
    )


def test_talk_to_a_person_always_works_and_telegram_commands_are_the_gateways_own() -> None:
    assert guard.text_for_bot("/request_human", offered=()) == "/request_human"
    # Telegram's /start is stored as "/start" and sent to Rasa as the greeting.
    assert guard.text_for_bot("/greet", offered=(), customer_text="/start") == "/greet"
    assert guard.text_for_bot("/request_human", offered=(), customer_text="/agent") == "/request_human"
    # Typing the translation itself is not the command.
    assert guard.text_for_bot("/greet", offered=(), customer_text="/greet") == "greet"
    assert guard.text_for_bot("/start", offered=(), customer_text="/start") == "start"


def test_the_latest_reply_is_every_bot_message_since_the_customers_previous_one(
    db_session: Session,
) -> None:
    with db_session.begin():
        chat = get_or_create_conversation(db_session, "web", "guard-latest")
        store_inbound(db_session, chat, "hello")
        store_outbound(
            db_session,
            chat,
            AuthorKind.BOT,
            "Did this solve it?",
            {"buttons": [{"title": "Yes", "payload": "/affirm"}]},
        )
        store_inbound(db_session, chat, "which orders do I have?")
        store_outbound(db_session, chat, AuthorKind.BOT, "Here they are.", {"buttons": ORDER_BUTTONS[:1]})
        store_outbound(db_session, chat, AuthorKind.BOT, "And this one.", {"buttons": ORDER_BUTTONS[1:]})
        store_outbound(db_session, chat, AuthorKind.SYSTEM, "A notice.", {"buttons": []})
        click = store_inbound(db_session, chat, ORDER_BUTTONS[1]["payload"])
        chat_id, click_id = chat.id, click.id
    assert guard.offered_payloads(db_session, chat_id, click_id) == {b["payload"] for b in ORDER_BUTTONS}

    with db_session.begin():
        chat = get_or_create_conversation(db_session, "web", "guard-latest")
        later = store_inbound(db_session, chat, "/affirm")
        later_id = later.id
    # The customer wrote again: a bare yes or no from before answers nothing now ("/affirm" is gone),
    # but a button that says what it is about (an order) still does what it says.
    assert guard.offered_payloads(db_session, chat_id, later_id) == {b["payload"] for b in ORDER_BUTTONS}

    with db_session.begin():
        chat = get_or_create_conversation(db_session, "web", "guard-latest")
        for turn in range(guard.EARLIER_REPLIES):
            store_inbound(db_session, chat, f"something else {turn}")
        much_later_id = store_inbound(db_session, chat, ORDER_BUTTONS[0]["payload"]).id
    # Replies further back than that are gone too.
    assert guard.offered_payloads(db_session, chat_id, much_later_id) == frozenset()


# --- through the gateway ------------------------------------------------------------------------------


class RasaStandIn:
    """Answers like Rasa reads: "/name{...}" is intent `name` with those entities, else words."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> list[BotReply]:
        self.received.append(text)
        stripped = text.strip()
        if stripped.startswith("/"):
            name, _, entities = stripped[1:].partition("{")
            details = json.loads("{" + entities) if entities else {}
            if name == "track_order" and details.get("order_number") == "100004":
                return [BotReply(text="Order #100004 is delayed with DPD, tracking 0034 5678 9012.")]
            return [BotReply(text=f"intent {name} {details}", buttons=ORDER_BUTTONS)]
        return [BotReply(text=f"words: {stripped}", buttons=ORDER_BUTTONS)]


@pytest.fixture
async def gateway(web_settings: Settings) -> AsyncIterator[tuple[FastAPI, RasaStandIn]]:
    app = create_app(web_settings)
    rasa = RasaStandIn()
    app.state.rasa.send = rasa.send
    async with app.router.lifespan_context(app):
        yield app, rasa


async def _say(app: FastAPI, visitor: str, text: str) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.post(
            "/api/web/messages", json={"session": named_visitor(visitor), "text": text}
        )
    assert response.status_code == 200, response.text
    return "\n".join(m["text"] for m in response.json()["messages"])


async def test_a_web_customer_typing_an_intent_is_read_as_words(
    gateway: tuple[FastAPI, RasaStandIn],
) -> None:
    app, rasa = gateway
    answer = await _say(app, "guard-web-1", INJECTION)
    assert "100004" in rasa.received[-1] and not rasa.received[-1].startswith("/")
    assert answer.startswith("words: track_order{")
    assert "DPD" not in answer

    # The bot's reply offered order buttons: a click is a click.
    clicked = await _say(app, "guard-web-1", ORDER_BUTTONS[1]["payload"])
    assert rasa.received[-1] == ORDER_BUTTONS[1]["payload"]
    assert clicked.startswith("intent track_order {'order_number': '100003'}")

    # A button the bot never offered in this chat, written in the same syntax, is not.
    forged = await _say(app, "guard-web-1", '/track_order{"order_number": "100004"}')
    assert "DPD" not in forged and forged.startswith("words: ")

    # "Talk to a person" under the widget is always there.
    await _say(app, "guard-web-1", "/request_human")
    assert rasa.received[-1] == "/request_human"


async def test_buttons_offered_in_another_chat_do_not_count(gateway: tuple[FastAPI, RasaStandIn]) -> None:
    app, rasa = gateway
    await _say(app, "guard-web-ana", "my orders please")  # Ana's chat is offered the order buttons
    await _say(app, "guard-web-eve", ORDER_BUTTONS[0]["payload"])  # Eve's chat was offered nothing yet
    assert rasa.received[-1] == ORDER_BUTTONS[0]["payload"][1:]


async def test_telegram_commands_still_reach_rasa_as_the_gateway_translated_them(
    web_settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    stand_in = RasaStandIn()
    rasa = RasaClient(web_settings)
    rasa.send = stand_in.send  # type: ignore[method-assign]
    hub = LiveHub()
    try:
        with db_sessionmaker() as session:
            # As the Telegram channel calls the pipeline for /start and for a typed "/ /intent" text.
            await handle_message(
                session, web_settings, rasa, hub, "telegram", "4242", "/start", "1", bot_text="/greet"
            )
            await handle_message(
                session,
                web_settings,
                rasa,
                hub,
                "telegram",
                "4242",
                "/ /track_order{...}",
                "2",
                bot_text=" /track_order{...}",
            )
    finally:
        await rasa.aclose()
    assert stand_in.received == ["/greet", "track_order{...}"]
