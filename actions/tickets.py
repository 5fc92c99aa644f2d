"""Ticket status for customers: only the owner learns anything about a ticket."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, settings, sla_policy
from actions.complaints import promised
from actions.forms import CustomerProofForm
from actions.orders import LOCKED_OUT
from bot.crm import complaints, sla, tickets
from bot.crm import orders as crm
from bot.crm.models import Conversation, Ticket, TicketStatus

RESET = [SlotSet("ticket_reference", None), SlotSet("contact", None)]
# The same words whether the ticket does not exist or is someone else's: a reference reveals nothing.
NOT_FOUND = (
    "I couldn't find a ticket with that reference for you. Please check it: it looks like KF-000123 "
    "and it's in the message where we confirmed your complaint or request."
)
_STATE = {
    TicketStatus.NEW: "received, and waiting for a person from our team to pick it up",
    TicketStatus.OPEN: "open: our team is working on it",
    TicketStatus.PENDING_CUSTOMER: "waiting for an answer from you",
}
_EVENT_WORDS = {
    "created": "ticket opened",
    "status_changed": "status changed",
    "reopened": "reopened",
    "customer_message": "you added details",
    "sla_breached": "escalated, because we are late answering",
    "agent_reply": "our team replied",
    "csat_answered": "you rated our help",
    "severity_raised": "marked as urgent",
    "order_status": "order status noted",
}


def owns(ticket: Ticket, conversation: Conversation, contact: crm.Contact | None) -> bool:
    """Whether this chat may see the ticket: it opened it, its verified customer owns it, or the
    contact given matches the ticket's customer or contact."""
    if ticket.conversation_id == conversation.id:
        return True
    if conversation.customer_id is not None:
        return ticket.customer_id == conversation.customer_id
    if contact is None:
        return False
    if ticket.customer is not None:
        if contact.email is not None and ticket.customer.email.lower() == contact.email:
            return True
        if contact.phone_digits is not None and crm.phones_match(ticket.customer.phone, contact.phone_digits):
            return True
    stored = crm.parse_contact(ticket.contact or "")
    return stored is not None and stored == contact


def describe_ticket(ticket: Ticket, policy: sla.SlaPolicy) -> str:
    """Status, last update and the promise, as a customer reads them."""
    what = complaints.CATEGORIES.get(ticket.category, ticket.category.replace("_", " "))
    order = f", order #{ticket.order.number}" if ticket.order is not None else ""
    head = f"{ticket.reference} ({what}{order})"
    visible = [e for e in tickets.public_events(ticket) if e.kind != "order_status"]
    last = visible[-1] if visible else None
    update = ""
    if last is not None:
        words = _EVENT_WORDS.get(last.kind, last.kind.replace("_", " "))
        if last.kind == "status_changed" and last.data.get("to"):
            words = f"status changed to {str(last.data['to']).replace('_', ' ')}"
        update = f" Last update {promised(last.created_at, policy)}: {words}."
    if ticket.status is TicketStatus.RESOLVED:
        return f"{head} was resolved on {promised(ticket.resolved_at, policy)}: {ticket.resolution}"
    if ticket.status is TicketStatus.CLOSED:
        return f"{head} is closed (resolved: {ticket.resolution or 'no details recorded'})."
    promise = ""
    if ticket.first_responded_at is None and ticket.sla_first_response_due is not None:
        promise = f" We promised a first reply by {promised(ticket.sla_first_response_due, policy)}."
    elif ticket.sla_resolution_due is not None:
        promise = f" We aim to resolve it by {promised(ticket.sla_resolution_due, policy)}."
    return f"{head} is {_STATE[ticket.status]}.{update}{promise}"


class ValidateTicketForm(CustomerProofForm, FormValidationAction):
    """Asks for the reference (and, in an unverified chat, the contact that proves the ticket is theirs).

    A verified customer can pick from their tickets: no reference needed."""

    verified_skips = frozenset({"ticket_reference", "contact"})
    contact_retry = (
        "I need the e-mail address or phone number you gave us, for example "
        "name@example.com or +44 7700 900123."
    )

    def name(self) -> str:
        return "validate_ticket_form"

    def unverified_slots(
        self, session: Session, conversation: Conversation, domain_slots: list[str], tracker: Tracker
    ) -> list[str]:
        reference = tickets.parse_reference(str(tracker.get_slot("ticket_reference") or ""))
        if reference is None:
            wanted = ["ticket_reference", "contact"]
        else:
            ticket = tickets.find_by_reference(session, reference)
            opened_here = ticket is not None and ticket.conversation_id == conversation.id
            wanted = [] if opened_here else ["contact"]
        return [slot for slot in domain_slots if slot in wanted]

    async def validate_ticket_reference(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        reference = tickets.parse_reference(str(value or ""))
        if reference is None:
            dispatcher.utter_message(
                text="That doesn't look like a ticket reference. It looks like KF-000123 and it's in "
                "the message where we confirmed your complaint or request."
            )
        return {"ticket_reference": reference}


class ActionCheckTicket(Action):
    """Tells the owner a ticket's status, last update and promise; lists a verified customer's tickets."""

    def name(self) -> str:
        return "action_check_ticket"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        config = settings()
        policy = sla_policy()
        reference = tickets.parse_reference(str(tracker.get_slot("ticket_reference") or ""))
        contact = crm.parse_contact(str(tracker.get_slot("contact") or ""))
        window = timedelta(minutes=config.verification_window_minutes)

        def look_up(session: Session) -> tuple[str, str, list[dict[str, str]]]:
            conversation = conversation_for(session, tracker)
            if reference is None:
                if conversation.customer_id is None:
                    return "not_found", NOT_FOUND, []
                mine = tickets.customer_tickets(session, conversation.customer_id)
                if not mine:
                    return (
                        "none",
                        "You don't have any tickets with us. Is there something I can help with?",
                        [],
                    )
                if len(mine) > 1:
                    buttons = [
                        {
                            "title": f"{t.reference} · {t.status.value.replace('_', ' ')}",
                            "payload": f'/check_ticket{{"ticket_reference": "{t.reference}"}}',
                        }
                        for t in mine
                    ]
                    return "choose", "Which ticket is it? Here are your most recent ones.", buttons
                found = mine[0]
            else:
                if (
                    crm.recent_failures(session, conversation, reference, window)
                    >= config.verification_max_failures
                ):
                    return "locked", LOCKED_OUT, []
                candidate = tickets.find_by_reference(session, reference)
                if candidate is None or not owns(candidate, conversation, contact):
                    crm.record_verification(session, conversation, reference, succeeded=False)
                    return "not_found", NOT_FOUND, []
                found = candidate
            buttons = []
            if tickets.can_reopen(found, config.ticket_reopen_days):
                buttons = [
                    {
                        "title": "It's not solved: reopen it",
                        "payload": f'/reopen_ticket{{"ticket_reference": "{found.reference}"}}',
                    },
                    {"title": "All good, thanks", "payload": "/thank"},
                ]
            return "found", describe_ticket(found, policy), buttons

        _outcome, text, buttons = await in_transaction(look_up)
        dispatcher.utter_message(text=text, buttons=buttons)
        return list(RESET)


class ActionReopenTicket(Action):
    """Reopens a recently resolved ticket of this customer when the problem came back."""

    def name(self) -> str:
        return "action_reopen_ticket"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        config = settings()
        reference = tickets.parse_reference(str(tracker.get_slot("ticket_reference") or ""))

        def reopen(session: Session) -> str:
            conversation = conversation_for(session, tracker)
            ticket = tickets.find_by_reference(session, reference) if reference else None
            if ticket is None or not owns(ticket, conversation, None):
                return "not_found"
            return tickets.customer_replied(
                session, ticket, "The customer asked to reopen it in chat.", config.ticket_reopen_days
            )

        outcome = await in_transaction(reopen)
        if outcome == "reopened":
            dispatcher.utter_message(
                text=f"I've reopened {reference}. Our team will pick it up again and reply here. If "
                "there's anything new to add, tell me now and I'll put it on the ticket."
            )
        elif outcome == "closed":
            dispatcher.utter_message(
                text=f"{reference} was resolved too long ago to reopen. Tell me what's wrong and I'll "
                "open a new ticket for it."
            )
        elif outcome in ("added", "answered"):
            dispatcher.utter_message(text=f"{reference} is still open, and our team is on it.")
        else:
            dispatcher.utter_message(text=NOT_FOUND)
        return list(RESET)
