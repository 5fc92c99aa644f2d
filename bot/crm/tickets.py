"""Tickets: creation with a public reference, priority and SLA, and the status life cycle.

new -> open -> pending_customer -> resolved -> closed. A resolved ticket goes back to open when the
customer writes within `ticket_reopen_days`; after that the scheduler closes it. Every change is a
`ticket_events` row, so the consoles and the service measures read history, not counters.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import complaints, csat, sla
from bot.crm.models import (
    CsatSurvey,
    Customer,
    Severity,
    Ticket,
    TicketEvent,
    TicketStatus,
    ValueTier,
    utcnow,
)
from bot.crm.priority import PRIORITY_ORDER, priority_for, raise_priority
from bot.errors import Conflict

S = TicketStatus

# Which status may follow which. Anything else is refused: a closed ticket stays closed (a new
# problem gets a new ticket), and nothing goes back to "new".
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.NEW: frozenset({S.OPEN, S.PENDING_CUSTOMER, S.RESOLVED}),
    S.OPEN: frozenset({S.PENDING_CUSTOMER, S.RESOLVED}),
    S.PENDING_CUSTOMER: frozenset({S.OPEN, S.RESOLVED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}
ACTIVE = (S.NEW, S.OPEN, S.PENDING_CUSTOMER)
# What an active ticket's status means, as the customer reads it.
STATE_WORDS: dict[TicketStatus, str] = {
    S.NEW: "received, and waiting for a person from our team to pick it up",
    S.OPEN: "open: our team is working on it",
    S.PENDING_CUSTOMER: "waiting for an answer from you",
}
# A delay follow-up and a complaint about the delivery are the same problem for one order.
DELIVERY_CATEGORIES = frozenset({"delivery_problem", "late_delivery"})
# The tickets a new complaint may join: earlier complaints and delay follow-ups, not refunds or
# the lead's follow-ups.
JOINABLE_KINDS = ("complaint", "delivery")
_SEVERITY_ORDER = (Severity.LOW, Severity.MEDIUM, Severity.HIGH)


class IllegalTransition(Conflict):
    """A status change the life cycle does not allow."""


def reference_for(ticket_id: int) -> str:
    return f"KF-{ticket_id:06d}"


def parse_reference(text: str) -> str | None:
    """`KF-000123` from what a customer typed ("kf000123", "#KF-000123 "), or None."""
    match = re.search(r"\b[Kk][Ff][-_]?\s?(\d{6})\b", text or "")
    return f"KF-{match.group(1)}" if match else None


def find_by_reference(session: Session, reference: str) -> Ticket | None:
    return session.scalars(select(Ticket).where(Ticket.reference == reference)).first()


def find_by_source_message(session: Session, message_id: int) -> Ticket | None:
    return session.scalars(select(Ticket).where(Ticket.source_message_id == message_id)).first()


def add_event(
    session: Session, ticket: Ticket, actor: str, kind: str, data: dict[str, Any] | None = None
) -> TicketEvent:
    event = TicketEvent(ticket_id=ticket.id, actor=actor, kind=kind, data=data or {})
    session.add(event)
    ticket.updated_at = utcnow()
    return event


def open_ticket(
    session: Session,
    *,
    kind: str,
    category: str,
    subject: str,
    actor: str,
    customer_id: int | None = None,
    conversation_id: int | None = None,
    order_id: int | None = None,
    source_message_id: int | None = None,
    parent_ticket_id: int | None = None,
    description: str = "",
    desired_outcome: str | None = None,
    policy: sla.SlaPolicy,
    severity: Severity = Severity.LOW,
    contact: str | None = None,
    now: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> Ticket:
    """Create a ticket with its priority and the due times of `policy`, or return the one this
    customer message already created (a retried message must never open a second ticket)."""
    if source_message_id is not None:
        existing = find_by_source_message(session, source_message_id)
        if existing is not None:
            return existing
    now = now or utcnow()
    tier = ValueTier.REGULAR
    if customer_id is not None:
        customer = session.get(Customer, customer_id)
        if customer is not None:
            tier = customer.value_tier
    # The public reference comes from the row id, known only after the insert.
    ticket = Ticket(
        reference=f"tmp-{secrets.token_hex(6)}",
        kind=kind,
        customer_id=customer_id,
        conversation_id=conversation_id,
        order_id=order_id,
        source_message_id=source_message_id,
        parent_ticket_id=parent_ticket_id,
        category=category,
        subject=subject[:300],
        description=description,
        desired_outcome=desired_outcome,
        severity=severity,
        contact=contact,
        priority=priority_for(severity, tier),
        status=S.NEW,
        created_at=now,
        updated_at=now,
    )
    sla.apply_sla(ticket, tier, policy, now)
    session.add(ticket)
    session.flush()
    ticket.reference = reference_for(ticket.id)
    add_event(
        session,
        ticket,
        actor,
        "created",
        {
            "kind": kind,
            "category": category,
            "severity": severity.value,
            "priority": ticket.priority.value,
            "tier": tier.value,
            **(data or {}),
        },
    )
    session.flush()
    return ticket


def change_status(
    session: Session,
    ticket: Ticket,
    status: TicketStatus,
    actor: str,
    *,
    resolution: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Ticket:
    """Move a ticket along its life cycle, or raise IllegalTransition saying what is allowed."""
    now = now or utcnow()
    before = ticket.status
    if status not in TRANSITIONS[before]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[before])) or "nothing (it is final)"
        raise IllegalTransition(
            f"ticket {ticket.reference} is {before.value}; it can move to {allowed}, not {status.value}"
        )
    if status is S.RESOLVED:
        text = (resolution or ticket.resolution or "").strip()
        if not text:
            raise IllegalTransition(
                f"ticket {ticket.reference}: say how it was resolved (resolution) before resolving it"
            )
        ticket.resolution = text
        ticket.resolved_at = now
        # Resolving answers the customer, so it counts as the first response when none came before.
        if ticket.first_responded_at is None and actor.startswith("agent"):
            ticket.first_responded_at = now
    elif status is S.CLOSED:
        ticket.closed_at = now
    elif before is S.RESOLVED and status is S.OPEN:
        ticket.resolved_at = None
    if actor.startswith("agent") and ticket.first_responded_at is None and status is not S.NEW:
        ticket.first_responded_at = now
    ticket.status = status
    kind = "reopened" if before is S.RESOLVED and status is S.OPEN else "status_changed"
    data: dict[str, Any] = {"from": before.value, "to": status.value}
    if note:
        data["note"] = note
    if status is S.RESOLVED:
        data["resolution"] = ticket.resolution
    add_event(session, ticket, actor, kind, data)
    if status is S.RESOLVED:
        csat.request_survey(session, trigger="ticket_resolved", ticket=ticket, now=now)
    return ticket


def can_reopen(ticket: Ticket, reopen_days: int, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (
        ticket.status is S.RESOLVED
        and ticket.resolved_at is not None
        and now - ticket.resolved_at <= timedelta(days=reopen_days)
    )


def customer_replied(
    session: Session,
    ticket: Ticket,
    text: str,
    reopen_days: int,
    *,
    now: datetime | None = None,
) -> str:
    """Record what the customer added and move the ticket if that calls for it.

    Returns "reopened", "answered" (it was waiting for the customer), "added" or "closed" (too late:
    a resolved ticket past the reopening window, or a closed one, is left alone).
    """
    now = now or utcnow()
    if ticket.status is S.CLOSED or (
        ticket.status is S.RESOLVED and not can_reopen(ticket, reopen_days, now)
    ):
        return "closed"
    add_event(session, ticket, "customer", "customer_message", {"text": text[:2000]})
    if ticket.status is S.RESOLVED:
        change_status(session, ticket, S.OPEN, "customer", note="the customer wrote again", now=now)
        return "reopened"
    if ticket.status is S.PENDING_CUSTOMER:
        change_status(session, ticket, S.OPEN, "customer", note="the customer answered", now=now)
        return "answered"
    return "added"


def is_about_delivery(ticket: Ticket) -> bool:
    """Whether the ticket is about the order's delivery: a delay follow-up or a delivery complaint."""
    return ticket.kind == "delivery" or ticket.category in DELIVERY_CATEGORIES


def open_delivery_ticket(session: Session, order_id: int) -> Ticket | None:
    """The ticket about this order's delivery that is still being worked on, if any."""
    active = session.scalars(
        select(Ticket)
        .where(Ticket.order_id == order_id, Ticket.status.in_(ACTIVE))
        .order_by(Ticket.id.desc())
    ).all()
    return next((ticket for ticket in active if is_about_delivery(ticket)), None)


def said_on(ticket: Ticket) -> list[str]:
    """Everything the customer has told us on the ticket: the description, then what they added."""
    added = [str(e.data.get("text") or "") for e in ticket.events if e.kind == "customer_message"]
    return [text for text in (ticket.description, *added) if text]


def _items_named(ticket: Ticket, text: str) -> set[str]:
    """The words of the order's item names ("chair", "cushion") that `text` uses, plurals included."""
    items = ticket.order.items if ticket.order is not None else []
    words = {w for item in items for w in re.findall(r"[a-z]{4,}", item.name.lower())}
    return {w for w in words if re.search(rf"\b{w}(?:e?s)?\b", text, re.IGNORECASE)}


def complaint_target(
    session: Session,
    order_id: int,
    category: str,
    reopen_days: int,
    story: str = "",
    now: datetime | None = None,
) -> Ticket | None:
    """The ticket a new complaint about this order joins, or None when it needs a ticket of its own.

    Only the same problem joins: a ticket of the same category still being worked on (for a
    delivery complaint, any ticket about the delivery, the delay follow-up included). A resolved
    ticket is reopened only when the story is plainly the same problem coming back: same category,
    and for anything but the delivery the same item of the order named again ("the chair wobbles
    again"). "The lamp is broken" never reopens the chairs' loose rivet; it gets its own ticket.
    """
    delivery = category in DELIVERY_CATEGORIES
    if delivery and (open_delivery := open_delivery_ticket(session, order_id)) is not None:
        return open_delivery
    candidates = session.scalars(
        select(Ticket)
        .where(
            Ticket.order_id == order_id,
            Ticket.kind.in_(JOINABLE_KINDS),
            Ticket.category.in_(DELIVERY_CATEGORIES) if delivery else Ticket.category == category,
            Ticket.status != S.CLOSED,
        )
        .order_by(Ticket.id.desc())
    ).all()
    active = next((ticket for ticket in candidates if ticket.status in ACTIVE), None)
    if active is not None:
        return active
    for ticket in candidates:
        if can_reopen(ticket, reopen_days, now) and (
            delivery or _items_named(ticket, story) & _items_named(ticket, "\n".join(said_on(ticket)))
        ):
            return ticket
    return None


def raise_severity(session: Session, ticket: Ticket, assessment: complaints.Assessment, actor: str) -> bool:
    """Raise the ticket's severity to the assessment's when that is higher, and its priority with it:
    to what a new ticket that severe would get, and at least one step. False when nothing changed."""
    if _SEVERITY_ORDER.index(assessment.severity) <= _SEVERITY_ORDER.index(ticket.severity):
        return False
    tier = ticket.customer.value_tier if ticket.customer is not None else ValueTier.REGULAR
    before_severity, before_priority = ticket.severity, ticket.priority
    ticket.priority = max(
        priority_for(assessment.severity, tier), raise_priority(before_priority), key=PRIORITY_ORDER.index
    )
    ticket.severity = assessment.severity
    add_event(
        session,
        ticket,
        actor,
        "severity_raised",
        {
            "severity_from": before_severity.value,
            "severity_to": ticket.severity.value,
            "priority_from": before_priority.value,
            "priority_to": ticket.priority.value,
            "reasons": assessment.reasons,
        },
    )
    return True


def add_complaint(
    session: Session,
    ticket: Ticket,
    text: str,
    reopen_days: int,
    *,
    actor: str = "bot",
    now: datetime | None = None,
) -> str:
    """Put a new complaint's words on the ticket it joins (see `complaint_target`) and reassess it.

    Severity is read again from everything the customer has said on the ticket, so a fire added to a
    "wrong item" ticket makes it severe. Returns what `customer_replied` returns.
    """
    now = now or utcnow()
    said = said_on(ticket)  # read before the new words are added
    happened = customer_replied(session, ticket, text, reopen_days, now=now)
    if happened != "closed":
        story = "\n".join([*said, text])
        raise_severity(session, ticket, complaints.assess(story, ticket.order, now.date()), actor)
    return happened


def close_resolved(session: Session, reopen_days: int, now: datetime | None = None) -> list[Ticket]:
    """Close tickets resolved longer ago than the reopening window (a scheduled job)."""
    now = now or utcnow()
    stale = session.scalars(
        select(Ticket).where(
            Ticket.status == S.RESOLVED, Ticket.resolved_at < now - timedelta(days=reopen_days)
        )
    ).all()
    for ticket in stale:
        change_status(session, ticket, S.CLOSED, "system", note="no reply after resolution", now=now)
    return list(stale)


def public_events(ticket: Ticket) -> list[TicketEvent]:
    """The history a customer may see: no internal notes."""
    return [e for e in ticket.events if e.kind != "note"]


def find_open_of_kind(session: Session, order_id: int, kind: str) -> Ticket | None:
    """A ticket of this kind about this order that is still being worked on."""
    return session.scalars(
        select(Ticket)
        .where(Ticket.order_id == order_id, Ticket.kind == kind, Ticket.status.in_(ACTIVE))
        .order_by(Ticket.id.desc())
    ).first()


# Tickets the team opens for itself: a lead's follow-up of a poor rating, and the record of a chat
# handed to a person. The customer never asked for them, so their ticket list leaves them out.
INTERNAL_KINDS = ("csat_follow_up", "conversation")


def customer_tickets(session: Session, customer_id: int, limit: int = 5) -> list[Ticket]:
    """The customer's most recent tickets, newest first (the team's internal ones excluded)."""
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.customer_id == customer_id, Ticket.kind.not_in(INTERNAL_KINDS))
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
    )


def note_customer_message(session: Session, conversation_id: int, text: str, reopen_days: int) -> int:
    """A customer message in a chat whose ticket waits for the customer puts the ticket back to open.

    Resolved tickets are left alone here ("thanks!" must not reopen them); reopening is explicit.
    Returns how many tickets moved.
    """
    waiting = session.scalars(
        select(Ticket).where(Ticket.conversation_id == conversation_id, Ticket.status == S.PENDING_CUSTOMER)
    ).all()
    for ticket in waiting:
        customer_replied(session, ticket, text, reopen_days)
    return len(waiting)


def record_survey_answer(
    session: Session,
    survey: CsatSurvey,
    score: int,
    comment: str | None,
    *,
    policy: sla.SlaPolicy,
    now: datetime | None = None,
) -> Ticket | None:
    """Store a satisfaction answer (with the ticket it was about) and, for 1 or 2, open a follow-up
    ticket for the lead; returns the follow-up, if one was opened."""
    now = now or utcnow()
    ticket = csat.record_answer(session, survey, score, comment, now)
    if ticket is not None:
        add_event(session, ticket, "customer", "csat_answered", {"score": score, "comment": survey.comment})
    if not csat.is_low(score):
        return None
    about = f" after {ticket.reference}" if ticket is not None else " after a chat"
    follow_up = open_ticket(
        session,
        kind="csat_follow_up",
        category="other",
        subject=f"Low satisfaction ({score}/5){about}",
        description=survey.comment or "The customer left no comment.",
        actor="system",
        customer_id=survey.customer_id,
        conversation_id=survey.conversation_id,
        order_id=ticket.order_id if ticket is not None else None,
        parent_ticket_id=ticket.id if ticket is not None else None,
        policy=policy,
        severity=Severity.HIGH if score == 1 else Severity.MEDIUM,
        now=now,
        data={"survey_id": survey.id, "score": score},
    )
    survey.follow_up_ticket_id = follow_up.id
    return follow_up
