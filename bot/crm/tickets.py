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

from bot.crm import csat, sla
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
from bot.crm.priority import priority_for
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


def open_complaint_about(
    session: Session, order_id: int, reopen_days: int, now: datetime | None = None
) -> Ticket | None:
    """The complaint about this order that a second complaint should update instead of duplicating:
    one still being worked on, or one resolved recently enough to reopen."""
    candidates = session.scalars(
        select(Ticket)
        .where(Ticket.order_id == order_id, Ticket.kind == "complaint", Ticket.status != S.CLOSED)
        .order_by(Ticket.id.desc())
    ).all()
    for ticket in candidates:
        if ticket.status in ACTIVE or can_reopen(ticket, reopen_days, now):
            return ticket
    return None


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


def customer_tickets(session: Session, customer_id: int, limit: int = 5) -> list[Ticket]:
    """The customer's most recent tickets, newest first (follow-ups for the lead excluded)."""
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.customer_id == customer_id, Ticket.kind != "csat_follow_up")
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
