"""The complaint actions: apology first, what the opening already said, proof of the order, filing."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions import complaints as complaint_actions
from actions.complaints import (
    ActionStartComplaint,
    ActionSubmitComplaint,
    ValidateComplaintForm,
)
from bot.crm.conversations import store_inbound
from bot.crm.models import (
    Conversation,
    ConversationMode,
    Customer,
    Handoff,
    Order,
    Severity,
    Ticket,
    TicketEvent,
    TicketPriority,
    ValueTier,
)
from tests.support.chats import track, web_conversation
from tests.support.trackers import make_tracker

DOMAIN: dict[str, Any] = {
    "forms": {
        "complaint_form": {
            "required_slots": [
                "order_number",
                "contact",
                "complaint_category",
                "complaint_details",
                "complaint_outcome",
            ]
        }
    },
}
SLOTS = ("order_number", "contact", "complaint_category", "complaint_details", "complaint_outcome")


def tracker(
    conversation: Conversation, text: str = "", message_id: int | None = None, **slots: Any
) -> Tracker:
    return make_tracker(
        conversation.sender_id,
        text,
        "complaint",
        slots={**dict.fromkeys(SLOTS), "complaint_opening": None, **slots},
        active_loop={"name": "complaint_form"},
        metadata={"message_id": message_id} if message_id else None,
    )


def slots_of(events: list[Any]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


async def test_the_apology_comes_first_and_a_told_story_is_not_asked_again(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    events = await ActionStartComplaint().run(
        dispatcher, tracker(conversation, "my new tent arrived torn and I want a replacement"), DOMAIN
    )
    assert dispatcher.messages[0]["text"].startswith("I'm sorry")
    filled = slots_of(events)
    assert filled["complaint_category"] == "product_defect" and filled["complaint_outcome"] == "replacement"
    assert filled["complaint_details"] == "my new tent arrived torn and I want a replacement"

    bare = await ActionStartComplaint().run(
        CollectingDispatcher(), tracker(conversation, "I want to complain"), DOMAIN
    )
    assert {slots_of(bare)[s] for s in ("complaint_category", "complaint_details", "complaint_outcome")} == {
        None
    }


async def test_a_verified_chat_is_not_asked_for_contact_and_cannot_name_someone_elses_order(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    await track(conversation, "100001", "ana.souza@example.com")  # proves Ana
    form = ValidateComplaintForm()
    slots = await form.required_slots(list(SLOTS), CollectingDispatcher(), tracker(conversation), DOMAIN)
    assert "contact" not in slots
    dispatcher = CollectingDispatcher()
    refused = await form.validate_order_number("100004", dispatcher, tracker(conversation), DOMAIN)  # Jonas's
    assert refused == {"order_number": None} and "can't find order #100004" in dispatcher.messages[0]["text"]
    assert await form.validate_order_number(
        "none", CollectingDispatcher(), tracker(conversation), DOMAIN
    ) == {"order_number": "none"}


async def test_an_unverified_chat_proves_the_order_with_the_contact(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    form = ValidateComplaintForm()
    wrong = CollectingDispatcher()
    result = await form.validate_contact(
        "nobody@example.com", wrong, tracker(conversation, order_number="100004"), DOMAIN
    )
    assert result == {"order_number": None, "contact": None} and "don't match" in wrong.messages[0]["text"]
    right = await form.validate_contact(
        "jonas.becker@example.com",
        CollectingDispatcher(),
        tracker(conversation, order_number="100004"),
        DOMAIN,
    )
    assert right == {"contact": "jonas.becker@example.com"}
    with crm() as session:
        assert session.get_one(Conversation, conversation.id).customer_id is not None


async def test_never_mind_files_nothing(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    result = await ValidateComplaintForm().validate_complaint_details(
        "never mind", dispatcher, tracker(conversation), DOMAIN
    )
    assert result["complaint_cancelled"] is True
    events = await ActionSubmitComplaint().run(
        CollectingDispatcher(), tracker(conversation, complaint_cancelled=True), DOMAIN
    )
    assert SlotSet("complaint_cancelled", None) in events
    with crm() as session:
        assert session.scalars(select(Ticket).where(Ticket.conversation_id == conversation.id)).all() == []


async def submit(
    conversation: Conversation, crm: sessionmaker[Session], text: str, **slots: Any
) -> tuple[str, list[Any]]:
    with crm.begin() as session:
        message_id = store_inbound(session, session.get_one(Conversation, conversation.id), text).id
    dispatcher = CollectingDispatcher()
    await ActionSubmitComplaint().run(
        dispatcher,
        tracker(conversation, text, message_id, complaint_opening=slots.get("complaint_details"), **slots),
        DOMAIN,
    )
    return "\n".join(m.get("text") or "" for m in dispatcher.messages), dispatcher.messages


async def test_filing_creates_a_ticket_with_a_reference_a_promise_and_events(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    await track(conversation, "100004", "jonas.becker@example.com")
    text, _ = await submit(
        conversation,
        crm,
        "a refund",
        order_number="100004",
        complaint_category="delivery_problem",
        complaint_details="two weeks late and nobody answers my emails",
        complaint_outcome="refund",
    )
    with crm() as session:
        order = session.scalars(select(Order).where(Order.number == "100004")).one()
        ticket = session.scalars(
            select(Ticket).where(Ticket.order_id == order.id, Ticket.kind == "complaint")
        ).one()
        assert ticket.reference in text and "reply here by" in text and "sorted by" in text
        assert ticket.severity is Severity.MEDIUM and ticket.priority is TicketPriority.NORMAL
        assert ticket.customer_id == order.customer_id and ticket.desired_outcome == "refund"
        kinds = session.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)).all()
        assert kinds == ["created", "order_status"]

    # The same order again: the existing ticket gets the new words, no second ticket.
    again, _ = await submit(
        conversation,
        crm,
        "still nothing",
        order_number="100004",
        complaint_category="delivery_problem",
        complaint_details="it still has not arrived",
        complaint_outcome="information",
    )
    assert ticket.reference in again and "rather than opening a second one" in again
    with crm() as session:
        assert (
            len(
                session.scalars(
                    select(Ticket).where(Ticket.order_id == order.id, Ticket.kind == "complaint")
                ).all()
            )
            == 1
        )
        kinds = session.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)).all()
        assert "customer_message" in kinds


async def test_a_severe_complaint_goes_straight_to_a_person_with_its_ticket(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    text, _ = await submit(
        conversation,
        crm,
        "a refund",
        order_number="none",
        contact="someone@example.com",
        complaint_category="product_defect",
        complaint_details="the heater caught fire in my garden",
        complaint_outcome="refund",
    )
    assert "Because this sounds serious, I'm passing you to a person" in text
    with crm() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.conversation_id == conversation.id)).one()
        assert ticket.severity is Severity.HIGH and ticket.priority is TicketPriority.HIGH
        assert (
            ticket.contact == "someone@example.com" and ticket.order_id is None and ticket.customer_id is None
        )
        assert session.get_one(Conversation, conversation.id).mode is ConversationMode.PENDING_AGENT
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == conversation.id)).one()
        assert handoff.reason == "severe_complaint" and handoff.ticket_id == ticket.id


async def test_with_the_trigger_off_a_severe_complaint_offers_a_person(
    crm: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(complaint_actions, "trigger_on", lambda reason: False)
    conversation = web_conversation(crm)
    text, messages = await submit(
        conversation,
        crm,
        "a refund",
        order_number="none",
        contact="someone@example.com",
        complaint_category="product_defect",
        complaint_details="the heater caught fire in my garden",
        complaint_outcome="refund",
    )
    assert "put you through to a person right now" in text
    assert any(b["payload"] == "/request_human" for m in messages for b in m.get("buttons") or [])
    with crm() as session:
        assert session.get_one(Conversation, conversation.id).mode is ConversationMode.BOT


async def test_a_vip_customers_complaint_goes_to_a_person(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    with crm.begin() as session:
        vip = session.scalars(select(Customer).where(Customer.value_tier == ValueTier.VIP)).first()
        assert vip is not None
        order = session.scalars(select(Order).where(Order.customer_id == vip.id)).first()
        assert order is not None
        session.get_one(Conversation, conversation.id).customer_id = vip.id
        number = order.number
    text, _ = await submit(
        conversation,
        crm,
        "the colour is not what the picture showed",
        order_number=number,
        complaint_category="wrong_item",
        complaint_details="the colour is not what the picture showed",
        complaint_outcome="replacement",
    )
    assert "passing you to a person" in text
    with crm() as session:
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == conversation.id)).one()
        assert handoff.reason == "vip_complaint"
