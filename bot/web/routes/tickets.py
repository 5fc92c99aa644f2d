"""The tickets JSON API for the consoles: the work queue, one ticket with its history, and changes.

The life-cycle rules live in `bot.crm.tickets`; this module maps HTTP onto them. Every route needs
a console login, and changes need the CSRF header (checked by `current_agent`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from bot.crm import tickets
from bot.crm.audit import audit
from bot.crm.models import Ticket, TicketPriority, TicketStatus
from bot.crm.priority import PRIORITY_ORDER
from bot.errors import BadRequest, NotFound
from bot.web.deps import AnyAgent, LoginFirstRoute, SessionDep, client_address
from bot.web.schemas import Text, ticket_detail, ticket_summary

router = APIRouter(prefix="/api/tickets", tags=["tickets"], route_class=LoginFirstRoute)

_PRIORITY_RANK = case(
    {p.value: rank for rank, p in enumerate(reversed(PRIORITY_ORDER))}, value=Ticket.priority
)


class StatusIn(BaseModel):
    status: TicketStatus
    resolution: Text | None = Field(default=None, description="required when resolving: what was done")
    note: Text | None = None


class NoteIn(BaseModel):
    text: Text = Field(min_length=1, max_length=5000)


class PriorityIn(BaseModel):
    priority: TicketPriority
    reason: Text = Field(min_length=1, max_length=500)


def _load(session: Session, reference: str) -> Ticket:
    found = tickets.find_by_reference(session, reference.upper())
    if found is None:
        raise NotFound(f"there is no ticket {reference}")
    return found


@router.get("")
def list_tickets(
    session: SessionDep,
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
def get_ticket(reference: str, session: SessionDep, agent: AnyAgent, request: Request) -> dict[str, Any]:
    with session.begin():
        ticket = _load(session, reference)
        audit(session, f"agent:{agent.id}", "ticket_viewed", "ticket", ticket.id, {}, client_address(request))
        return ticket_detail(ticket)


@router.post("/{reference}/status")
def change_status(
    reference: str, body: StatusIn, session: SessionDep, agent: AnyAgent, request: Request
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
            client_address(request),
        )
        session.flush()
        return ticket_detail(ticket)


@router.post("/{reference}/notes")
def add_note(reference: str, body: NoteIn, session: SessionDep, agent: AnyAgent) -> dict[str, Any]:
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
    reference: str, body: PriorityIn, session: SessionDep, agent: AnyAgent, request: Request
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
            client_address(request),
        )
        session.flush()
        return ticket_detail(ticket)
