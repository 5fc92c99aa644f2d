"""Order-tracking actions against a seeded CRM: Tracker from a dict, CollectingDispatcher."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from actions.handoff import ActionRequestHuman
from actions.orders import (
    LOCKED_OUT,
    NOT_FOUND,
    ActionAskOrderNumber,
    ActionListOrders,
    ActionOpenDelayTicket,
    ActionTrackOrder,
    ValidateOrderForm,
)
from bot.crm import db
from bot.crm.conversations import get_or_create_conversation, store_inbound
from bot.crm.models import (
    AuditLog,
    Conversation,
    ConversationMode,
    CustomerIdentity,
    Ticket,
    VerificationAttempt,
)
from bot.crm.seed import seed_demo_data
from bot.settings import Settings

DOMAIN: dict[str, Any] = {
    "forms": {"order_form": {"required_slots": ["order_number", "contact"]}},
    "slots": {"order_number": {}, "contact": {}, "requested_slot": {}},
}


@pytest.fixture
def crm(settings: Settings, db_sessionmaker: sessionmaker[Session]) -> sessionmaker[Session]:
    """A seeded CRM that the actions use as their process-wide database."""
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, date(2026, 11, 20))
    return db.configure(settings)


def web_conversation(crm: sessionmaker[Session], visitor: str = "visitor-1") -> Conversation:
    with crm.begin() as session:
        return get_or_create_conversation(session, "web", visitor)


def tracker_for(conversation: Conversation, slots: dict[str, Any] | None = None, **latest: Any) -> Tracker:
    return Tracker.from_dict(
        {
            "sender_id": conversation.sender_id,
            "slots": {"order_number": None, "contact": None, "requested_slot": None, **(slots or {})},
            "latest_message": {
                "text": latest.get("text", ""),
                "intent": {},
                "entities": [],
                "metadata": latest.get("metadata", {}),
            },
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": latest.get("active_loop", {}),
            "latest_action_name": None,
        }
    )


async def track(conversation: Conversation, number: str, contact: str | None) -> tuple[list[Any], str]:
    dispatcher = CollectingDispatcher()
    events = await ActionTrackOrder().run(
        dispatcher, tracker_for(conversation, {"order_number": number, "contact": contact}), DOMAIN
    )
    return events, "\n".join(m.get("text") or "" for m in dispatcher.messages)


async def test_owner_gets_status_carrier_tracking_and_date(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    events, text = await track(conversation, "100001", "Ana.Souza@example.com")
    assert "#100001" in text and "DHL" in text
    assert "tracking number" in text and "Latest update" in text and "Expected delivery" in text
    assert SlotSet("order_number", None) in events
    with crm() as session:
        linked = session.get(Conversation, conversation.id)
        assert linked is not None and linked.customer_id is not None
        identity = session.scalars(
            select(CustomerIdentity).where(CustomerIdentity.external_id == "visitor-1")
        ).one()
        assert identity.customer_id == linked.customer_id
        assert (
            session.scalar(
                select(func.count()).select_from(AuditLog).where(AuditLog.action == "conversation_verified")
            )
            == 1
        )


async def test_phone_number_in_another_format_proves_ownership(crm: sessionmaker[Session]) -> None:
    _, text = await track(web_conversation(crm), "100004", "0151 2345 6789")
    assert "delayed" in text and "sorry" in text.lower()
    # Its promised date has passed: no stale "expected delivery" is promised again.
    assert "It was due on" in text and "Expected delivery" not in text


async def test_a_corrected_email_alone_is_enough_to_retry(crm: sessionmaker[Session]) -> None:
    events, _ = await track(web_conversation(crm), "100001", "ana@wrong.example")
    assert events == [SlotSet("contact", None)]  # the order number is kept for the retry


@pytest.mark.parametrize(
    ("number", "contact"),
    [
        ("100001", "jonas.becker@example.com"),  # someone else's order
        ("100001", "nobody@example.com"),  # wrong e-mail
        ("199999", "ana.souza@example.com"),  # no such order
    ],
)
async def test_every_failed_proof_gets_the_same_reply(
    crm: sessionmaker[Session], number: str, contact: str
) -> None:
    conversation = web_conversation(crm)
    _, text = await track(conversation, number, contact)
    assert text == NOT_FOUND
    with crm() as session:
        assert session.get(Conversation, conversation.id).customer_id is None  # type: ignore[union-attr]
        attempts = session.scalars(select(VerificationAttempt)).all()
        assert [a.succeeded for a in attempts] == [False]


async def test_five_failures_lock_the_conversation_and_are_logged(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    replies = [(await track(conversation, "100001", f"guess{i}@example.com"))[1] for i in range(5)]
    assert replies[:4] == [NOT_FOUND] * 4
    assert replies[4] == LOCKED_OUT
    # Even the right details are refused now, without being checked.
    _, text = await track(conversation, "100001", "ana.souza@example.com")
    assert text == LOCKED_OUT
    with crm() as session:
        assert session.get(Conversation, conversation.id).customer_id is None  # type: ignore[union-attr]
        assert (
            session.scalar(
                select(func.count()).select_from(AuditLog).where(AuditLog.action == "verification_locked")
            )
            == 1
        )


async def test_failures_on_one_order_number_lock_it_across_conversations(crm: sessionmaker[Session]) -> None:
    for i in range(5):
        await track(web_conversation(crm, f"attacker-{i}"), "100002", f"x{i}@example.com")
    _, text = await track(web_conversation(crm, "real-owner"), "100002", "ana.souza@example.com")
    assert text == LOCKED_OUT


async def test_verified_conversation_needs_only_the_number(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    await track(conversation, "100001", "ana.souza@example.com")
    slots = await ValidateOrderForm().required_slots(
        ["order_number", "contact"], CollectingDispatcher(), tracker_for(conversation), DOMAIN
    )
    assert slots == ["order_number"]
    _, text = await track(conversation, "100003", None)
    assert "#100003" in text and "hasn't shipped" in text
    # Another customer's order stays hidden even from a verified chat, whatever the client sends.
    _, text = await track(conversation, "100004", None)
    assert text == NOT_FOUND


async def test_other_orders_listed_after_verification(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    events = await ActionListOrders().run(dispatcher, tracker_for(conversation), DOMAIN)
    assert events == [FollowupAction("order_form")]

    await track(conversation, "100001", "ana.souza@example.com")
    dispatcher = CollectingDispatcher()
    await ActionListOrders().run(dispatcher, tracker_for(conversation), DOMAIN)
    (message,) = dispatcher.messages
    titles = [b["title"] for b in message["buttons"]]
    assert any("#100001" in t for t in titles) and any("#100003" in t for t in titles)
    assert not any("#100004" in t for t in titles)


async def test_ask_order_number_offers_recent_orders_once_verified(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    await ActionAskOrderNumber().run(dispatcher, tracker_for(conversation), DOMAIN)
    assert "6 digits" in dispatcher.messages[0]["text"] and not dispatcher.messages[0]["buttons"]

    await track(conversation, "100001", "ana.souza@example.com")
    dispatcher = CollectingDispatcher()
    await ActionAskOrderNumber().run(dispatcher, tracker_for(conversation), DOMAIN)
    assert dispatcher.messages[0]["buttons"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("#100045", "100045"), ("it's 100045 i think", "100045"), ("12345", None), ("no idea", None)],
)
async def test_order_number_validation(value: str, expected: str | None, crm: sessionmaker[Session]) -> None:
    dispatcher = CollectingDispatcher()
    result = await ValidateOrderForm().validate_order_number(
        value, dispatcher, tracker_for(web_conversation(crm)), DOMAIN
    )
    assert result == {"order_number": expected}
    assert bool(dispatcher.messages) == (expected is None)


async def test_delay_ticket_is_created_once_per_message(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    await track(conversation, "100004", "jonas.becker@example.com")
    with crm.begin() as session:
        message = store_inbound(session, session.get(Conversation, conversation.id), "Open a ticket")  # type: ignore[arg-type]
        message_id = message.id
    tracker = tracker_for(conversation, {"order_number": "100004"}, metadata={"message_id": message_id})
    texts = []
    for _ in range(2):  # a retried delivery of the same customer message
        dispatcher = CollectingDispatcher()
        await ActionOpenDelayTicket().run(dispatcher, tracker, DOMAIN)
        texts.append(dispatcher.messages[0]["text"])
    with crm() as session:
        tickets = session.scalars(select(Ticket)).all()
    assert len(tickets) == 1
    assert (
        tickets[0].reference.startswith("KF-") and tickets[0].reference in texts[0] and texts[0] == texts[1]
    )
    assert tickets[0].category == "delivery_problem"


async def test_delay_ticket_refused_for_an_unverified_chat(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    await ActionOpenDelayTicket().run(
        dispatcher, tracker_for(conversation, {"order_number": "100004"}), DOMAIN
    )
    with crm() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 0


async def test_request_human_puts_the_chat_in_the_queue(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    events = await ActionRequestHuman().run(dispatcher, tracker_for(conversation), DOMAIN)
    assert events and events[0]["event"] == "pause"
    with crm() as session:
        assert session.get(Conversation, conversation.id).mode is ConversationMode.PENDING_AGENT  # type: ignore[union-attr]
