"""Complaints: apologise, collect what happened and what the customer wants, file a ticket, promise a time."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, latest_message_id, settings, sla_policy
from actions.forms import CustomerProofForm, order_buttons, recent_orders_of_chat
from actions.handoff import hand_over, trigger_on
from actions.orders import LOCKED_OUT, describe_order, prove_order
from bot.crm import complaints, sla, tickets
from bot.crm import orders as crm
from bot.crm.models import Customer, Severity, Ticket, ValueTier, utcnow

FORM_SLOTS = ("complaint_category", "complaint_details", "complaint_outcome")
RESET = [
    SlotSet("order_number", None),
    SlotSet("contact", None),
    *(SlotSet(name, None) for name in FORM_SLOTS),
    SlotSet("complaint_cancelled", None),
    SlotSet("complaint_opening", None),
]
NO_ORDER = "none"
_CANCEL = re.compile(
    r"^\W*(cancel|never ?mind|forget (?:it|about it)|stop|don'?t bother|leave it|no complaint)\b",
    re.IGNORECASE,
)
CATEGORY_BUTTONS = [
    {"title": label[0].upper() + label[1:], "payload": f'/inform{{"complaint_category": "{key}"}}'}
    for key, label in complaints.CATEGORIES.items()
]
OUTCOME_BUTTONS = [
    {"title": label[0].upper() + label[1:], "payload": f'/inform{{"complaint_outcome": "{key}"}}'}
    for key, label in complaints.OUTCOMES.items()
]


def _text(tracker: Tracker) -> str:
    return str(tracker.latest_message.get("text") or "")


def promised(moment: datetime | None, policy: sla.SlaPolicy) -> str:
    """A due time as the customer reads it, in the shop's time zone."""
    if moment is None:
        return "as soon as we can"
    local = moment.astimezone(policy.zone)
    return f"{local:%A %-d %B, %H:%M} ({policy.timezone} time)"


class ActionStartComplaint(Action):
    """Apologises first, then notes what the opening message already says (category, story, wish)."""

    def name(self) -> str:
        return "action_start_complaint"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = _text(tracker)
        if text.startswith("/"):  # a button ("Report a fault") carries no story
            text = ""
        dispatcher.utter_message(
            text="I'm sorry this happened. I'll take down the details so the right person can put it "
            "right, and you'll get a reference number."
        )
        descriptive = complaints.is_descriptive(text)
        entity_order = next(
            (
                e.get("value")
                for e in tracker.latest_message.get("entities", [])
                if e.get("entity") == "order_number"
            ),
            None,
        )
        return [
            *RESET,
            SlotSet("order_number", crm.parse_order_number(str(entity_order)) if entity_order else None),
            SlotSet("complaint_opening", text[:2000] or None),
            SlotSet("complaint_category", complaints.infer_category(text) if descriptive else None),
            SlotSet("complaint_details", text[:2000] if descriptive else None),
            SlotSet("complaint_outcome", complaints.infer_outcome(text)),
        ]


class ValidateComplaintForm(CustomerProofForm, FormValidationAction):
    """Checks each answer in the complaint form; the order (if any) must be proven to be the customer's.

    A verified chat needs no contact: we know who it is and answer here."""

    contact_retry = (
        "I need an e-mail address or phone number, for example name@example.com or +44 7700 900123."
    )

    def name(self) -> str:
        return "validate_complaint_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot("complaint_cancelled"):
            return []
        return await super().required_slots(domain_slots, dispatcher, tracker, domain)

    def _cancelled(self, value: Any, dispatcher: CollectingDispatcher) -> dict[str, Any] | None:
        if isinstance(value, str) and _CANCEL.match(value):
            dispatcher.utter_message(
                text="Alright, I haven't filed anything. If you change your mind, just tell me."
            )
            return {"complaint_cancelled": True, "order_number": None, "contact": None}
        return None

    async def validate_order_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (stop := self._cancelled(value, dispatcher)) is not None:
            return stop
        if value == NO_ORDER:
            return {"order_number": NO_ORDER}
        number = crm.parse_order_number(str(value or ""))
        if number is None:
            dispatcher.utter_message(
                text="That doesn't look like an order number: it has 6 digits, like #100123. If your "
                "complaint isn't about an order, just say so."
            )
            return {"order_number": None}

        def check(session: Session) -> str:
            conversation = conversation_for(session, tracker)
            if conversation.customer_id is None:
                return "later"  # proven together with the contact details
            outcome, _ = prove_order(session, conversation, number, None)
            return outcome

        outcome = await in_transaction(check)
        if outcome == "locked":
            dispatcher.utter_message(text=LOCKED_OUT + " I'll file your complaint without the order.")
            return {"order_number": NO_ORDER}
        if outcome == "not_found":
            dispatcher.utter_message(
                text=f"I can't find order #{number} on your account. Please check the number, or say "
                "if the complaint isn't about an order."
            )
            return {"order_number": None}
        return {"order_number": number}

    async def validate_contact(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (stop := self._cancelled(value, dispatcher)) is not None:
            return stop
        return await super().validate_contact(value, dispatcher, tracker, domain)

    async def contact_given(
        self, given: str, contact: crm.Contact, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        """Proves the order named earlier, if any, with the contact."""
        number = tracker.get_slot("order_number")
        if number in (None, NO_ORDER):
            return {"contact": given}

        def check(session: Session) -> str:
            outcome, _ = prove_order(session, conversation_for(session, tracker), str(number), contact)
            return outcome

        outcome = await in_transaction(check)
        if outcome == "found":
            return {"contact": given}
        if outcome == "locked":
            dispatcher.utter_message(text=LOCKED_OUT + " I'll file your complaint without the order.")
            return {"order_number": NO_ORDER, "contact": given}
        dispatcher.utter_message(
            text="Those details don't match an order of ours. Let's try again: what's the order number? "
            "If the complaint isn't about an order, just say so."
        )
        return {"order_number": None, "contact": None}

    async def validate_complaint_category(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (stop := self._cancelled(value, dispatcher)) is not None:
            return stop
        category = complaints.parse_category(str(value or ""))
        if category is None:
            dispatcher.utter_message(
                text="Sorry, I didn't catch which of these it is. Please pick the closest one."
            )
            return {"complaint_category": None}
        return {"complaint_category": category}

    async def validate_complaint_details(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (stop := self._cancelled(value, dispatcher)) is not None:
            return stop
        text = str(value or "").strip()
        if len(re.findall(r"\w+", text)) < 2:
            dispatcher.utter_message(
                text="Could you tell me a bit more? A sentence or two about what happened is enough."
            )
            return {"complaint_details": None}
        return {"complaint_details": text[:2000]}

    async def validate_complaint_outcome(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (stop := self._cancelled(value, dispatcher)) is not None:
            return stop
        outcome = complaints.parse_outcome(str(value or ""))
        # Anything else the customer asks for is kept in their words and read by a person.
        return {"complaint_outcome": outcome or f"other: {str(value).strip()[:200]}"}


class ActionAskComplaintOrderNumber(Action):
    """Asks which order the complaint is about, with the customer's recent orders when we know them."""

    def name(self) -> str:
        return "action_ask_complaint_form_order_number"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        buttons = order_buttons(await recent_orders_of_chat(tracker) or [], "inform")
        buttons.append({"title": "It's not about an order", "payload": "/deny"})
        dispatcher.utter_message(
            text="Which order is it about? The number has 6 digits, like #100123, and it's in your "
            "confirmation e-mail.",
            buttons=buttons,
        )
        return []


class ActionAskComplaintContact(Action):
    """Asks for an e-mail or phone: to prove the order, or to reach the customer when there is none."""

    def name(self) -> str:
        return "action_ask_complaint_form_contact"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("order_number") in (None, NO_ORDER):
            dispatcher.utter_message(
                text="What e-mail address or phone number can our team reach you on about this?"
            )
        else:
            dispatcher.utter_message(
                text="To make sure the order is yours, what's the e-mail address or phone number you "
                "ordered with?"
            )
        return []


class ActionAskComplaintCategory(Action):
    """Asks what kind of problem it is, as buttons."""

    def name(self) -> str:
        return "action_ask_complaint_category"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(text="What is the complaint about?", buttons=CATEGORY_BUTTONS)
        return []


class ActionAskComplaintOutcome(Action):
    """Asks what would put it right for the customer, as buttons."""

    def name(self) -> str:
        return "action_ask_complaint_outcome"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(
            text="What would put this right for you? Pick one, or tell me in your own words.",
            buttons=OUTCOME_BUTTONS,
        )
        return []


class ActionSubmitComplaint(Action):
    """Files the complaint as a ticket (or adds to the open one about the same order) and promises a time."""

    def name(self) -> str:
        return "action_submit_complaint"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("complaint_cancelled"):
            return list(RESET)
        config = settings()
        policy = sla_policy()
        number = tracker.get_slot("order_number")
        category = str(tracker.get_slot("complaint_category") or "other")
        details = str(tracker.get_slot("complaint_details") or "")
        opening = str(tracker.get_slot("complaint_opening") or "")
        outcome = str(tracker.get_slot("complaint_outcome") or "") or None
        contact = tracker.get_slot("contact")
        message_id = latest_message_id(tracker)

        def file(session: Session) -> tuple[str, Ticket]:
            conversation = conversation_for(session, tracker)
            order = None
            if number not in (None, NO_ORDER) and conversation.customer_id is not None:
                order = crm.customer_order(session, conversation.customer_id, str(number))
            story = details if opening in details else f"{opening}\n{details}".strip()
            assessment = complaints.assess(story, order, utcnow().date())
            if order is not None:
                existing = tickets.open_complaint_about(session, order.id, config.ticket_reopen_days)
                if existing is not None:
                    happened = tickets.customer_replied(session, existing, story, config.ticket_reopen_days)
                    if assessment.severity is Severity.HIGH and existing.severity is not Severity.HIGH:
                        existing.severity = Severity.HIGH
                        tickets.add_event(
                            session, existing, "bot", "severity_raised", {"reasons": assessment.reasons}
                        )
                    return happened, existing
            subject = complaints.CATEGORIES.get(category, category)
            subject = subject[0].upper() + subject[1:]
            if order is not None:
                subject += f" (order #{order.number})"
            ticket = tickets.open_ticket(
                session,
                kind="complaint",
                category=category,
                subject=subject,
                description=story,
                desired_outcome=(outcome or "")[:32] or None,
                policy=policy,
                severity=assessment.severity,
                contact=None if conversation.customer_id is not None else contact,
                actor="bot",
                customer_id=conversation.customer_id,
                conversation_id=conversation.id,
                order_id=order.id if order is not None else None,
                source_message_id=message_id,
                data={"severity_reasons": assessment.reasons, "outcome": outcome},
            )
            if order is not None:
                tickets.add_event(session, ticket, "bot", "order_status", {"status": describe_order(order)})
            return "created", ticket

        happened, ticket = await in_transaction(file)
        if happened == "created":
            dispatcher.utter_message(
                text=f"Thank you for telling us. Your complaint is filed as {ticket.reference}. A person "
                f"from our team will reply here by {promised(ticket.sla_first_response_due, policy)}, and "
                f"we aim to have it sorted by {promised(ticket.sla_resolution_due, policy)}."
            )
        elif happened == "reopened":
            dispatcher.utter_message(
                text=f"You complained about this order recently, so I've reopened {ticket.reference} and "
                "added what you told me, rather than starting again. Our team will pick it up from there."
            )
        else:
            dispatcher.utter_message(
                text=f"You already have an open complaint about this order, {ticket.reference}, so I've "
                "added what you told me to it rather than opening a second one. The team handling it "
                "will see it straight away."
            )
        done: list[EventType] = [*RESET, SlotSet("last_ticket", ticket.reference)]
        if ticket.severity is Severity.HIGH and trigger_on("severe_complaint"):
            return done + await hand_over(
                dispatcher, tracker, "severe_complaint", lead_in="Because this sounds serious,"
            )
        if (
            ticket.customer_id is not None
            and trigger_on("vip_complaint")
            and await _is_vip(ticket.customer_id)
        ):
            return done + await hand_over(
                dispatcher, tracker, "vip_complaint", lead_in="Let me get this moving now:"
            )
        if ticket.severity is Severity.HIGH:
            dispatcher.utter_message(
                text="Because this sounds serious, I can put you through to a person right now.",
                buttons=[
                    {"title": "Talk to a person now", "payload": "/request_human"},
                    {"title": "No, a reply later is fine", "payload": "/deny"},
                ],
            )
        return [*RESET, SlotSet("last_ticket", ticket.reference)]


async def _is_vip(customer_id: int) -> bool:
    def tier(session: Session) -> ValueTier | None:
        customer = session.get(Customer, customer_id)
        return customer.value_tier if customer is not None else None

    return await in_transaction(tier) is ValueTier.VIP


class ActionOrderStatusInComplaint(Action):
    """Answers "where is my order?" in the middle of a complaint, then the complaint carries on."""

    def name(self) -> str:
        return "action_order_status_in_complaint"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        number = crm.parse_order_number(str(tracker.get_slot("order_number") or ""))

        def look_up(session: Session) -> str | None:
            conversation = conversation_for(session, tracker)
            if number is None or conversation.customer_id is None:
                return None
            order = crm.customer_order(session, conversation.customer_id, number)
            return describe_order(order) if order is not None else None

        status = await in_transaction(look_up)
        if status is None:
            dispatcher.utter_message(
                text="I'll check where it is as soon as we've identified the order together. Let's finish "
                "the complaint first."
            )
        else:
            dispatcher.utter_message(text=status + " Now, back to your complaint.")
        return []
