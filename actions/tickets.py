"""Ticket status for customers: only the owner learns anything about a ticket."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, settings, sla_policy
from actions.complaints import promised
from actions.forms import (
    FIND_TICKET_REFERENCE,
    WHERE_TO_FIND,
    CustomerProofForm,
    fitted,
    without_it,
    wont_fit,
)
from actions.orders import LOCKED_OUT
from actions.proof import attempt, send_code
from bot.crm import complaints, proof, resolution, sla, tickets
from bot.crm import orders as crm
from bot.crm.models import Conversation, Ticket, TicketStatus

RESET = [SlotSet("ticket_reference", None), SlotSet("contact", None), SlotSet("ticket_purpose", None)]
# What the ticket form is for: showing the ticket ("check", the default) or reopening it.
REOPEN = "reopen"
# The same words whether the ticket does not exist or is someone else's: a reference reveals nothing.
NOT_FOUND = (
    "I couldn't find a ticket with that reference for you. Please check it: it looks like KF-000123 "
    "and it's in the message where we confirmed your complaint or request."
)
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


def owns(
    ticket: Ticket, conversation: Conversation, contact: crm.Contact | None, *, proven: bool = False
) -> bool:
    """Whether this chat may see the ticket: it opened it, it proved the ticket is its own a moment
    ago (`proven`), its verified customer owns it, or the contact given matches the ticket's."""
    if ticket.conversation_id == conversation.id or proven:
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


def access(
    ticket: Ticket, conversation: Conversation, contact: crm.Contact | None, *, proven: bool, trusted: bool
) -> str:
    """What this chat may do with the ticket: "show" it, send a "code" first, or "no" (not its own).

    A ticket opened in this chat is shown. So is one without a customer account (a complaint left
    with an e-mail only) to whoever proves its contact. A customer's ticket needs the one-time code
    unless the chat already proved itself with one (bot/crm/proof.py)."""
    if ticket.conversation_id == conversation.id:
        return "show"
    if not owns(ticket, conversation, contact, proven=proven):
        return "no"
    return "show" if ticket.customer_id is None or trusted else "code"


def proven_here(session: Session, conversation: Conversation, reference: str) -> bool:
    """Whether this chat proved the ticket is its own (by contact) within the verification window."""
    window = timedelta(minutes=settings().verification_window_minutes)
    return crm.recently_proven(session, conversation, reference, window)


def reopen(session: Session, ticket: Ticket) -> str:
    """Reopen the owner's ticket on their request; the outcome as `tickets.customer_replied` says it."""
    return tickets.customer_replied(
        session, ticket, "The customer asked to reopen it in chat.", settings().ticket_reopen_days
    )


def reopen_reply(reference: str, outcome: str) -> tuple[str, list[dict[str, str]]]:
    """What the customer is told after asking to reopen a ticket they own, with any buttons."""
    if outcome == "reopened":
        return (
            f"I've reopened {reference}. It's back with our team: a person will pick it up again and "
            "reply here. If there's anything new to add, tell me now and I'll put it on the ticket.",
            [],
        )
    if outcome == "closed":
        days = settings().ticket_reopen_days
        return (
            f"{reference} was resolved too long ago to reopen: we reopen tickets up to {days} days after "
            "they're resolved. Tell me what's wrong and I'll open a new ticket for it.",
            [{"title": "Report the problem", "payload": "/complaint"}],
        )
    return f"{reference} is still open, and our team is on it: there's nothing to reopen.", []


# A ticket's status in a few words, for a line in the customer's list of tickets.
STATUS_LABELS = {
    TicketStatus.NEW: "received",
    TicketStatus.OPEN: "being worked on",
    TicketStatus.PENDING_CUSTOMER: "waiting for your answer",
    TicketStatus.RESOLVED: "resolved",
    TicketStatus.CLOSED: "closed",
}
SUBJECT_IN_LIST = 60


def ticket_line(ticket: Ticket) -> str:
    """One line of the customer's ticket list: "KF-000431 · Parcel arrived damaged · being worked on"."""
    subject = " ".join(ticket.subject.split())
    if len(subject) > SUBJECT_IN_LIST:
        subject = subject[: SUBJECT_IN_LIST - 1].rstrip() + "…"
    return f"{ticket.reference} · {subject} · {STATUS_LABELS[ticket.status]}"


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
    return f"{head} is {tickets.STATE_WORDS[ticket.status]}.{update}{promise}"


class ValidateTicketForm(CustomerProofForm, FormValidationAction):
    """Asks for the reference (and, in an unverified chat, the contact that proves the ticket is theirs).

    A verified customer can pick from their tickets: no reference needed."""

    verified_skips = frozenset({"ticket_reference", "contact"})
    asks_order = False
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
            known_here = ticket is not None and (
                ticket.conversation_id == conversation.id or proven_here(session, conversation, reference)
            )
            wanted = [] if known_here else ["contact"]
        return [slot for slot in domain_slots if slot in wanted]

    async def get_validation_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events = await super().get_validation_events(dispatcher, tracker, domain)
        if (
            tracker.get_slot("ticket_purpose")
            and tracker.get_slot("requested_slot") is None
            and tracker.get_intent_of_latest_message() != "reopen_ticket"
        ):
            # A reopen left half-way must not turn a later "any news on it?" into a reopening.
            events.append(SlotSet("ticket_purpose", None))
        return events

    async def validate_ticket_reference(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        given = str(value or "")
        reference = tickets.parse_reference(given)
        if reference is not None:
            return {"ticket_reference": reference, **fitted()}
        if without_it(dispatcher, tracker):
            return {"ticket_reference": None, **fitted()}
        if WHERE_TO_FIND.search(given):
            dispatcher.utter_message(text=FIND_TICKET_REFERENCE)
            return {"ticket_reference": None, **fitted()}
        retry = "That doesn't look like a ticket reference. " + FIND_TICKET_REFERENCE
        return {"ticket_reference": None, **wont_fit(dispatcher, tracker, retry, self.stop_button)}


class ActionAskTicketReference(Action):
    """Asks for the ticket reference: in full the first time, briefly after an answer that didn't
    fit (the reply to that answer already said where to find it)."""

    def name(self) -> str:
        return "action_ask_ticket_reference"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("requested_slot") == "ticket_reference":
            dispatcher.utter_message(text="Which ticket reference should I look up?")
        else:
            dispatcher.utter_message(text="What's the ticket reference? " + FIND_TICKET_REFERENCE)
        return []


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
        reopening = tracker.get_slot("ticket_purpose") == REOPEN
        shown: list[str] = []  # the ticket the owner was told about: what "reopen it" means next

        def look_up(session: Session) -> tuple[str, str, list[dict[str, str]]]:
            conversation = conversation_for(session, tracker)
            intent = "reopen_ticket" if reopening else "check_ticket"
            trusted = proof.trusted(conversation, config)
            if reference is None:
                if conversation.customer_id is not None and not trusted:
                    return "code", str(conversation.customer_id), []
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
                            "title": ticket_line(t),
                            "payload": f'/{intent}{{"ticket_reference": "{t.reference}"}}',
                        }
                        for t in mine
                    ]
                    return "choose", "Which ticket is it? Here are your most recent ones.", buttons
                found = mine[0]
            else:
                tried = attempt(tracker, conversation, order_number=reference, contact=contact)
                if proof.paused(session, tried, config):
                    return "locked", LOCKED_OUT, []
                candidate = tickets.find_by_reference(session, reference)
                proven = candidate is not None and proven_here(session, conversation, reference)
                allowed = (
                    access(candidate, conversation, contact, proven=proven, trusted=trusted)
                    if candidate is not None
                    else "no"
                )
                if candidate is None or allowed == "no":
                    proof.record(session, tried, config, succeeded=False)
                    return "not_found", NOT_FOUND, []
                if contact is not None and not proven:
                    # The proof is remembered for this ticket only ("reopen it" next), not the customer.
                    proof.record(session, tried, config, succeeded=True)
                if allowed == "code":
                    return "code", str(candidate.customer_id), []
                found = candidate
            shown.append(found.reference)
            if reopening:
                return "reopen", *reopen_reply(found.reference, reopen(session, found))
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

        outcome, text, buttons = await in_transaction(look_up)
        if outcome == "code":  # `text` is the id of the customer to send it to
            purpose = f"{'reopen' if reopening else 'ticket'}:{reference or ''}"
            intro = "Before I show you a ticket, I need to make sure it's you. "
            return [*RESET, *await send_code(dispatcher, tracker, int(text), purpose, intro)]
        if outcome == "found":
            tagged = {"metadata": {"outcome": resolution.TICKET_STATUS}}  # see bot/crm/resolution.py
            dispatcher.utter_message(text=text, buttons=buttons, json_message=tagged)
        else:
            dispatcher.utter_message(text=text, buttons=buttons)
        # The reply is complete: wait for the customer. After the ticket form a rule says so; after an
        # e-mailed code (action_code_checked) no rule does, and a guessed next action such as the
        # fallback would take back the turn, and with it which ticket "reopen it" means.
        return [
            *RESET,
            *(SlotSet("last_ticket", reference) for reference in shown),
            FollowupAction("action_listen"),
        ]


class ActionReopenTicket(Action):
    """Reopens a recently resolved ticket of this customer when the problem came back.

    A chat that has not shown the ticket is its own is asked for the same proof as for checking it
    (the ticket form, with `ticket_purpose` "reopen"), and action_check_ticket reopens it then."""

    def name(self) -> str:
        return "action_reopen_ticket"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # "Reopen it" right after seeing a ticket is about that ticket.
        reference = tickets.parse_reference(
            str(tracker.get_slot("ticket_reference") or tracker.get_slot("last_ticket") or "")
        )

        def try_reopen(session: Session) -> tuple[str, list[dict[str, str]]] | None:
            conversation = conversation_for(session, tracker)
            ticket = tickets.find_by_reference(session, reference) if reference else None
            trusted = proof.trusted(conversation, settings())
            proven = ticket is not None and proven_here(session, conversation, ticket.reference)
            if (
                ticket is not None
                and access(ticket, conversation, None, proven=proven, trusted=trusted) == "show"
            ):
                return reopen_reply(ticket.reference, reopen(session, ticket))
            if trusted and reference is not None:
                return NOT_FOUND, []  # a customer proven by code has nothing more to prove
            return None

        reply = await in_transaction(try_reopen)
        if reply is None:
            if reference is not None:
                dispatcher.utter_message(text=f"I can reopen {reference} once I know it's yours.")
            return [
                SlotSet("ticket_reference", reference),
                SlotSet("contact", None),
                SlotSet("ticket_purpose", REOPEN),
                FollowupAction("ticket_form"),
            ]
        text, buttons = reply
        dispatcher.utter_message(text=text, buttons=buttons)
        return list(RESET)
