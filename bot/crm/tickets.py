"""Ticket creation with a public reference and its first history event."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import Ticket, TicketEvent, TicketPriority


def reference_for(ticket_id: int) -> str:
    return f"KF-{ticket_id:06d}"


def find_by_source_message(session: Session, message_id: int) -> Ticket | None:
    return session.scalars(select(Ticket).where(Ticket.source_message_id == message_id)).first()


def open_ticket(
    session: Session,
    *,
    category: str,
    subject: str,
    actor: str,
    customer_id: int | None = None,
    conversation_id: int | None = None,
    order_id: int | None = None,
    source_message_id: int | None = None,
    description: str = "",
    priority: TicketPriority = TicketPriority.NORMAL,
    data: dict[str, Any] | None = None,
) -> Ticket:
    """Create a ticket, or return the one this customer message already created."""
    if source_message_id is not None:
        existing = find_by_source_message(session, source_message_id)
        if existing is not None:
            return existing
    # The public reference comes from the row id, known only after the insert.
    ticket = Ticket(
        reference=f"tmp-{secrets.token_hex(6)}",
        customer_id=customer_id,
        conversation_id=conversation_id,
        order_id=order_id,
        source_message_id=source_message_id,
        category=category,
        subject=subject,
        description=description,
        priority=priority,
    )
    session.add(ticket)
    session.flush()
    ticket.reference = reference_for(ticket.id)
    session.add(TicketEvent(ticket_id=ticket.id, actor=actor, kind="created", data=data or {}))
    session.flush()
    return ticket
