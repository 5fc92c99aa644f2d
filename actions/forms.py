"""What the forms that need proof of the customer share: skipping what a verified chat already proved,
checking the contact given, and the verified customer's recent orders as buttons."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction
from bot.crm import orders as crm
from bot.crm.models import Conversation, Order


class CustomerProofForm:
    """Mixin for a FormValidationAction (listed before it) whose form proves who the customer is.

    A chat already linked to a customer needs no second proof: the slots in `verified_skips` are not
    asked. The `contact` slot must be an e-mail address or phone number; otherwise the customer is
    asked again with `contact_retry`.
    """

    verified_skips: ClassVar[frozenset[str]] = frozenset({"contact"})
    contact_retry: ClassVar[str]

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        def needs(session: Session) -> list[str]:
            conversation = conversation_for(session, tracker)
            if conversation.customer_id is not None:
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
        contact = crm.parse_contact(str(value or ""))
        if contact is None:
            dispatcher.utter_message(text=self.contact_retry)
            return {"contact": None}
        return await self.contact_given(str(value).strip(), contact, dispatcher, tracker)

    async def contact_given(
        self, given: str, contact: crm.Contact, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        """The slots to set for a well-formed contact (`given` as typed, trimmed): just the contact."""
        return {"contact": given}


async def recent_orders_of_chat(tracker: Tracker) -> list[Order] | None:
    """The most recent orders of the chat's verified customer; None when the chat is not verified."""

    def recent(session: Session) -> list[Order] | None:
        conversation = conversation_for(session, tracker)
        if conversation.customer_id is None:
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
