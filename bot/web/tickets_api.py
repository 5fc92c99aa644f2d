"""The tickets JSON API for the consoles: the work queue, one ticket with its history, and changes.

The life-cycle rules live in `bot.crm.tickets`; this module maps HTTP onto them. Every route needs
a console login, and changes need the CSRF header (checked by `current_agent`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from bot.crm import sla, tickets
from bot.crm.audit import audit
from bot.crm.models import Agent, Ticket, TicketPriority, TicketStatus, utcnow
from bot.errors import BadRequest, NotFound
from bot.web.app import get_session
from bot.web.auth import current_agent

router = APIRouter(prefix="/api/tickets", tags=["tickets"])

AnyAgent = Annotated[Agent, Depends(current_agent)]
Db = Annotated[Session, Depends(get_session)]
_PRIORITY_RANK = case(
    {p.value: rank for rank, p in enumerate(reversed(tickets.PRIORITY_ORDER))}, value=Ticket.priority
)


class StatusIn(BaseModel):
    status: TicketStatus
    resolution: str | None = Field(default=None, description="required when resolving: what was done")
    note: str | None = None


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=5000)


class PriorityIn(BaseModel):
    priority: TicketPriority
    reason: str = Field(min_length=1, max_length=500)


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    return {
        "reference": ticket.reference,
        "kind": ticket.kind,
        "category": ticket.category,
        "subject": ticket.subject,
        "status": ticket.status.value,
        "priority": ticket.priority.value,
        "severity": ticket.severity.value,
        "customer_id": ticket.customer_id,
        "conversation_id": ticket.conversation_id,
        "order_number": ticket.order.number if ticket.order is not None else None,
        "assigned_agent_id": ticket.assigned_agent_id,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "sla_first_response_due": _iso(ticket.sla_first_response_due),
        "sla_resolution_due": _iso(ticket.sla_resolution_due),
        "sla_breached": ticket.sla_first_response_breached_at is not None
        or ticket.sla_resolution_breached_at is not None,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def ticket_detail(ticket: Ticket) -> dict[str, Any]:
    return {
        **ticket_summary(ticket),
        "description": ticket.description,
        "desired_outcome": ticket.desired_outcome,
        "contact": ticket.contact,
        "resolution": ticket.resolution,
        "first_responded_at": _iso(ticket.first_responded_at),
        "resolved_at": _iso(ticket.resolved_at),
        "closed_at": _iso(ticket.closed_at),
        "csat": {"score": ticket.csat_score, "comment": ticket.csat_comment},
        "sla": sla.sla_state(ticket, utcnow()),
        "allowed_statuses": sorted(s.value for s in tickets.TRANSITIONS[ticket.status]),
        "events": [
            {"at": e.created_at.isoformat(), "actor": e.actor, "kind": e.kind, "data": e.data}
            for e in ticket.events
        ],
    }


def _load(session: Session, reference: str) -> Ticket:
    found = tickets.find_by_reference(session, reference.upper())
    if found is None:
        raise NotFound(f"there is no ticket {reference}")
    return found


@router.get("")
def list_tickets(
    session: Db,
    _agent: AnyAgent,
    status: Annotated[list[TicketStatus] | None, Query()] = None,
    priority: Annotated[TicketPriority | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Tickets by priority (urgent first), then the oldest first; active ones unless `status` says."""
    wanted = status or list(tickets.ACTIVE)
    query = select(Ticket).where(Ticket.status.in_(wanted))
    if priority is not None:
        query = query.where(Ticket.priority == priority)
    if kind is not None:
        query = query.where(Ticket.kind == kind)
    with session.begin():
        found = session.scalars(query.order_by(_PRIORITY_RANK, Ticket.created_at).limit(limit)).all()
        return {"tickets": [ticket_summary(t) for t in found]}


@router.get("/{reference}")
def get_ticket(reference: str, session: Db, agent: AnyAgent, request: Request) -> dict[str, Any]:
    with session.begin():
        ticket = _load(session, reference)
        audit(session, f"agent:{agent.id}", "ticket_viewed", "ticket", ticket.id, {}, _client(request))
        return ticket_detail(ticket)


@router.post("/{reference}/status")
def change_status(
    reference: str, body: StatusIn, session: Db, agent: AnyAgent, request: Request
) -> dict[str, Any]:
    """Move the ticket along new -> open -> pending_customer -> resolved -> closed (409 otherwise)."""
    with session.begin():
        ticket = _load(session, reference)
        tickets.change_status(
            session, ticket, body.status, f"agent:{agent.id}", resolution=body.resolution, note=body.note
        )
        if ticket.assigned_agent_id is None:
            ticket.assigned_agent_id = agent.id
        audit(
            session,
            f"agent:{agent.id}",
            "ticket_status_changed",
            "ticket",
            ticket.id,
            {"to": body.status.value},
            _client(request),
        )
        session.flush()
        return ticket_detail(ticket)


@router.post("/{reference}/notes")
def add_note(reference: str, body: NoteIn, session: Db, agent: AnyAgent) -> dict[str, Any]:
    """An internal note: agents see it, the customer never does."""
    text = body.text.strip()
    if not text:
        raise BadRequest("the note is empty")
    with session.begin():
        ticket = _load(session, reference)
        tickets.add_event(session, ticket, f"agent:{agent.id}", "note", {"text": text})
        session.flush()
        return ticket_detail(ticket)


@router.post("/{reference}/priority")
def set_priority(
    reference: str, body: PriorityIn, session: Db, agent: AnyAgent, request: Request
) -> dict[str, Any]:
    with session.begin():
        ticket = _load(session, reference)
        before = ticket.priority
        ticket.priority = body.priority
        tickets.add_event(
            session,
            ticket,
            f"agent:{agent.id}",
            "priority_changed",
            {"from": before.value, "to": body.priority.value, "reason": body.reason},
        )
        audit(
            session,
            f"agent:{agent.id}",
            "ticket_priority_changed",
            "ticket",
            ticket.id,
            {"from": before.value, "to": body.priority.value},
            _client(request),
        )
        session.flush()
        return ticket_detail(ticket)
