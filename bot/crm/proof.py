"""How a chat proves it is a customer's, and what each proof opens.

Two proofs, from weak to strong:

- **An order number with its e-mail or phone** ("order"): anyone who has seen an order confirmation
  knows both, so it shows that one order's status and nothing else.
- **A one-time code** ("code") e-mailed to the address on file: only the mailbox's owner has it. It opens
  everything the chat can do for the customer: all their orders, cancelling, refunds, tickets.

Guessing is made slow without letting strangers lock anyone out. Failed proofs are counted per chat,
per client address, per contact given and per order number. A chat or a client address with too many
is paused (the stranger's own chat and address, not the customer's). An e-mail, phone or order number
with too many failures is not locked: any further proof for it also needs the code, which the owner
can always get. Both proofs expire after `verification_valid_hours`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.crm.audit import audit
from bot.crm.models import Conversation, Customer, OneTimeCode, VerificationAttempt, utcnow
from bot.crm.orders import PHONE_MATCH_DIGITS, Contact, link_conversation
from bot.settings import Settings

logger = logging.getLogger(__name__)

ORDER_PROOF = "order"
CODE_PROOF = "code"
CODE_RE = re.compile(r"(?<!\d)(\d{3})[\s-]?(\d{3})(?!\d)")
# Cheap on purpose: a code lives ten minutes and allows three tries, so hashing guards the database
# copy, not against a patient offline search.
_hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def contact_key(contact: Contact, secret: str) -> str:
    """A keyed hash of an e-mail or phone number, to count failures without storing the contact."""
    if contact.email is not None:
        plain = "e:" + contact.email.lower()
    else:
        plain = "p:" + (contact.phone_digits or "")[-PHONE_MATCH_DIGITS:]
    return hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()


def _failures(session: Session, since: datetime, **where: object) -> int:
    query = (
        select(func.count())
        .select_from(VerificationAttempt)
        .where(VerificationAttempt.succeeded.is_(False), VerificationAttempt.created_at >= since)
    )
    for column, value in where.items():
        query = query.where(getattr(VerificationAttempt, column) == value)
    return session.scalar(query) or 0


@dataclass(frozen=True)
class Attempt:
    """Who is trying to prove what: the chat, its client address, the order and the contact given."""

    conversation: Conversation
    address: str | None
    order_number: str | None = None
    contact: Contact | None = None

    def key(self, config: Settings) -> str | None:
        return contact_key(self.contact, config.secret_key) if self.contact is not None else None


def paused(session: Session, attempt: Attempt, config: Settings) -> bool:
    """Whether this chat or this client address has failed too often to try again in the window."""
    since = utcnow() - timedelta(minutes=config.verification_window_minutes)
    if _failures(session, since, conversation_id=attempt.conversation.id) >= config.verification_max_failures:
        return True
    return (
        attempt.address is not None
        and _failures(session, since, address=attempt.address) >= config.verification_max_failures_per_address
    )


def under_attack(session: Session, attempt: Attempt, config: Settings) -> bool:
    """Whether the contact or order number given has failed often enough, from any chat, that a right
    answer alone no longer proves anything: then the one-time code is needed too."""
    since = utcnow() - timedelta(minutes=config.verification_window_minutes)
    key = attempt.key(config)
    if key is not None and _failures(session, since, contact_key=key) >= config.verification_max_failures:
        return True
    return (
        attempt.order_number is not None
        and _failures(session, since, order_number=attempt.order_number) >= config.verification_max_failures
    )


def record(session: Session, attempt: Attempt, config: Settings, succeeded: bool) -> None:
    session.add(
        VerificationAttempt(
            conversation_id=attempt.conversation.id,
            order_number=attempt.order_number or "",
            succeeded=succeeded,
            contact_key=attempt.key(config),
            address=attempt.address,
        )
    )
    session.flush()


def is_current(conversation: Conversation, config: Settings) -> bool:
    """Whether the chat's proof (of either kind) is younger than verification_valid_hours."""
    if conversation.customer_id is None or conversation.verified_at is None:
        return False
    return conversation.verified_at >= utcnow() - timedelta(hours=config.verification_valid_hours)


def trusted(conversation: Conversation, config: Settings) -> bool:
    """Whether the chat proved with a one-time code, recently enough, that it is its customer's."""
    return conversation.proof == CODE_PROOF and is_current(conversation, config)


def expire(session: Session, conversation: Conversation, config: Settings) -> None:
    """Forget a proof older than verification_valid_hours: the chat must prove itself again."""
    if conversation.customer_id is None or is_current(conversation, config):
        return
    audit(
        session,
        "system",
        "verification_expired",
        "conversation",
        conversation.id,
        {"customer_id": conversation.customer_id, "proof": conversation.proof},
    )
    conversation.customer_id = None
    conversation.proof = None
    conversation.verified_at = None
    session.flush()


# --- one-time codes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCode:
    code: str  # the plain code, only ever put in the e-mail
    email: str
    minutes: int


def issue_code(
    session: Session, conversation: Conversation, customer: Customer, config: Settings
) -> IssuedCode | None:
    """A new code for this chat and customer (earlier unused ones stop working); None when the
    customer was already sent one_time_codes_per_hour codes in the last hour."""
    now = utcnow()
    sent_lately = (
        session.scalar(
            select(func.count())
            .select_from(OneTimeCode)
            .where(OneTimeCode.customer_id == customer.id, OneTimeCode.created_at >= now - timedelta(hours=1))
        )
        or 0
    )
    if sent_lately >= config.one_time_codes_per_hour:
        return None
    session.execute(
        update(OneTimeCode)
        .where(OneTimeCode.conversation_id == conversation.id, OneTimeCode.used_at.is_(None))
        .values(used_at=now)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(
        OneTimeCode(
            conversation_id=conversation.id,
            customer_id=customer.id,
            code_hash=_hasher.hash(code),
            expires_at=now + timedelta(minutes=config.one_time_code_minutes),
        )
    )
    audit(session, "customer", "code_sent", "conversation", conversation.id, {"customer_id": customer.id})
    session.flush()
    return IssuedCode(code=code, email=customer.email, minutes=config.one_time_code_minutes)


def code_in(text: str) -> str | None:
    """The 6-digit code in what the customer typed ("123456", "123 456", "it's 123-456"), or None."""
    match = CODE_RE.search(text)
    return match.group(1) + match.group(2) if match else None


def _unused_code(session: Session, conversation: Conversation) -> OneTimeCode | None:
    """The newest code sent to this chat and not used up yet."""
    return session.scalars(
        select(OneTimeCode)
        .where(OneTimeCode.conversation_id == conversation.id, OneTimeCode.used_at.is_(None))
        .order_by(OneTimeCode.id.desc())
        .limit(1)
    ).first()


def check_code(session: Session, conversation: Conversation, given: str, config: Settings) -> str:
    """Check a code typed in this chat: "ok" (the chat is now the customer's, by code), "wrong" (tries
    remain), "spent" (no tries left, or expired: a new code is needed) or "none" (no code was sent)."""
    now = utcnow()
    pending = _unused_code(session, conversation)
    if pending is None:
        return "none"
    if pending.expires_at < now or pending.tries >= config.one_time_code_tries:
        pending.used_at = now
        return "spent"
    pending.tries += 1
    try:
        _hasher.verify(pending.code_hash, given)
    except (VerificationError, InvalidHashError):
        if pending.tries >= config.one_time_code_tries:
            pending.used_at = now
            audit(session, "customer", "code_failed", "conversation", conversation.id, {})
            return "spent"
        return "wrong"
    pending.used_at = now
    customer = session.get(Customer, pending.customer_id)
    assert customer is not None
    link_conversation(session, conversation, customer, proof=CODE_PROOF)
    return "ok"


def tries_left(session: Session, conversation: Conversation, config: Settings) -> int:
    pending = _unused_code(session, conversation)
    return 0 if pending is None else max(0, config.one_time_code_tries - pending.tries)


def pending_customer(session: Session, conversation: Conversation) -> int | None:
    """The customer this chat was last sent a code for, if any."""
    return session.scalars(
        select(OneTimeCode.customer_id)
        .where(OneTimeCode.conversation_id == conversation.id)
        .order_by(OneTimeCode.id.desc())
        .limit(1)
    ).first()


def masked(email: str) -> str:
    """The e-mail address as shown in the chat: "a•••@example.com"."""
    name, _, domain = email.partition("@")
    return f"{name[:1]}•••@{domain}"
