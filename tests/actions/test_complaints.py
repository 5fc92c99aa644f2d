"""The complaint actions: apology first, what the opening already said, proof of the order, filing."""

from __future__ import annotations

from decimal import Decimal
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
    TicketStatus,
    ValueTier,
)
from tests.support.chats import prove_by_code, track, web_conversation
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
    prove_by_code(crm, conversation, "ana.souza@example.com")
    form = ValidateComplaintForm()
    slots = await form.required_slots(list(SLOTS), CollectingDispatcher(), tracker(conversation), DOMAIN)
    assert "contact" not in slots
    dispatcher = CollectingDispatcher()
    refused = await form.validate_order_number("100004", dispatcher, tracker(conversation), DOMAIN)  # Jonas's
    assert refused["order_number"] is None
    assert "can't find order #100004 on your account" in dispatcher.messages[0]["text"]
    not_about_an_order = await form.validate_order_number(
        "none", CollectingDispatcher(), tracker(conversation), DOMAIN
    )
    assert not_about_an_order["order_number"] == "none"


async def test_an_unverified_chat_proves_the_order_with_the_contact(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    form = ValidateComplaintForm()
    wrong = CollectingDispatcher()
    result = await form.validate_contact(
        "nobody@example.com", wrong, tracker(conversation, order_number="100004"), DOMAIN
    )
    # The order number is kept: a corrected e-mail alone is then enough.
    assert result["contact"] is None and "order_number" not in result
    assert "don't match order #100004" in wrong.messages[0]["text"]
    right = await form.validate_contact(
        "jonas.becker@example.com",
        CollectingDispatcher(),
        tracker(conversation, order_number="100004"),
        DOMAIN,
    )
    assert right["contact"] == "jonas.becker@example.com"
    with crm() as session:
        assert session.get_one(Conversation, conversation.id).customer_id is not None


async def test_never_mind_files_nothing(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    result = await ValidateComplaintForm().validate_complaint_details(
        "never mind", dispatcher, tracker(conversation, "never mind"), DOMAIN
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
    # 100005, not 100004: a delivery complaint about 100004 joins its open delay ticket, KF-000003.
    await track(conversation, "100005", "jonas.becker@example.com")
    text, _ = await submit(
        conversation,
        crm,
        "a refund",
        order_number="100005",
        complaint_category="delivery_problem",
        complaint_details="two weeks late and nobody answers my emails",
        complaint_outcome="refund",
    )
    with crm() as session:
        order = session.scalars(select(Order).where(Order.number == "100005")).one()
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
        order_number="100005",
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


def tickets_on(session: Session, number: str) -> list[Ticket]:
    order = session.scalars(select(Order).where(Order.number == number)).one()
    return list(session.scalars(select(Ticket).where(Ticket.order_id == order.id).order_by(Ticket.id)))


def event_kinds(session: Session, ticket: Ticket) -> list[str]:
    return list(session.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)))


async def test_another_problem_with_the_order_gets_its_own_ticket(crm: sessionmaker[Session]) -> None:
    """Ana's KF-000001 (the chairs' loose rivet, order 100002) was resolved three days ago."""
    conversation = web_conversation(crm)
    await track(conversation, "100002", "ana.souza@example.com")
    said = "the lamp is broken, it won't turn on at all"
    text, _ = await submit(
        conversation,
        crm,
        "a replacement",
        order_number="100002",
        complaint_category="product_defect",
        complaint_details=said,
        complaint_outcome="replacement",
    )
    with crm() as session:
        chairs, lamp = tickets_on(session, "100002")
        assert chairs.reference == "KF-000001" and chairs.status is TicketStatus.RESOLVED
        assert "reopened" not in event_kinds(session, chairs)
        assert lamp.category == "product_defect" and said in lamp.description
        assert f"Your complaint is filed as {lamp.reference}" in text and "reopened" not in text


async def test_a_severe_story_added_to_a_ticket_raises_it_and_goes_to_a_person(
    crm: sessionmaker[Session],
) -> None:
    """Mei's KF-000002 (two of three lanterns in the parcel, order 100008) is a low-severity ticket."""
    conversation = web_conversation(crm)
    await track(conversation, "100008", "mei.chen@example.com")
    said = "the one lantern that did come caught fire and burned my hand"
    text, _ = await submit(
        conversation,
        crm,
        said,
        order_number="100008",
        complaint_category="wrong_or_missing_item",
        complaint_details=said,
        complaint_outcome="refund",
    )
    assert "already have an open ticket about this problem with order #100008, KF-000002" in text
    assert "Because this sounds serious, I'm passing you to a person" in text
    with crm() as session:
        (ticket,) = tickets_on(session, "100008")
        assert ticket.severity is Severity.HIGH
        assert ticket.priority in (TicketPriority.HIGH, TicketPriority.URGENT)  # from low
        kinds = event_kinds(session, ticket)
        assert "customer_message" in kinds and "severity_raised" in kinds
        words = session.scalars(
            select(TicketEvent.data).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "customer_message"
            )
        ).all()
        assert any(said in data["text"] for data in words)
        assert session.get_one(Conversation, conversation.id).mode is ConversationMode.PENDING_AGENT
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == conversation.id)).one()
        assert handoff.reason == "severe_complaint"


async def test_with_the_trigger_off_a_severe_story_added_to_a_ticket_offers_a_person(
    crm: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(complaint_actions, "trigger_on", lambda reason: False)
    conversation = web_conversation(crm)
    await track(conversation, "100008", "mei.chen@example.com")
    text, messages = await submit(
        conversation,
        crm,
        "it caught fire",
        order_number="100008",
        complaint_category="wrong_or_missing_item",
        complaint_details="the lantern they did send caught fire on my balcony",
        complaint_outcome="refund",
    )
    assert "KF-000002" in text and "put you through to a person right now" in text
    assert any(b["payload"] == "/request_human" for m in messages for b in m.get("buttons") or [])


async def test_a_delay_complaint_joins_the_open_delay_ticket(crm: sessionmaker[Session]) -> None:
    """Jonas's order 100004 is late and already has a delay ticket, KF-000003."""
    conversation = web_conversation(crm)
    await track(conversation, "100004", "jonas.becker@example.com")
    said = "the grill is days late and the tracking hasn't moved"
    text, _ = await submit(
        conversation,
        crm,
        said,
        order_number="100004",
        complaint_category="delivery_problem",
        complaint_details=said,
        complaint_outcome="information",
    )
    assert "order #100004, KF-000003" in text and "rather than opening a second one" in text
    with crm() as session:
        (ticket,) = tickets_on(session, "100004")
        assert ticket.reference == "KF-000003" and ticket.kind == "delivery"
        assert event_kinds(session, ticket)[-1] == "customer_message"


async def test_a_vip_customers_complaint_goes_to_a_person(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    with crm.begin() as session:
        vip = session.scalars(select(Customer).where(Customer.value_tier == ValueTier.VIP)).first()
        assert vip is not None
        order = session.scalars(select(Order).where(Order.customer_id == vip.id)).first()
        assert order is not None
        number = order.number
        vip_email = vip.email
    prove_by_code(crm, conversation, vip_email)
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


async def test_a_valuable_customer_at_risk_gets_a_person_for_a_complaint(crm: sessionmaker[Session]) -> None:
    """Not a VIP, but in the top fifth by lifetime value; their second complaint in 90 days puts them
    at risk, so the complaint goes to a person at once (bot/crm/priority.py)."""
    conversation = web_conversation(crm)
    with crm.begin() as session:
        customer = session.scalars(
            select(Customer).where(Customer.value_tier == ValueTier.KEY, Customer.churn_risk.is_(False))
        ).first()
        assert customer is not None
        customer.clv_future = Decimal("99999.00")  # the most valuable customer of the base
        order = session.scalars(select(Order).where(Order.customer_id == customer.id)).first()
        assert order is not None
        number, email = order.number, customer.email
        session.add(Ticket(reference="KF-VAL001", customer_id=customer.id, kind="complaint",
                           category="billing", subject="Charged twice", severity=Severity.LOW))  # fmt: skip
    prove_by_code(crm, conversation, email)
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
        assert handoff.reason == "valuable_at_risk"


async def test_opening_a_complaint_asks_nothing_before_the_first_question(crm: sessionmaker[Session]) -> None:
    """The start action clears the form's slots; clearing is not an answer, so nothing is validated."""
    conversation = web_conversation(crm)
    opening = "i want to file a complaint"
    started = await ActionStartComplaint().run(CollectingDispatcher(), tracker(conversation, opening), DOMAIN)
    after_start = make_tracker(
        conversation.sender_id,
        opening,
        "complaint",
        slots={**dict.fromkeys(SLOTS), **slots_of(started)},
        active_loop={"name": "complaint_form"},
        events=[
            {"event": "user", "text": opening, "parse_data": {"intent": {"name": "complaint"}}},
            {"event": "action", "name": "action_start_complaint"},
            *started,
        ],
    )
    dispatcher = CollectingDispatcher()
    await ValidateComplaintForm().run(dispatcher, after_start, DOMAIN)
    assert dispatcher.messages == []


async def test_the_answer_to_what_it_is_about_is_kept_as_the_story(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    said = "it's just late and nobody tells me anything"
    result = await ValidateComplaintForm().validate_complaint_category(
        said, CollectingDispatcher(), tracker(conversation, said), DOMAIN
    )
    assert result["complaint_category"] == "delivery_problem"
    assert result["complaint_details"] == said  # not asked "what happened" again


async def test_a_story_told_when_the_contact_is_asked_is_kept(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    said = "the lamp flickers and then the whole thing went dark after two days"
    dispatcher = CollectingDispatcher()
    result = await ValidateComplaintForm().validate_contact(
        said, dispatcher, tracker(conversation, said, complaint_details="it's broken"), DOMAIN
    )
    assert result["contact"] is None
    assert result["complaint_details"] == f"it's broken\n{said}"
    assert "noted" in dispatcher.messages[0]["text"]


async def test_frustration_at_the_order_question_is_kept_and_the_question_stays(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    said = "its been days, this is ridiculous"
    result = await ValidateComplaintForm().validate_order_number(
        said, CollectingDispatcher(), tracker(conversation, said), DOMAIN
    )
    assert result["order_number"] is None and said in result["complaint_details"]
    assert "complaint_cancelled" not in result


async def test_an_outcome_in_the_customers_words_is_kept_and_never_none(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    result = await ValidateComplaintForm().validate_complaint_outcome(
        "just make sure it doesn't happen again", CollectingDispatcher(), tracker(conversation), DOMAIN
    )
    assert result["complaint_outcome"] == "other: just make sure it doesn't happen again"


async def test_more_of_the_story_at_the_outcome_question_is_kept_and_the_question_stays(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    said = "the parcel was left out in the rain and everything inside is soaked"
    dispatcher = CollectingDispatcher()
    result = await ValidateComplaintForm().validate_complaint_outcome(
        said, dispatcher, tracker(conversation, said, complaint_details="nobody tells me anything"), DOMAIN
    )
    assert result["complaint_outcome"] is None
    assert result["complaint_details"] == f"nobody tells me anything\n{said}"
    assert "noted" in dispatcher.messages[0]["text"]


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ("it took three weeks and the tracking never updated once", True),
        ("where is my order now?", False),
        ("has it shipped yet", False),
    ],
)
async def test_a_statement_about_the_delivery_mid_complaint_is_story_not_a_tracking_question(
    crm: sessionmaker[Session], said: str, kept: bool
) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    events = await complaint_actions.ActionOrderStatusInComplaint().run(
        dispatcher, tracker(conversation, said, complaint_details="it was late"), DOMAIN
    )
    story = slots_of(events).get("complaint_details")
    assert (story == f"it was late\n{said}") is kept
    assert ("noted" in dispatcher.messages[0]["text"]) is kept


async def test_a_wish_that_mentions_what_went_wrong_is_the_outcome_not_more_story(
    crm: sessionmaker[Session],
) -> None:
    said = "i want you to pack it properly so it doesn't arrive damaged again"
    result = await ValidateComplaintForm().validate_complaint_outcome(
        said, CollectingDispatcher(), tracker(web_conversation(crm), said), DOMAIN
    )
    assert result["complaint_outcome"] == f"other: {said}"
