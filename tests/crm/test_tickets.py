"""The ticket life cycle: legal and illegal moves, reopening, idempotency, priority and follow-ups."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.crm import sla, tickets
from bot.crm.conversations import get_or_create_conversation, store_inbound
from bot.crm.models import (
    CsatSurvey,
    Order,
    Severity,
    SurveyStatus,
    Ticket,
    TicketPriority,
    TicketStatus,
    ValueTier,
    utcnow,
)
from bot.crm.priority import priority_for
from bot.crm.tickets import IllegalTransition
from bot.demo.seed import seed_demo_data

S = TicketStatus
REOPEN_DAYS = 7


@pytest.fixture
def session(db_session: Session) -> Session:
    seed_demo_data(db_session, date(2026, 11, 20))
    db_session.flush()
    return db_session


def new_ticket(session: Session, **overrides: object) -> Ticket:
    conversation = get_or_create_conversation(session, "web", "visitor-tickets")
    fields: dict[str, object] = {
        "kind": "complaint",
        "category": "product_defect",
        "subject": "Broken lantern",
        "actor": "bot",
        "conversation_id": conversation.id,
    }
    fields.update(overrides)
    return tickets.open_ticket(session, policy=sla.default_policy(), **fields)  # type: ignore[arg-type]


def test_a_new_ticket_has_a_reference_a_due_time_and_a_created_event(session: Session) -> None:
    ticket = new_ticket(session)
    assert ticket.reference == f"KF-{ticket.id:06d}"
    assert ticket.status is S.NEW
    assert ticket.sla_first_response_due is not None and ticket.sla_resolution_due is not None
    assert ticket.sla_first_response_due < ticket.sla_resolution_due
    assert [e.kind for e in ticket.events] == ["created"]


def test_the_whole_life_cycle_records_every_step(session: Session) -> None:
    ticket = new_ticket(session)
    tickets.change_status(session, ticket, S.OPEN, "agent:3")
    tickets.change_status(session, ticket, S.PENDING_CUSTOMER, "agent:3", note="asked for a photo")
    tickets.change_status(session, ticket, S.OPEN, "customer")
    tickets.change_status(session, ticket, S.RESOLVED, "agent:3", resolution="Sent a new lantern.")
    tickets.change_status(session, ticket, S.CLOSED, "system")
    session.flush()
    session.refresh(ticket)
    moves = [
        (e.actor, e.data.get("from"), e.data.get("to")) for e in ticket.events if e.kind == "status_changed"
    ]
    assert moves == [
        ("agent:3", "new", "open"),
        ("agent:3", "open", "pending_customer"),
        ("customer", "pending_customer", "open"),
        ("agent:3", "open", "resolved"),
        ("system", "resolved", "closed"),
    ]
    assert ticket.first_responded_at is not None and ticket.resolved_at is not None
    assert ticket.closed_at is not None and ticket.resolution == "Sent a new lantern."


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], S.CLOSED),  # new -> closed: resolve it first
        ([], S.NEW),
        ([S.OPEN], S.NEW),
        ([S.OPEN, S.RESOLVED], S.PENDING_CUSTOMER),
        ([S.OPEN, S.RESOLVED, S.CLOSED], S.OPEN),  # closed is final
        ([S.OPEN, S.RESOLVED, S.CLOSED], S.RESOLVED),
    ],
)
def test_illegal_moves_are_refused_and_name_the_allowed_ones(
    session: Session, path: list[TicketStatus], illegal: TicketStatus
) -> None:
    ticket = new_ticket(session)
    for status in path:
        tickets.change_status(session, ticket, status, "agent:1", resolution="done")
    before = ticket.status
    with pytest.raises(IllegalTransition) as refused:
        tickets.change_status(session, ticket, illegal, "agent:1", resolution="done")
    assert refused.value.status_code == 409
    assert f"is {before.value}" in refused.value.message and illegal.value in refused.value.message
    assert ticket.status is before


def test_resolving_needs_a_resolution_and_asks_the_customer_for_a_rating(session: Session) -> None:
    ticket = new_ticket(session)
    with pytest.raises(IllegalTransition, match="say how it was resolved"):
        tickets.change_status(session, ticket, S.RESOLVED, "agent:1")
    tickets.change_status(session, ticket, S.RESOLVED, "agent:1", resolution="Refunded.")
    survey = session.scalars(select(CsatSurvey).where(CsatSurvey.ticket_id == ticket.id)).one()
    assert survey.trigger == "ticket_resolved" and survey.status is SurveyStatus.PENDING


def test_a_customer_reply_reopens_within_the_window_and_not_after(session: Session) -> None:
    ticket = new_ticket(session)
    tickets.change_status(session, ticket, S.RESOLVED, "agent:1", resolution="Fixed.")
    assert tickets.customer_replied(session, ticket, "still broken", REOPEN_DAYS) == "reopened"
    assert ticket.status is S.OPEN and ticket.resolved_at is None
    session.flush()
    session.refresh(ticket)
    assert [e.kind for e in ticket.events][-2:] == ["customer_message", "reopened"]

    later = new_ticket(session, source_message_id=None)
    tickets.change_status(session, later, S.RESOLVED, "agent:1", resolution="Fixed.")
    later.resolved_at = utcnow() - timedelta(days=REOPEN_DAYS + 1)
    assert tickets.customer_replied(session, later, "broken again", REOPEN_DAYS) == "closed"
    assert later.status is S.RESOLVED


def test_a_reply_while_waiting_for_the_customer_puts_the_ticket_back_to_open(session: Session) -> None:
    ticket = new_ticket(session)
    tickets.change_status(session, ticket, S.PENDING_CUSTOMER, "agent:1")
    moved = tickets.note_customer_message(
        session, ticket.conversation_id or 0, "here's the photo", REOPEN_DAYS
    )
    assert moved == 1 and ticket.status is S.OPEN


def test_close_resolved_closes_only_tickets_past_the_window(session: Session) -> None:
    old, recent = new_ticket(session), new_ticket(session)
    for ticket in (old, recent):
        tickets.change_status(session, ticket, S.RESOLVED, "agent:1", resolution="Done.")
    old.resolved_at = utcnow() - timedelta(days=REOPEN_DAYS + 1)
    session.flush()
    closed = tickets.close_resolved(session, REOPEN_DAYS)
    assert old in closed and recent not in closed
    assert old.status is S.CLOSED and recent.status is S.RESOLVED


def test_one_customer_message_never_opens_two_tickets(session: Session) -> None:
    conversation = get_or_create_conversation(session, "web", "visitor-once")
    message = store_inbound(session, conversation, "my grill arrived broken")
    first = new_ticket(session, source_message_id=message.id)
    again = new_ticket(session, source_message_id=message.id)
    assert again.id == first.id
    assert len(session.scalars(select(Ticket).where(Ticket.source_message_id == message.id)).all()) == 1
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(
            insert(Ticket).values(
                reference="KF-999999",
                kind="complaint",
                category="other",
                subject="dup",
                source_message_id=message.id,
            )
        )


@pytest.mark.parametrize(
    ("severity", "tier", "priority"),
    [
        (Severity.LOW, ValueTier.REGULAR, TicketPriority.LOW),
        (Severity.MEDIUM, ValueTier.REGULAR, TicketPriority.NORMAL),
        (Severity.HIGH, ValueTier.REGULAR, TicketPriority.HIGH),
        (Severity.LOW, ValueTier.KEY, TicketPriority.LOW),
        (Severity.MEDIUM, ValueTier.KEY, TicketPriority.HIGH),
        (Severity.LOW, ValueTier.VIP, TicketPriority.NORMAL),
        (Severity.HIGH, ValueTier.VIP, TicketPriority.URGENT),
    ],
)
def test_priority_comes_from_severity_and_value_tier(
    severity: Severity, tier: ValueTier, priority: TicketPriority
) -> None:
    assert priority_for(severity, tier) is priority


def test_a_vip_complaint_is_prioritised_and_promised_sooner(session: Session) -> None:
    order = session.scalars(select(Order).where(Order.number == "100004")).one()
    regular = new_ticket(session, customer_id=order.customer_id, severity=Severity.MEDIUM)
    order.customer.value_tier = ValueTier.VIP
    vip = new_ticket(session, customer_id=order.customer_id, severity=Severity.MEDIUM)
    assert (regular.priority, vip.priority) == (TicketPriority.NORMAL, TicketPriority.HIGH)
    assert vip.sla_first_response_due is not None and regular.sla_first_response_due is not None
    assert vip.sla_first_response_due <= regular.sla_first_response_due


def test_a_second_complaint_about_the_same_problem_finds_its_ticket(session: Session) -> None:
    order = session.scalars(select(Order).where(Order.number == "100001")).one()
    again = "the lanterns stopped working again"
    assert tickets.complaint_target(session, order.id, "product_defect", REOPEN_DAYS, again) is None
    first = new_ticket(session, order_id=order.id, description="One solar lantern doesn't light up.")
    assert tickets.complaint_target(session, order.id, "product_defect", REOPEN_DAYS) is first
    assert tickets.complaint_target(session, order.id, "billing", REOPEN_DAYS) is None  # another problem
    tickets.change_status(session, first, S.RESOLVED, "agent:1", resolution="Done.")
    assert tickets.complaint_target(session, order.id, "product_defect", REOPEN_DAYS, again) is first
    first.resolved_at = utcnow() - timedelta(days=REOPEN_DAYS + 1)
    assert tickets.complaint_target(session, order.id, "product_defect", REOPEN_DAYS, again) is None


def test_a_resolved_ticket_about_another_problem_is_never_reopened(session: Session) -> None:
    """Ana's KF-000001 (a chair's loose rivet, order 100002) was resolved three days ago."""
    order = session.scalars(select(Order).where(Order.number == "100002")).one()
    chair = tickets.find_by_reference(session, "KF-000001")
    assert chair is not None and chair.status is S.RESOLVED and chair.resolved_at is not None
    now = chair.resolved_at + timedelta(days=3)  # the demo's "today": it could still be reopened

    def target(category: str, story: str) -> Ticket | None:
        return tickets.complaint_target(session, order.id, category, REOPEN_DAYS, story, now=now)

    assert target("wrong_or_missing_item", "only one chair came") is None  # another category
    assert target("product_defect", "the lamp is broken") is None  # another item
    assert target("product_defect", "the lantern I ordered arrived broken") is None
    assert target("product_defect", "it's broken again") is None  # nothing says it's the chair
    assert target("product_defect", "the chair wobbles again, the rivet is loose") is chair


def test_a_delivery_complaint_joins_the_open_delay_ticket(session: Session) -> None:
    order = session.scalars(select(Order).where(Order.number == "100004")).one()
    delay = tickets.find_by_reference(session, "KF-000003")
    assert delay is not None and delay.kind == "delivery"
    assert tickets.open_delivery_ticket(session, order.id) is delay
    assert tickets.complaint_target(session, order.id, "delivery_problem", REOPEN_DAYS) is delay
    assert tickets.complaint_target(session, order.id, "late_delivery", REOPEN_DAYS) is delay
    assert tickets.complaint_target(session, order.id, "product_defect", REOPEN_DAYS) is None
    tickets.change_status(session, delay, S.RESOLVED, "agent:1", resolution="It arrived.")
    assert tickets.open_delivery_ticket(session, order.id) is None


def test_a_complaint_added_to_a_ticket_reassesses_the_whole_story(session: Session) -> None:
    order = session.scalars(select(Order).where(Order.number == "100001")).one()
    ticket = new_ticket(
        session,
        order_id=order.id,
        category="wrong_or_missing_item",
        description="They sent the wrong colour of camping stove.",
    )
    assert (ticket.severity, ticket.priority) == (Severity.LOW, TicketPriority.LOW)
    said = "I tried it anyway and it caught fire and burned my hand"
    assert tickets.add_complaint(session, ticket, said, REOPEN_DAYS) == "added"
    assert (ticket.severity, ticket.priority) == (Severity.HIGH, TicketPriority.HIGH)
    session.flush()
    session.expire(ticket, ["events"])
    raised = [e for e in ticket.events if e.kind == "severity_raised"]
    assert len(raised) == 1 and raised[0].data["priority_from"] == "low"
    assert raised[0].data["severity_to"] == "high" and raised[0].data["priority_to"] == "high"
    assert [e.data["text"] for e in ticket.events if e.kind == "customer_message"] == [said]


def test_severity_counts_everything_said_and_only_ever_goes_up(session: Session) -> None:
    order = session.scalars(select(Order).where(Order.number == "100001")).one()
    ticket = new_ticket(session, order_id=order.id, description="The lid is scratched.")
    tickets.add_complaint(session, ticket, "Still not sorted.", REOPEN_DAYS)
    assert ticket.severity is Severity.MEDIUM  # "still not": worse than a routine case
    tickets.add_complaint(session, ticket, "Thanks.", REOPEN_DAYS)
    assert (ticket.severity, ticket.priority) == (Severity.MEDIUM, TicketPriority.NORMAL)
    session.flush()
    session.expire(ticket, ["events"])
    assert [e.kind for e in ticket.events].count("severity_raised") == 1


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("kf000123", "KF-000123"),
        ("#KF-000123 please", "KF-000123"),
        ("my reference is KF 000045", "KF-000045"),
        ("ticket KF_000222 is still open", "KF-000222"),
        ("ticket KF-12", None),
        ("", None),
    ],
)
def test_parse_reference(text: str, reference: str | None) -> None:
    assert tickets.parse_reference(text) == reference


def test_a_low_rating_opens_a_follow_up_for_the_lead_and_it_asks_no_survey_itself(session: Session) -> None:
    ticket = new_ticket(session)
    tickets.change_status(session, ticket, S.RESOLVED, "agent:1", resolution="Done.")
    survey = session.scalars(select(CsatSurvey).where(CsatSurvey.ticket_id == ticket.id)).one()
    follow_up = tickets.record_survey_answer(session, survey, 2, "took a week", policy=sla.default_policy())
    assert follow_up is not None and follow_up.kind == "csat_follow_up"
    assert follow_up.parent_ticket_id == ticket.id and survey.follow_up_ticket_id == follow_up.id
    assert (ticket.csat_score, ticket.csat_comment) == (2, "took a week")
    tickets.change_status(session, follow_up, S.RESOLVED, "agent:1", resolution="Called the customer.")
    assert session.scalars(select(CsatSurvey).where(CsatSurvey.ticket_id == follow_up.id)).all() == []
    happy = new_ticket(session)
    tickets.change_status(session, happy, S.RESOLVED, "agent:1", resolution="Done.")
    happy_survey = session.scalars(select(CsatSurvey).where(CsatSurvey.ticket_id == happy.id)).one()
    assert tickets.record_survey_answer(session, happy_survey, 4, None, policy=sla.default_policy()) is None
