"""Chats for the action tests: a web conversation in the CRM, and verifying it by tracking an order."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import actions.common
from actions.orders import ActionCodeChecked, ActionOrderRequest
from actions.proof import PROVED, ValidateCodeForm
from bot.crm import proof
from bot.crm.conversations import get_or_create_conversation
from bot.crm.models import Conversation, Customer
from tests.support.mail import MailSink
from tests.support.trackers import make_tracker

# The order form as domain.yml declares it, for the actions that read the domain.
DOMAIN: dict[str, Any] = {
    "forms": {"order_form": {"required_slots": ["order_number", "contact"]}},
    "slots": {"order_number": {}, "contact": {}, "requested_slot": {}, "one_time_code": {}, "code_for": {}},
}


def web_conversation(crm: sessionmaker[Session], visitor: str = "visitor-1") -> Conversation:
    """The CRM conversation of a widget visitor, created as the gateway would."""
    with crm.begin() as session:
        return get_or_create_conversation(session, "web", visitor)


def tracker_for(conversation: Conversation, slots: dict[str, Any] | None = None, **latest: Any) -> Tracker:
    """The order form's slots, empty unless given; `latest` goes to `make_tracker` (text, metadata...)."""
    slots = {"order_number": None, "contact": None, "requested_slot": None, **(slots or {})}
    return make_tracker(conversation.sender_id, slots=slots, **latest)


async def track(conversation: Conversation, number: str, contact: str | None) -> tuple[list[Any], str]:
    """Ask for an order's status with a proof; the events and the text the customer got."""
    dispatcher = CollectingDispatcher()
    events = await ActionOrderRequest().run(
        dispatcher, tracker_for(conversation, {"order_number": number, "contact": contact}), DOMAIN
    )
    return events, "\n".join(m.get("text") or "" for m in dispatcher.messages)


def code_for(events: list[Any]) -> str:
    """What the code just sent is for (the code_for slot an action set), failing if none was sent."""
    values = [e["value"] for e in events if e.get("event") == "slot" and e.get("name") == "code_for"]
    assert values and values[-1], f"no one-time code was sent: {events}"
    return str(values[-1])


async def enter_code(conversation: Conversation, sink: MailSink, events: list[Any]) -> tuple[str, list[Any]]:
    """After an action sent a one-time code (its `events`): type the code from the mail, as the code
    form checks it, then run what follows it; the text the customer got and the events."""
    purpose = code_for(events)
    code = sink.latest_code()
    dispatcher = CollectingDispatcher()
    tracker = tracker_for(conversation, {"code_for": purpose, "requested_slot": "one_time_code"}, text=code)
    checked = await ValidateCodeForm().validate_one_time_code(code, dispatcher, tracker, DOMAIN)
    assert checked["one_time_code"] == PROVED, dispatcher.messages
    dispatcher = CollectingDispatcher()
    tracker = tracker_for(conversation, {"code_for": purpose, "one_time_code": PROVED})
    after = await ActionCodeChecked().run(dispatcher, tracker, DOMAIN)
    return "\n".join(m.get("text") or "" for m in dispatcher.messages), after


def prove_by_code(crm: sessionmaker[Session], conversation: Conversation, email: str) -> None:
    """Make the chat its customer's by a one-time code, as typing the e-mailed code does."""
    with crm.begin() as session:
        chat = session.get(Conversation, conversation.id)
        customer = session.scalars(select(Customer).where(Customer.email == email)).one()
        assert chat is not None
        issued = proof.issue_code(session, chat, customer, actions.common.settings())
        assert issued is not None
        assert proof.check_code(session, chat, issued.code, actions.common.settings()) == "ok"
