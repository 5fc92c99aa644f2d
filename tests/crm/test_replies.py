"""Saved replies on a real database with hand-made CRM rows: what leads may save, which order and
ticket a chat is about, and filling placeholders (with markers where the CRM has no value)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import replies, sla
from bot.crm.models import (
    Agent,
    AgentRole,
    AuditLog,
    AuthorKind,
    Conversation,
    Customer,
    Direction,
    Handoff,
    Message,
    MessageStatus,
    Order,
    OrderStatus,
    Shipment,
    Ticket,
    VerificationAttempt,
)
from bot.errors import BadRequest, Conflict

PLACED = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
# 17:00 UTC on Wednesday 2 December is 18:00 in Berlin, the shipped policy's time zone.
DUE = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)


def _agent(session: Session, name: str = "Ada Lovelace", role: AgentRole = AgentRole.AGENT) -> Agent:
    agent = Agent(name=name, email=f"{name.split()[0].lower()}@kefu.test", password_hash="x", role=role)
    session.add(agent)
    session.flush()
    return agent


def _customer(session: Session, name: str = "Ana Souza", email: str = "ana@shop.test") -> Customer:
    customer = Customer(name=name, email=email)
    session.add(customer)
    session.flush()
    return customer


def _order(
    session: Session,
    customer: Customer,
    number: str,
    status: OrderStatus = OrderStatus.IN_TRANSIT,
    carrier: str | None = "DHL",
) -> Order:
    order = Order(
        number=number, customer_id=customer.id, status=status, placed_at=PLACED, total=Decimal("49.90")
    )
    if carrier is not None:
        order.shipments.append(
            Shipment(
                carrier=carrier,
                tracking_number=f"TRK{number}",
                status=status,
                promised_date=date(2026, 12, 4),
            )
        )
    session.add(order)
    session.flush()
    return order


def _chat(session: Session, customer: Customer | None, visitor: str = "v1") -> Conversation:
    conversation = Conversation(
        channel="web",
        external_id=visitor,
        sender_id=f"s-{visitor}",
        customer_id=customer.id if customer else None,
    )
    session.add(conversation)
    session.flush()
    return conversation


def _said(session: Session, conversation: Conversation, text: str) -> None:
    session.add(
        Message(
            conversation_id=conversation.id,
            channel="web",
            direction=Direction.INBOUND,
            author_kind=AuthorKind.CUSTOMER,
            text=text,
            status=MessageStatus.PROCESSED,
        )
    )
    session.flush()


def _handed_over(session: Session, conversation: Conversation, order: Order | None) -> Ticket:
    ticket = Ticket(
        reference="KF-000042",
        customer_id=conversation.customer_id,
        conversation_id=conversation.id,
        order_id=order.id if order else None,
        category="delivery_problem",
        subject="Parcel late",
        sla_resolution_due=DUE,
    )
    session.add(ticket)
    session.flush()
    session.add(Handoff(conversation_id=conversation.id, ticket_id=ticket.id, reason="customer_asked"))
    session.flush()
    return ticket


def _fill(session: Session, conversation: Conversation, agent: Agent, body: str) -> replies.Filled:
    facts = replies.chat_facts(session, conversation, agent, sla.default_policy())
    return replies.fill(body, facts)


EVERYTHING = (
    "Hi {customer.first_name}, order {order.number} is {order.status} with {order.carrier} "
    "({order.tracking_url}); expected {order.expected_date}. Ticket {ticket.reference}, "
    "due {ticket.due}. {agent.first_name}"
)


# --- filling -----------------------------------------------------------------------------------------


def test_every_placeholder_is_filled_from_the_hand_over_ticket_and_its_order(db_session: Session) -> None:
    agent = _agent(db_session)
    ana = _customer(db_session)
    _order(db_session, ana, "200001")
    late = _order(db_session, ana, "200002", OrderStatus.DELAYED, "DPD")
    chat = _chat(db_session, ana)
    _handed_over(db_session, chat, late)

    result = _fill(db_session, chat, agent, EVERYTHING)

    assert result.text == (
        "Hi Ana, order 200002 is delayed with DPD (https://tracking.dpd.de/status/en_US/parcel/TRK200002); "
        "expected Friday 4 December. Ticket KF-000042, "
        "due Wednesday 2 December, 18:00 (Europe/Berlin time). Ada"
    )
    assert result.missing == []


def test_missing_values_become_markers_the_agent_must_replace(db_session: Session) -> None:
    agent = _agent(db_session)
    ana = _customer(db_session)
    _order(db_session, ana, "200001")
    _order(db_session, ana, "200002", OrderStatus.PROCESSING, carrier=None)
    chat = _chat(db_session, ana)  # two orders, no ticket, no proof, no number mentioned

    result = _fill(
        db_session, chat, agent, "Hi {customer.first_name}, order {order.number}: {ticket.reference}."
    )

    assert result.text == "Hi Ana, order [order number?]: [ticket reference?]."
    assert [p.name for p in result.missing] == ["order.number", "ticket.reference"]
    assert replies.unfilled_markers(result.text) == ["[order number?]", "[ticket reference?]"]


def test_an_unshipped_order_has_no_tracking_link_and_an_unknown_carrier_gets_no_guess(
    db_session: Session,
) -> None:
    agent = _agent(db_session)
    ana = _customer(db_session)
    _order(db_session, ana, "200003", OrderStatus.PROCESSING, carrier=None)
    chat = _chat(db_session, ana)
    body = "{order.number} is {order.status}: {order.tracking_url}"
    assert (
        _fill(db_session, chat, agent, body).text
        == "200003 is being prepared in our warehouse: [tracking link?]"
    )

    mei = _customer(db_session, "Mei Chen", "mei@shop.test")
    _order(db_session, mei, "200004", carrier="Pigeon Post")
    assert (
        _fill(db_session, _chat(db_session, mei, "v2"), agent, body).text
        == "200004 is on its way: [tracking link?]"
    )


def test_the_order_proven_in_the_chat_or_named_by_its_customer_is_the_one(db_session: Session) -> None:
    agent = _agent(db_session)
    ana = _customer(db_session)
    for number in ("200001", "200002", "200003"):
        _order(db_session, ana, number)
    chat = _chat(db_session, ana)
    _said(db_session, chat, "it's about 200001")
    _said(db_session, chat, "no wait, 999999 or 200003")
    assert _fill(db_session, chat, agent, "{order.number}").text == "200003"

    db_session.add(VerificationAttempt(conversation_id=chat.id, order_number="200002", succeeded=True))
    db_session.flush()
    assert _fill(db_session, chat, agent, "{order.number}").text == "200002"


def test_a_stranger_naming_someone_elses_order_gets_no_details(db_session: Session) -> None:
    agent = _agent(db_session)
    ana = _customer(db_session)
    _order(db_session, ana, "200001")
    anonymous = _chat(db_session, None, "stranger")
    _said(db_session, anonymous, "where is 200001?")
    other = _customer(db_session, "Jonas Becker", "jonas@shop.test")
    jonas_chat = _chat(db_session, other, "jonas")
    _said(db_session, jonas_chat, "where is 200001?")

    body = "{customer.first_name}: {order.number} {order.status}"
    assert _fill(db_session, anonymous, agent, body).text == "[first name?]: [order number?] [order status?]"
    assert _fill(db_session, jonas_chat, agent, body).text == "Jonas: [order number?] [order status?]"


def test_an_unknown_placeholder_in_an_old_reply_is_a_gap_not_raw_braces(db_session: Session) -> None:
    result = _fill(
        db_session, _chat(db_session, None), _agent(db_session), "Hi {customer.nickname}, {see you}"
    )
    assert result.text == "Hi [customer.nickname?], {see you}"
    assert replies.unfilled_markers(result.text) == ["[customer.nickname?]"]


# --- writing -----------------------------------------------------------------------------------------


def test_leads_save_edit_archive_and_restore_with_an_audit_row_each(db_session: Session) -> None:
    lead = _agent(db_session, "Lena Lead", AgentRole.LEAD)
    reply = replies.create(
        db_session, lead, "where-is-order", "Where is my order", "Hi {customer.first_name}!"
    )
    replies.edit(db_session, lead, reply.id, {"body": "Hello {customer.first_name}!"})
    replies.edit(db_session, lead, reply.id, {"body": "Hello {customer.first_name}!"})  # no change, no row
    replies.set_archived(db_session, lead, reply.id, True)
    replies.set_archived(db_session, lead, reply.id, False)

    rows = db_session.scalars(select(AuditLog).where(AuditLog.record_type == "saved_reply")).all()
    assert [r.action for r in rows] == [
        "saved_reply_created",
        "saved_reply_edited",
        "saved_reply_archived",
        "saved_reply_restored",
    ]
    assert {r.actor for r in rows} == {f"agent:{lead.id}"}
    assert rows[1].details == {"changed": ["body"], "before": {"body": "Hi {customer.first_name}!"}}


@pytest.mark.parametrize(
    ("shortcut", "title", "body", "language", "message"),
    [
        ("ok", "Title", "   ", "en", "the reply text is empty"),
        ("ok", "Title", "x" * 2001, "en", "the reply text is 2001 characters; the limit is 2000"),
        ("ok", "Title", "Order {order.numbr}", "en", "unknown placeholder {order.numbr}"),
        ("Where Is", "Title", "x", "en", "must be lower-case letters and digits joined by hyphens"),
        ("", "Title", "x", "en", "the shortcut is empty"),
        ("ok", " ", "x", "en", "the title is empty"),
        ("ok", "Title", "x", "fr", "unknown language 'fr'"),
    ],
)
def test_what_agents_could_not_use_is_refused(
    db_session: Session, shortcut: str, title: str, body: str, language: str, message: str
) -> None:
    lead = _agent(db_session, "Lena Lead", AgentRole.LEAD)
    with pytest.raises(BadRequest, match=message.replace("{", r"\{").replace("(", r"\(")):
        replies.create(db_session, lead, shortcut, title, body, language)


def test_a_shortcut_is_unique_per_language_and_the_chat_gets_its_own_language_or_english(
    db_session: Session,
) -> None:
    lead = _agent(db_session, "Lena Lead", AgentRole.LEAD)
    replies.create(db_session, lead, "thanks", "Thanks", "Thank you!")
    with pytest.raises(Conflict, match="already a saved reply '/thanks' in en"):
        replies.create(db_session, lead, "thanks", "Thanks again", "Thanks!")
    replies.create(db_session, lead, "thanks", "Danke", "Danke!", "de")
    old = replies.create(db_session, lead, "old", "Old", "Old text")
    replies.set_archived(db_session, lead, old.id, True)

    listed = replies.for_chat(db_session, _chat(db_session, None))
    assert [(r.shortcut, r.language) for r in listed] == [("thanks", "en")]
