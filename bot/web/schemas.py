"""The JSON shapes the gateway's API returns, built from CRM records in one place.

The console's scripts and the `kefu tickets show` command read these shapes; a field changed here
changes for all of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator

from bot.channels.pipeline import invalid_character, message_json
from bot.crm import sla, tickets
from bot.crm.models import Agent, Message, Ticket, utcnow


def _storable(value: str) -> str:
    problem = invalid_character(value)
    if problem is not None:
        raise ValueError(f"contains {problem}; remove it and send again")
    return value


# Text a person wrote and the database will store: refused (422, naming the character) when it holds
# a lone surrogate, a control character or a non-character, which no keyboard types.
Text = Annotated[str, AfterValidator(_storable)]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def agent_view(agent: Agent) -> dict[str, Any]:
    return {"id": agent.id, "name": agent.name, "email": agent.email, "role": agent.role.value}


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


def console_message(message: Message, names: dict[int, str]) -> dict[str, Any]:
    """A chat message as the agent console shows it: the widget's shape plus delivery and author."""
    view = message_json(message)
    view["status"] = message.status.value
    if message.error:
        view["error"] = message.error
    if message.author_agent_id is not None:
        view["agent_name"] = names.get(message.author_agent_id)
    return view
