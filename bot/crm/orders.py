"""Order look-ups and the proof that an order belongs to the person asking."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.crm.audit import audit
from bot.crm.models import (
    Conversation,
    Customer,
    CustomerIdentity,
    Order,
    Shipment,
    VerificationAttempt,
    utcnow,
)

ORDER_NUMBER_RE = re.compile(r"(?<!\d)#?\s*([1-9]\d{5})(?!\d)")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE_RE = re.compile(r"\+?[\d][\d ()./-]{6,20}\d")
# Phone numbers are compared on their last digits, so "+49 151 2345 6789" and "0151 23456789" match.
PHONE_MATCH_DIGITS = 9


def parse_order_number(text: str) -> str | None:
    """The 6-digit order number in a piece of text ("#100004", "order 100004"), or None."""
    match = ORDER_NUMBER_RE.search(text)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Contact:
    """An e-mail address or phone number a customer gives to prove who they are."""

    email: str | None = None
    phone_digits: str | None = None


def parse_contact(text: str) -> Contact | None:
    """The e-mail address or phone number in a piece of text, normalised, or None."""
    email = EMAIL_RE.search(text)
    if email:
        return Contact(email=email.group(0).lower().rstrip("."))
    phone = PHONE_RE.search(text)
    if phone:
        digits = re.sub(r"\D", "", phone.group(0))
        if len(digits) >= 7:
            return Contact(phone_digits=digits)
    return None


def phones_match(stored: str | None, given_digits: str) -> bool:
    if not stored:
        return False
    stored_digits = re.sub(r"\D", "", stored)
    tail = min(PHONE_MATCH_DIGITS, len(stored_digits))
    return len(given_digits) >= tail and stored_digits[-tail:] == given_digits[-tail:]


def _order_query():  # type: ignore[no-untyped-def]
    return select(Order).options(
        selectinload(Order.shipments).selectinload(Shipment.events),
        selectinload(Order.items),
        selectinload(Order.customer),
    )


def find_order(session: Session, number: str) -> Order | None:
    return session.scalars(_order_query().where(Order.number == number)).first()


def verify_order_owner(session: Session, number: str, contact: Contact) -> Order | None:
    """The order if `contact` is its customer's e-mail or phone; None for any mismatch, alike."""
    order = find_order(session, number)
    if order is None:
        return None
    customer = order.customer
    if contact.email is not None and customer.email.lower() == contact.email:
        return order
    if contact.phone_digits is not None and phones_match(customer.phone, contact.phone_digits):
        return order
    return None


def order_exists(session: Session, number: str) -> bool:
    """Whether an order has this number at all (says nothing about whose it is)."""
    return session.scalar(select(Order.id).where(Order.number == number)) is not None


def customer_order(session: Session, customer_id: int, number: str) -> Order | None:
    """The order with this number if it belongs to the customer, else None."""
    return session.scalars(
        _order_query().where(Order.number == number, Order.customer_id == customer_id)
    ).first()


def recent_orders(session: Session, customer_id: int, limit: int = 5) -> list[Order]:
    return list(
        session.scalars(
            _order_query()
            .where(Order.customer_id == customer_id)
            .order_by(Order.placed_at.desc(), Order.id.desc())
            .limit(limit)
        )
    )


def conversation_by_sender(session: Session, sender_id: str) -> Conversation | None:
    return session.scalars(select(Conversation).where(Conversation.sender_id == sender_id)).first()


def recently_proven(session: Session, conversation: Conversation, reference: str, window: timedelta) -> bool:
    """Whether this conversation proved `reference` (an order number or a ticket reference) in the window.

    The proof covers that one reference only: it does not link the conversation to the customer."""
    since: datetime = utcnow() - window
    proof = session.scalars(
        select(VerificationAttempt.id)
        .where(
            VerificationAttempt.conversation_id == conversation.id,
            VerificationAttempt.order_number == reference,
            VerificationAttempt.succeeded.is_(True),
            VerificationAttempt.created_at >= since,
        )
        .limit(1)
    ).first()
    return proof is not None


def link_conversation(
    session: Session, conversation: Conversation, customer: Customer, proof: str = "order"
) -> None:
    """Mark the conversation as the verified customer's and remember the channel identity.

    `proof` is how it was proved ("order" or "code", see bot/crm/proof.py); a chat that proved with a
    code keeps that when it later proves an order of the same customer."""
    if conversation.customer_id == customer.id:
        if proof == "code" or conversation.proof is None:
            conversation.proof = proof
        conversation.verified_at = utcnow()
        session.flush()
        return
    conversation.customer_id = customer.id
    conversation.proof = proof
    conversation.verified_at = utcnow()
    identity = session.scalars(
        select(CustomerIdentity).where(
            CustomerIdentity.channel == conversation.channel,
            CustomerIdentity.external_id == conversation.external_id,
        )
    ).first()
    if identity is None:
        known_on = sorted(
            set(
                session.scalars(
                    select(CustomerIdentity.channel).where(CustomerIdentity.customer_id == customer.id)
                )
            )
        )
        session.add(
            CustomerIdentity(
                customer_id=customer.id, channel=conversation.channel, external_id=conversation.external_id
            )
        )
        # One customer across channels (a Telegram chat, a browser): each new identity is recorded,
        # with the channels the customer was already known on.
        audit(
            session,
            "customer",
            "identity_linked",
            "customer",
            customer.id,
            {"channel": conversation.channel, "conversation_id": conversation.id, "known_on": known_on},
        )
    elif identity.customer_id != customer.id:
        # The same browser or chat proved another customer's order: the newest proof wins, audited.
        identity.customer_id = customer.id
        identity.verified_at = utcnow()
    audit(
        session,
        "customer",
        "conversation_verified",
        "conversation",
        conversation.id,
        {"customer_id": customer.id, "channel": conversation.channel},
    )
    session.flush()
