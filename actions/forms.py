"""What the forms that need proof of the customer share: validating only what the customer said,
skipping what a verified chat already proved, checking the contact given, and the verified
customer's recent orders as buttons."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, settings
from bot.crm import orders as crm
from bot.crm import proof
from bot.crm.models import Conversation, Order

# A customer stopping a form, whatever it asked ("never mind", "forget it", "cancel", "bye").
STOP = re.compile(
    r"^\W*(?:oh\s+|ok(?:ay)?\s+|actually\s+)?(cancel|never ?mind|forget (?:it|about it)|stop|"
    r"don'?t bother|leave it|no complaint|(?:good)?bye)\b",
    re.IGNORECASE,
)
# "Where do I find the order number?"
WHERE_TO_FIND = re.compile(
    r"\b(?:where|how)\b.*\b(?:find|get|see|look|locate)\b|\bwhat(?:'s| is| does)\b.*\b(?:number|look like)\b",
    re.IGNORECASE,
)
# "I don't know it", "I lost the e-mail", "can you look it up by my name?"
DONT_KNOW = re.compile(
    r"\b(?:don'?t|do not|dont|can'?t|cannot|cant)\s+(?:know|have|find|remember|recall|see)\b|"
    r"\b(?:lost|deleted|no idea|not sure|by (?:my )?name|my name is|without (?:it|the number))\b",
    re.IGNORECASE,
)
MISFITS = "form_misfits"
PERSON_BUTTON = {"title": "Talk to a person", "payload": "/request_human"}
DONT_KNOW_BUTTON = {"title": "I don't know it", "payload": "I don't know the order number"}
FIND_ORDER_NUMBER = (
    "The order number has 6 digits, like #100123. It's in the confirmation e-mail we sent when you "
    "ordered (and in every shipping e-mail), and in your account under Orders."
)
FIND_TICKET_REFERENCE = (
    "The ticket reference looks like KF-000123. It's in the message where we confirmed your "
    "complaint or request, and in every e-mail we sent you about it."
)
# What to say when the customer doesn't have what the form asks for, by the slot asked.
_WITHOUT = {
    "order_number": (
        "No problem. To keep your orders private I can only look one up here with its number. "
        + FIND_ORDER_NUMBER
    ),
    "ticket_reference": (
        "No problem. To keep your tickets private I can only look one up here with its reference. "
        + FIND_TICKET_REFERENCE
    ),
}


def latest_text(tracker: Tracker) -> str:
    """What the customer typed last ("" for a button that carries only an intent)."""
    text = str(tracker.latest_message.get("text") or "").strip()
    return "" if text.startswith("/") else text


def fitted() -> dict[str, Any]:
    """An answer that fits the question: the count of answers that didn't starts again."""
    return {MISFITS: None}


def wont_fit(
    dispatcher: CollectingDispatcher, tracker: Tracker, retry: str, stop: dict[str, str]
) -> dict[str, Any]:
    """An answer that doesn't fit the question. The first time, say what is needed; from the second
    in a row, apologise and offer a person and a way to stop (`stop` is that button)."""
    count = int(tracker.get_slot(MISFITS) or 0) + 1
    if count >= 2:
        dispatcher.utter_message(
            text="Sorry, I'm not getting this right. " + retry + " Or, if you'd rather, a person from "
            "our team can take over, or we can stop here.",
            buttons=[PERSON_BUTTON, stop],
        )
    else:
        dispatcher.utter_message(text=retry)
    return {MISFITS: float(count)}


# What each form question needs, said when an answer can't be read as one.
_NEEDED = {
    "order_number": "I need the order number to look it up. " + FIND_ORDER_NUMBER,
    "ticket_reference": "I need the ticket reference to look it up. " + FIND_TICKET_REFERENCE,
    "contact": "I need the e-mail address or phone number you ordered with, for example "
    "name@example.com or +44 7700 900123.",
}


def not_an_answer(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """A message the form's question can't use and nothing else can either ("the blue one" when
    no articles were offered): said so, and counted like any answer that doesn't fit."""
    needed = _NEEDED.get(str(tracker.get_slot("requested_slot") or ""), "Sorry, I didn't get that.")
    slots = wont_fit(dispatcher, tracker, needed, {"title": "Never mind", "payload": "/deny"})
    return [SlotSet(name, value) for name, value in slots.items()]


def without_it(dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
    """When the customer says they don't have the order number or ticket reference the form is
    asking for: say where to find it and offer a person or stopping here (True), rather than
    reading the answer as the number or as a question for the knowledge base."""
    explained = _WITHOUT.get(str(tracker.get_slot("requested_slot") or ""))
    if explained is None or not DONT_KNOW.search(latest_text(tracker)):
        return False
    dispatcher.utter_message(
        text=explained + " If you can't find it, a person from our team can help you.",
        buttons=[PERSON_BUTTON, {"title": "Never mind", "payload": "/deny"}],
    )
    return True


class CustomerProofForm:
    """Mixin for a FormValidationAction (listed before it) whose form proves who the customer is.

    A chat already linked to a customer needs no second proof: the slots in `verified_skips` are not
    asked. The `contact` slot must be an e-mail address or phone number; otherwise the customer is
    asked again with `contact_retry`.
    """

    verified_skips: ClassVar[frozenset[str]] = frozenset({"contact"})
    contact_retry: ClassVar[str]
    # Whether the form is about an order: then a number given for the contact changes the order.
    asks_order: ClassVar[bool] = True
    # The button that ends the form when the customer can't go on.
    stop_button: ClassVar[dict[str, str]] = {"title": "Never mind", "payload": "/deny"}

    async def get_validation_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """Validates the values the customer gave, and only those.

        rasa-sdk validates every slot event at the end of the tracker, including the ones the action
        that started the form set to None to clear it. Validating "nothing" asked the customer for
        an order number, an e-mail and a category before a single question had been put, so a slot
        set to None is passed on as it is, unvalidated.
        """
        form_slots = self.domain_slots(domain)  # type: ignore[attr-defined]  # FormValidationAction's
        wanted = await self.required_slots(form_slots, dispatcher, tracker, domain)
        slots: dict[str, Any] = {}
        for name, value in tracker.slots_to_validate().items():
            if name not in wanted:
                continue
            slots[name] = value
            validate = getattr(self, f"validate_{name}", None)
            if value is None or validate is None:
                continue
            result = await validate(value, dispatcher, tracker, domain)
            slots.update(result)
            tracker.slots.update(result)
        return [SlotSet(name, value) for name, value in slots.items()]

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        config = settings()
        number = crm.parse_order_number(str(tracker.get_slot("order_number") or ""))

        def needs(session: Session) -> list[str]:
            conversation = conversation_for(session, tracker)
            # A chat proven with a code needs no second proof; one that proved an order with its
            # contact needs none for that order only (bot/crm/proof.py).
            if proof.trusted(conversation, config) or (
                conversation.customer_id is not None
                and number is not None
                and crm.recently_proven(
                    session, conversation, number, timedelta(hours=config.verification_valid_hours)
                )
            ):
                return [slot for slot in domain_slots if slot not in self.verified_skips]
            return self.unverified_slots(session, conversation, domain_slots, tracker)

        return await in_transaction(needs)

    def unverified_slots(
        self, session: Session, conversation: Conversation, domain_slots: list[str], tracker: Tracker
    ) -> list[str]:
        """The slots asked in a chat not linked to a customer (inside the transaction): all of them."""
        return list(domain_slots)

    async def validate_contact(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        given = str(value or "").strip()
        contact = crm.parse_contact(given)
        if contact is None:
            return {"contact": None, **await self.not_a_contact(given, dispatcher, tracker)}
        return {**fitted(), **await self.contact_given(given, contact, dispatcher, tracker)}

    async def not_a_contact(
        self, given: str, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        """The slots to set when the answer to the contact question is no e-mail or phone number.

        A new order number changes the order (and the contact is asked again for it); anything
        else doesn't fit the question."""
        number = crm.parse_order_number(given)
        if number is not None and self.asks_order:
            dispatcher.utter_message(
                text=f"Got it, order #{number}. I still need the e-mail address or phone number you "
                "ordered it with."
            )
            return {"order_number": number, **fitted()}
        return wont_fit(dispatcher, tracker, self.contact_retry, self.stop_button)

    async def contact_given(
        self, given: str, contact: crm.Contact, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        """The slots to set for a well-formed contact (`given` as typed, trimmed): just the contact."""
        return {"contact": given}


async def recent_orders_of_chat(tracker: Tracker) -> list[Order] | None:
    """The most recent orders of the chat's customer; None unless the chat proved itself with a code."""

    def recent(session: Session) -> list[Order] | None:
        conversation = conversation_for(session, tracker)
        if conversation.customer_id is None or not proof.trusted(conversation, settings()):
            return None
        return crm.recent_orders(session, conversation.customer_id)

    return await in_transaction(recent)


def order_buttons(orders: Iterable[Order], intent: str, with_status: bool = False) -> list[dict[str, str]]:
    """A button per order, sending `intent` with its number; titled number · date (· status)."""
    buttons = []
    for order in orders:
        title = f"#{order.number} · {order.placed_at:%-d %b %Y}"
        if with_status:
            title += f" · {order.status.value.replace('_', ' ')}"
        buttons.append({"title": title, "payload": f'/{intent}{{"order_number": "{order.number}"}}'})
    return buttons
