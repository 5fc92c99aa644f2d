"""Chats for the action tests: a web conversation in the CRM, and verifying it by tracking an order."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session, sessionmaker

from actions.orders import ActionOrderRequest
from bot.crm.conversations import get_or_create_conversation
from bot.crm.models import Conversation
from tests.support.trackers import make_tracker

# The order form as domain.yml declares it, for the actions that read the domain.
DOMAIN: dict[str, Any] = {
    "forms": {"order_form": {"required_slots": ["order_number", "contact"]}},
    "slots": {"order_number": {}, "contact": {}, "requested_slot": {}},
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
