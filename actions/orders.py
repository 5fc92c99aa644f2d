"""Order tracking: collect and check the proof of ownership, then answer from the CRM."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, latest_message_id, settings, sla_policy
from actions.followups import offer_second_request, refers_back, remember_second_request, split_requests
from actions.forms import (
    DONT_KNOW_BUTTON,
    FIND_ORDER_NUMBER,
    PERSON_BUTTON,
    WHERE_TO_FIND,
    CustomerProofForm,
    fitted,
    latest_text,
    order_buttons,
    recent_orders_of_chat,
    without_it,
    wont_fit,
)
from actions.knowledge import article_instead
from actions.proof import CODE_SLOT, FOR_SLOT, PROVED, STOPPED, attempt, send_code
from bot.crm import complaints, proof, resolution, tickets
from bot.crm import orders as crm
from bot.crm.audit import audit
from bot.crm.models import Conversation, Order, OrderStatus, Severity, Shipment, Ticket, utcnow

logger = logging.getLogger(__name__)

NOT_FOUND = (
    "I couldn't find an order matching those details. Please check the order number and the "
    "e-mail address or phone number you ordered with, and try again."
)
LOCKED_OUT = (
    "There have been too many unsuccessful attempts to look up an order, so I've paused order "
    "look-ups for this chat. Please try again in an hour, or ask for a person and we'll help you."
)
# What an order's own proof is not enough for: these need the one-time code (bot/crm/proof.py).
NEED_CODE = frozenset({"cancel", "refund", "list"})
CODE_INTROS = {
    "cancel": "Order #{number} is on your account. Before I cancel anything, I need to make sure it's you. ",
    "refund": "Order #{number} is on your account. Before I start a refund, I need to make sure it's you. ",
    "list": "Thanks, that's order #{number}. To show all your orders, I need to make sure it's you. ",
    "track": "",
    "risky": "Someone has been trying wrong details for this order or e-mail lately, so I need one more "
    "step before I show it. ",
}
RESET_FORM = [SlotSet("order_number", None), SlotSet("contact", None), SlotSet("order_purpose", None)]
# What the order form was started for, by the intent that started it.
PURPOSES = {"track_order": "track", "inform": "track", "cancel_order": "cancel", "request_refund": "refund"}
# Complaint categories that make a refund request a complaint when the message tells the story.
WENT_WRONG = frozenset({"product_defect", "wrong_or_missing_item", "delivery_problem"})


def _date(value: Any) -> str:
    return f"{value:%a %-d %b %Y}"


def _latest_event_line(shipment: Shipment) -> str:
    if not shipment.events:
        return ""
    event = shipment.events[-1]
    where = f", {event.location}" if event.location else ""
    return f"Latest update ({event.occurred_at:%-d %b, %H:%M} UTC): {event.description}{where}."


def describe_order(order: Order, today: date | None = None) -> str:
    """The status of an order as a customer reads it: where it is and when it will arrive."""
    today = today or utcnow().date()
    placed = f"Order #{order.number}, placed {_date(order.placed_at)}"
    shipment = order.shipments[-1] if order.shipments else None
    if order.status is OrderStatus.PROCESSING or shipment is None:
        if order.status is OrderStatus.CANCELLED:
            return f"{placed}, was cancelled. No payment is taken for cancelled orders."
        return (
            f"{placed}, is being prepared in our warehouse and hasn't shipped yet. "
            "You'll get the tracking number by e-mail as soon as it leaves us."
        )
    carrier = f"{shipment.carrier}, tracking number {shipment.tracking_number}"
    latest = _latest_event_line(shipment)
    expected = f" Expected delivery: {_date(shipment.promised_date)}." if shipment.promised_date else ""
    if order.status is OrderStatus.DELIVERED:
        when = _date(shipment.delivered_at) if shipment.delivered_at else "recently"
        return f"{placed}, was delivered on {when} ({carrier})."
    if order.status is OrderStatus.RETURNED:
        return f"{placed}, has been returned to us ({carrier}). {latest}".strip()
    if order.status is OrderStatus.CANCELLED:
        return f"{placed}, was cancelled before delivery ({carrier}). {latest}".strip()
    if order.status is OrderStatus.DELAYED:
        due = shipment.promised_date
        if due is not None and due < today:
            expected = f" It was due on {_date(due)}; the carrier hasn't given a new date yet."
        return f"I'm sorry: {placed[0].lower()}{placed[1:]}, is delayed with {carrier}. {latest}{expected}"
    state = {OrderStatus.SHIPPED: "has shipped", OrderStatus.IN_TRANSIT: "is on its way"}[order.status]
    return f"{placed}, {state} with {carrier}. {latest}{expected}"


class ValidateOrderForm(CustomerProofForm, FormValidationAction):
    """Checks the order number and contact details the customer gives while tracking an order.

    A conversation already linked to a customer needs no second proof: the number is enough."""

    contact_retry = (
        "I need the e-mail address or phone number you used when ordering, "
        "for example name@example.com or +44 7700 900123."
    )

    def name(self) -> str:
        return "validate_order_form"

    async def validate_order_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        given = str(value or "").strip()
        # "where is 100001 and how do I return 100002?": this form is for the first request.
        first, _rest = split_requests(latest_text(tracker))
        number = crm.parse_order_number(first) or crm.parse_order_number(given)
        if number is None:
            return {"order_number": None, **no_order_number(given, dispatcher, tracker)}
        if not await in_transaction(lambda session: crm.order_exists(session, number)):
            dispatcher.utter_message(
                text=f"I can't find order #{number}. Could you check the number?",
                buttons=[DONT_KNOW_BUTTON, PERSON_BUTTON],
            )
            return {"order_number": None, **fitted()}
        return {"order_number": number, **fitted()}


def no_order_number(given: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
    """An answer to "which order?" without a number: where to find it, what to do without it, or
    (when it is neither) what the number looks like."""
    if without_it(dispatcher, tracker):
        return fitted()
    if WHERE_TO_FIND.search(given):
        dispatcher.utter_message(text=FIND_ORDER_NUMBER)
        return fitted()
    return wont_fit(
        dispatcher,
        tracker,
        "I need the order number to look it up. " + FIND_ORDER_NUMBER,
        {"title": "Never mind", "payload": "/deny"},
    )


class ActionAskOrderNumber(Action):
    """Asks for the order number, offering a verified customer their recent orders as buttons."""

    def name(self) -> str:
        return "action_ask_order_number"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        buttons = order_buttons(await recent_orders_of_chat(tracker) or [], "track_order", with_status=True)
        if tracker.get_slot("requested_slot") == "order_number":
            # Asked again after an answer that didn't fit: the reply to it said why, so just ask.
            dispatcher.utter_message(
                text="Which order number should I look up?", buttons=buttons or [DONT_KNOW_BUTTON]
            )
        elif buttons:
            dispatcher.utter_message(text="Which order is it? Pick one or type its number.", buttons=buttons)
        elif tracker.get_slot("contact"):
            # An e-mail or phone on its own: it proves an order, but never finds one (anyone may
            # know an address), so the number is still needed, and a person is the way without it.
            dispatcher.utter_message(
                text="Thanks. I also need the order number: I can't look orders up by e-mail or phone "
                "alone, to keep them private. It has 6 digits, like #100123, and it's in your order "
                "confirmation e-mail. If you can't find it, a person from our team can help.",
                buttons=[PERSON_BUTTON],
            )
        else:
            dispatcher.utter_message(
                text="Sure, I can check that. What's the order number? It has 6 digits, like "
                "#100123, and it's in your order confirmation e-mail.",
                buttons=[DONT_KNOW_BUTTON],
            )
        return []


def prove_order(
    session: Session,
    tracker: Tracker,
    conversation: Conversation,
    number: str | None,
    contact: crm.Contact | None,
) -> tuple[str, Order | None]:
    """Check that the order is this chat's customer's: "found", "not_found", "locked", "missing", or
    "needs_code" (the details are right, but too many wrong tries were made for this e-mail, phone or
    order lately: only the one-time code proves it now; the order is returned to send it to).

    Slot values come from the client and are never trusted: ownership is re-checked on every use.
    A chat proven with a code sees all its customer's orders; otherwise an order needs its own proof
    (its number with its contact, or proven by this chat earlier). Rules: bot/crm/proof.py.
    """
    config = settings()
    if number is None:
        return "missing", None
    tried = attempt(tracker, conversation, order_number=number, contact=contact)
    if proof.paused(session, tried, config):
        return "locked", None
    window = timedelta(hours=config.verification_valid_hours)
    if proof.trusted(conversation, config) or (
        conversation.customer_id is not None and crm.recently_proven(session, conversation, number, window)
    ):
        assert conversation.customer_id is not None
        order = crm.customer_order(session, conversation.customer_id, number)
        if order is not None:
            return "found", order
        if contact is None:  # another customer's number, named by a proven chat
            proof.record(
                session, attempt(tracker, conversation, order_number=number), config, succeeded=False
            )
            return "not_found", None
    if contact is None:
        return "missing", None
    risky = proof.under_attack(session, tried, config)
    order = crm.verify_order_owner(session, number, contact)
    proof.record(session, tried, config, succeeded=order is not None)
    if order is None:
        if proof.paused(session, tried, config):
            audit(
                session,
                "customer",
                "verification_locked",
                "conversation",
                conversation.id,
                {"order_number": number, "address": tried.address},
            )
            logger.warning("order look-ups paused for conversation %s", conversation.id)
            return "locked", None
        return "not_found", None
    if risky:
        return "needs_code", order
    crm.link_conversation(session, conversation, order.customer)
    return "found", order


class ActionStartOrderRequest(Action):
    """Notes what the customer wants done with an order (track, cancel, refund) before the order form."""

    def name(self) -> str:
        return "action_start_order_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        purpose = PURPOSES.get(str(intent), "track")
        said = latest_text(tracker)
        if (
            purpose == "refund"
            and complaints.is_descriptive(said)
            and complaints.infer_category(said) in WENT_WRONG
        ):
            # "the mug arrived smashed, I want a refund": a complaint whose wish is a refund, so
            # what went wrong is recorded and put right, whatever the return window says.
            return [FollowupAction("action_start_complaint")]
        named = next(tracker.get_latest_entity_values("order_number"), None)
        waiting = tracker.get_slot("pending_cancel")
        if purpose == "cancel" and waiting and named in (None, waiting):
            # "yes cancel it" right after "Shall I cancel it?" is the answer, not a new request.
            return [FollowupAction("action_confirm_cancel")]
        if await article_instead(tracker, decisive_only=named is not None):
            # "how long do refunds take?": a question our articles answer, not a request to act on.
            return [FollowupAction("action_answer_question")]
        events: list[EventType] = [
            SlotSet("order_purpose", purpose),
            SlotSet("pending_cancel", None),
            SlotSet("next_steps", None),
            SlotSet("form_misfits", None),
            *remember_second_request(tracker),
        ]
        text = str(tracker.latest_message.get("text") or "")
        earlier = tracker.get_slot("last_order")
        if named is None and earlier and refers_back(text):
            # "ok so what's happening with it now?": the order we were just talking about.
            events.append(SlotSet("order_number", earlier))
        return events


class ActionOrderRequest(Action):
    """Verifies that the order is the customer's, then tracks it, or starts its cancellation or refund."""

    def name(self) -> str:
        return "action_order_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        number = crm.parse_order_number(str(tracker.get_slot("order_number") or ""))
        contact = crm.parse_contact(str(tracker.get_slot("contact") or ""))
        purpose = str(tracker.get_slot("order_purpose") or "track")
        message_id = latest_message_id(tracker)

        def check(session: Session) -> tuple[str, Order | None, list[EventType]]:
            conversation = conversation_for(session, tracker)
            outcome, order = prove_order(session, tracker, conversation, number, contact)
            if order is None:
                return outcome, None, []
            trusted = proof.trusted(conversation, settings())
            if outcome == "needs_code" or (purpose in NEED_CODE and not trusted):
                return "code", order, []
            return outcome, order, carry_out(session, dispatcher, conversation, order, purpose, message_id)

        outcome, order, events = await in_transaction(check)
        if outcome == "code" and order is not None:
            intro = CODE_INTROS.get(purpose, CODE_INTROS["track"]).format(number=order.number)
            if purpose == "track":  # only asked for because of wrong tries by someone, somewhere
                intro = CODE_INTROS["risky"]
            sent = await send_code(dispatcher, tracker, order.customer_id, f"{purpose}:{order.number}", intro)
            return [*RESET_FORM, SlotSet("last_order", order.number), *sent]
        if outcome == "locked":
            dispatcher.utter_message(text=LOCKED_OUT)
        elif outcome in ("missing", "not_found"):
            dispatcher.utter_message(text=NOT_FOUND)
            # Keep the number: a corrected e-mail alone, or a corrected number, is then enough to retry.
            return [SlotSet("contact", None)]
        if order is not None:
            events.append(SlotSet("last_order", order.number))
        if purpose != "cancel":  # a cancellation waits for its "yes" first
            events += offer_second_request(dispatcher, tracker.get_slot("pending_request"))
        return [*RESET_FORM, *events]


def carry_out(
    session: Session,
    dispatcher: CollectingDispatcher,
    conversation: Conversation,
    order: Order,
    purpose: str,
    message_id: int | None,
) -> list[EventType]:
    """Do what the order form was for, once the order is proven to be the chat's customer's."""
    if purpose == "cancel":
        return offer_cancellation(dispatcher, order)
    if purpose == "refund":
        return handle_refund(session, dispatcher, conversation, order, message_id)
    if purpose == "list":
        assert conversation.customer_id is not None
        list_orders(dispatcher, crm.recent_orders(session, conversation.customer_id))
        return []
    tell_status(dispatcher, order, tickets.open_delivery_ticket(session, order.id))
    return []


def tell_status(dispatcher: CollectingDispatcher, order: Order, delay_ticket: Ticket | None = None) -> None:
    """Where the order is; a delayed one comes with the ticket already open about it, or the offer
    of a ticket or a person."""
    text = describe_order(order)
    given = {"metadata": {"outcome": resolution.ORDER_STATUS}}  # counted as resolved (bot/crm/resolution.py)
    if order.status is OrderStatus.DELAYED and delay_ticket is not None:
        dispatcher.utter_message(
            text=f"{text} Our team is already following this up in ticket {delay_ticket.reference}, "
            "so there's no need to open another. You can also talk to a person now.",
            buttons=[
                {
                    "title": f"Status of {delay_ticket.reference}",
                    "payload": f'/check_ticket{{"ticket_reference": "{delay_ticket.reference}"}}',
                },
                {"title": "Talk to a person", "payload": "/request_human"},
            ],
            json_message=given,
        )
    elif order.status is OrderStatus.DELAYED:
        dispatcher.utter_message(
            text=text + " Would you like me to open a ticket so our team follows it up, "
            "or talk to a person now?",
            buttons=[
                {"title": "Open a ticket", "payload": f'/open_ticket{{"order_number": "{order.number}"}}'},
                {"title": "Talk to a person", "payload": "/request_human"},
            ],
            json_message=given,
        )
    else:
        dispatcher.utter_message(text=text, json_message=given)


def _items(order: Order) -> str:
    return ", ".join(f"{item.quantity} × {item.name}" for item in order.items)


# An answer that finishes nothing by itself (the policy explained): see bot/crm/resolution.py.
ANSWER = {"metadata": {"outcome": resolution.ANSWERED}}


def offer_cancellation(dispatcher: CollectingDispatcher, order: Order) -> list[EventType]:
    """Ask to confirm when the order can still be cancelled; otherwise say why not and what instead."""
    status = order.status
    if status is OrderStatus.PROCESSING:
        dispatcher.utter_message(
            text=f"Order #{order.number} ({_items(order)}, {order.total} {order.currency}) hasn't "
            "left our warehouse yet, so I can cancel it free of charge and refund the full amount. "
            "Shall I cancel it? This can't be undone.",
            buttons=[
                {"title": "Yes, cancel it", "payload": "/affirm"},
                {"title": "No, keep it", "payload": "/deny"},
            ],
        )
        return [SlotSet("pending_cancel", order.number)]
    if status is OrderStatus.CANCELLED:
        dispatcher.utter_message(
            text=f"Order #{order.number} is already cancelled, so there's nothing more to do. "
            "No payment is taken for cancelled orders.",
            json_message=ANSWER,
        )
    elif status is OrderStatus.RETURNED:
        dispatcher.utter_message(
            text=f"Order #{order.number} has already come back to us as a return, so it can't be "
            "cancelled. Your refund follows within 5 business days of the return reaching our warehouse.",
            json_message=ANSWER,
        )
    elif status is OrderStatus.DELIVERED:
        steps = (
            f"You can return order #{order.number} within 30 days of delivery and get your money back: "
            "ask me for a refund, or see how returns work."
        )
        dispatcher.utter_message(
            text=f"Order #{order.number} has already been delivered, so it can't be cancelled any more. "
            "You can return it within 30 days of delivery and get your money back.",
            buttons=[
                {
                    "title": "Request a refund",
                    "payload": f'/request_refund{{"order_number": "{order.number}"}}',
                },
                {"title": "How returns work", "payload": '/choose_article{"kb_article": "how-to-return"}'},
            ],
            json_message=ANSWER,
        )
        return [SlotSet("next_steps", steps)]
    else:
        dispatcher.utter_message(
            text=f"Order #{order.number} has already been handed to the carrier, so I can't cancel it "
            "any more. You can refuse the delivery when it arrives, or return it within 30 days of "
            "delivery: either way you get your money back.",
            buttons=[
                {"title": "How returns work", "payload": '/choose_article{"kb_article": "how-to-return"}'}
            ],
            json_message=ANSWER,
        )
        steps = (
            f"Order #{order.number} is with the carrier: you can refuse the delivery when it arrives, "
            "or return it within 30 days of delivery. Either way you get your money back."
        )
        return [SlotSet("next_steps", steps)]
    return []


def handle_refund(
    session: Session,
    dispatcher: CollectingDispatcher,
    conversation: Conversation,
    order: Order,
    message_id: int | None,
) -> list[EventType]:
    """Open a refund ticket inside the returns window; otherwise explain the policy and the options."""
    window = settings().refund_window_days
    shipment = order.shipments[-1] if order.shipments else None
    status = order.status
    if status is OrderStatus.PROCESSING:
        dispatcher.utter_message(
            text=f"Order #{order.number} hasn't shipped yet, so the quickest way to get your money back "
            "is to cancel it: that's free and refunds the full amount.",
            buttons=[
                {"title": "Cancel the order", "payload": f'/cancel_order{{"order_number": "{order.number}"}}'}
            ],
            json_message=ANSWER,
        )
        return []
    if status is OrderStatus.CANCELLED:
        dispatcher.utter_message(
            text=f"Order #{order.number} was cancelled, so no payment was taken. If your bank still shows "
            "a reserved amount, it is released within 5-7 business days.",
            json_message=ANSWER,
        )
        return []
    if status is OrderStatus.RETURNED:
        dispatcher.utter_message(
            text=f"We've received the return of order #{order.number}. The refund goes to your original "
            "payment method within 5 business days of the return reaching our warehouse; your bank may "
            "take another 3-5 business days to show it.",
            json_message=ANSWER,
        )
        return []
    if status is not OrderStatus.DELIVERED or shipment is None or shipment.delivered_at is None:
        dispatcher.utter_message(
            text=f"Order #{order.number} is still on its way. You can refuse the delivery, or return it "
            f"within {window} days of delivery, and we refund you once it's back with us.",
            json_message=ANSWER,
        )
        return []
    days = (utcnow() - shipment.delivered_at).days
    if days > window:
        dispatcher.utter_message(
            text=f"Order #{order.number} was delivered {days} days ago, and refunds on returns are "
            f"possible within {window} days of delivery, so I can't start one here. If something is "
            "faulty, it's covered by the 2-year legal guarantee: tell me about it and we'll repair, "
            "replace or refund it.",
            buttons=[
                {"title": "Report a fault", "payload": f'/complaint{{"order_number": "{order.number}"}}'}
            ],
            json_message=ANSWER,
        )
        return []
    existing = tickets.find_open_of_kind(session, order.id, "refund")
    if existing is not None:
        dispatcher.utter_message(
            text=f"There's already a refund request for order #{order.number}: {existing.reference}. "
            "Our team is on it, so there's no need to do anything else.",
            json_message=ANSWER,
        )
        return []
    ticket = tickets.open_ticket(
        session,
        kind="refund",
        category="billing",
        subject=f"Refund for order #{order.number}",
        description=f"Refund requested in chat, {days} days after delivery.",
        desired_outcome="refund",
        policy=sla_policy(),
        severity=Severity.MEDIUM,
        actor="bot",
        customer_id=order.customer_id,
        conversation_id=conversation.id,
        order_id=order.id,
        source_message_id=message_id,
        data={"order_number": order.number, "days_since_delivery": days},
    )
    last_day = shipment.delivered_at + timedelta(days=window)
    dispatcher.utter_message(
        text=f"Done: your refund request for order #{order.number} is {ticket.reference}. Please send "
        f"the items back by {_date(last_day)}; you'll find the return label in your account under "
        "Orders. We refund your original payment method within 5 business days of the parcel "
        "reaching our warehouse.",
        buttons=[{"title": "How returns work", "payload": '/choose_article{"kb_article": "how-to-return"}'}],
    )
    return []


class ActionConfirmCancel(Action):
    """Cancels the order the customer just confirmed, or keeps it when they said no."""

    def name(self) -> str:
        return "action_confirm_cancel"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        number = tracker.get_slot("pending_cancel")
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if not number:
            dispatcher.utter_message(response="utter_anything_else")
            return []
        if intent not in ("affirm", "cancel_order"):  # "yes, cancel it" may read as a cancel request
            dispatcher.utter_message(text=f"Alright, order #{number} stays as it is.")
            return [
                SlotSet("pending_cancel", None),
                *offer_second_request(dispatcher, tracker.get_slot("pending_request")),
            ]

        def cancel(session: Session) -> str:
            conversation = conversation_for(session, tracker)
            if conversation.customer_id is None or not proof.trusted(conversation, settings()):
                return "not_found"
            order = crm.customer_order(session, conversation.customer_id, str(number))
            if order is None:
                return "not_found"
            # Re-read the status: the warehouse may have shipped it while the customer decided.
            if order.status is not OrderStatus.PROCESSING:
                return "too_late"
            order.status = OrderStatus.CANCELLED
            audit(session, "customer", "order_cancelled", "order", order.id, {"number": order.number})
            return "cancelled"

        outcome = await in_transaction(cancel)
        if outcome == "cancelled":
            dispatcher.utter_message(
                text=f"Order #{number} is cancelled. You'll get a confirmation e-mail, and the full "
                "amount goes back to your payment method within 5 business days.",
                json_message={"metadata": {"outcome": resolution.ORDER_CANCELLED}},
            )
        elif outcome == "too_late":
            dispatcher.utter_message(
                text=f"I'm sorry: order #{number} left our warehouse a moment ago, so it can't be "
                "cancelled any more. You can refuse the delivery or return it within 30 days.",
                json_message=ANSWER,
            )
        else:
            dispatcher.utter_message(text=NOT_FOUND)
        return [
            SlotSet("pending_cancel", None),
            *offer_second_request(dispatcher, tracker.get_slot("pending_request")),
        ]


class ActionListOrders(Action):
    """Lists a verified customer's recent orders; asks for proof first when the chat isn't verified."""

    def name(self) -> str:
        return "action_list_orders"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if await article_instead(tracker):
            # "my points for my last order aren't showing": an article's question, not the order list.
            return [FollowupAction("action_answer_question")]
        config = settings()

        def mine(session: Session) -> tuple[list[Order] | None, int | None]:
            conversation = conversation_for(session, tracker)
            if proof.trusted(conversation, config):
                assert conversation.customer_id is not None
                return crm.recent_orders(session, conversation.customer_id), None
            return None, conversation.customer_id

        found, weakly_linked = await in_transaction(mine)
        if found is not None:
            list_orders(dispatcher, found)
            return []
        if weakly_linked is not None:
            # The chat proved one order: the code goes to that customer's e-mail.
            intro = "To show all your orders, I need to make sure it's you. "
            return await send_code(dispatcher, tracker, weakly_linked, "list", intro)
        dispatcher.utter_message(
            text="I can show your orders once I know they're yours: first let's look up one of them."
        )
        return [SlotSet("order_purpose", "list"), FollowupAction("order_form")]


def list_orders(dispatcher: CollectingDispatcher, found: list[Order]) -> None:
    """The customer's recent orders, each a button for its details."""
    if not found:
        dispatcher.utter_message(text="I don't see any orders on your account yet.")
        return
    lines = "\n".join(
        f"• #{o.number} ({o.placed_at:%-d %b %Y}): {o.status.value.replace('_', ' ')}" for o in found
    )
    dispatcher.utter_message(
        text=f"Here are your most recent orders:\n{lines}\nPick one for the details.",
        buttons=order_buttons(found, "track_order", with_status=True),
        json_message={"metadata": {"outcome": resolution.ORDERS_LISTED}},
    )


class ActionCodeChecked(Action):
    """After the code form: do what the code was sent for, or say that it wasn't done."""

    def name(self) -> str:
        return "action_code_checked"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        purpose, _, number = str(tracker.get_slot(FOR_SLOT) or "").partition(":")
        # The contact typed before the code is forgotten: the next order needs its own (bot/crm/proof.py).
        cleared = [
            SlotSet(CODE_SLOT, None),
            SlotSet(FOR_SLOT, None),
            SlotSet("form_misfits", None),
            SlotSet("contact", None),
        ]
        stopped = (tracker.latest_message.get("intent") or {}).get("name") == "deny"
        if tracker.get_slot(CODE_SLOT) == STOPPED or (stopped and tracker.get_slot(CODE_SLOT) != PROVED):
            dispatcher.utter_message(response="utter_code_stopped")
            return cleared
        if tracker.get_slot(CODE_SLOT) != PROVED:
            dispatcher.utter_message(
                text="I couldn't confirm it's you, so I haven't done that. A person from our team can "
                "help you, or ask me again later for a new code.",
                buttons=[PERSON_BUTTON],
            )
            return cleared
        if purpose in ("ticket", "reopen"):
            # The ticket look-up again, now that the chat is proven (actions/tickets.py).
            return [
                *cleared,
                SlotSet("ticket_reference", number or None),
                SlotSet("ticket_purpose", "reopen" if purpose == "reopen" else None),
                FollowupAction("action_check_ticket"),
            ]
        message_id = latest_message_id(tracker)

        def act(session: Session) -> tuple[bool, list[EventType]]:
            conversation = conversation_for(session, tracker)
            if conversation.customer_id is None:
                return False, []
            if purpose == "list":
                list_orders(dispatcher, crm.recent_orders(session, conversation.customer_id))
                return True, []
            order = crm.customer_order(session, conversation.customer_id, number)
            if order is None:
                return False, []
            return True, carry_out(session, dispatcher, conversation, order, purpose, message_id)

        done, events = await in_transaction(act)
        if not done:
            dispatcher.utter_message(text="Thank you, that's confirmed. " + NOT_FOUND)
            return cleared
        if number:
            events.append(SlotSet("last_order", number))
        if purpose != "cancel":  # a cancellation waits for its "yes" first
            events += offer_second_request(dispatcher, tracker.get_slot("pending_request"))
        return [*cleared, *events]


class ActionOpenDelayTicket(Action):
    """Opens a delivery-problem ticket for a delayed order of the verified customer."""

    def name(self) -> str:
        return "action_open_delay_ticket"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # "Open a ticket" typed rather than clicked: the order we just looked at.
        named = tracker.get_slot("order_number") or tracker.get_slot("last_order")
        number = crm.parse_order_number(str(named or ""))
        message_id = latest_message_id(tracker)

        def create(session: Session) -> str | None:
            conversation = conversation_for(session, tracker)
            if conversation.customer_id is None or number is None:
                return None
            order = crm.customer_order(session, conversation.customer_id, number)
            if order is None:
                return None
            retried = tickets.find_by_source_message(session, message_id) if message_id is not None else None
            existing = tickets.open_delivery_ticket(session, order.id)
            if existing is not None and retried is None:
                # One delay, one ticket: the customer learns where the one they have stands.
                state = tickets.STATE_WORDS[existing.status]
                return (
                    f"You already have a ticket about the delivery of order #{order.number}, "
                    f"{existing.reference}, and it's {state}, so I haven't opened a second one."
                )
            ticket = tickets.open_ticket(
                session,
                kind="delivery",
                category="delivery_problem",
                subject=f"Order #{order.number} is delayed",
                description="Customer asked for a follow-up after seeing the delay in chat.",
                actor="bot",
                customer_id=conversation.customer_id,
                conversation_id=conversation.id,
                order_id=order.id,
                source_message_id=message_id,
                policy=sla_policy(),
                severity=Severity.MEDIUM,
                data={"order_number": order.number, "status": order.status.value},
            )
            return (
                f"Done: your ticket reference is {ticket.reference}. Our team will look into the delay and "
                "get back to you here. Sorry again for the wait."
            )

        reply = await in_transaction(create)
        if reply is None:
            dispatcher.utter_message(
                text="I can open a ticket once we've looked up the order together. Which order is it about?"
            )
            return [*RESET_FORM, FollowupAction("order_form")]
        dispatcher.utter_message(text=reply)
        return list(RESET_FORM)
