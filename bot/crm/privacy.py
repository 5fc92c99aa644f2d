"""GDPR: export everything Kefu holds about one customer, or erase it (CRM rows and Rasa trackers).

**Whose rows.** A customer's footprint is their `customers` row; their `customer_identities`; their
orders (with items, shipments and tracking events); their conversations, which are the ones linked
to them, the ones on one of their channel identities, the ones of their tickets, and the ones
where someone gave their e-mail or phone as a contact or typed it in a message (an unverified chat
in which they proved, or failed to prove, an order is still theirs); every message, hand-over,
order-verification attempt, knowledge-base feedback and gap of those conversations; their tickets
(theirs, of their conversations, or with their e-mail or phone as contact) with every ticket event,
internal notes included; their satisfaction surveys; the Telegram updates of their Telegram chats;
the audit-log rows about any of these records; and the events Rasa's SQL tracker store holds for
the sender ids of their conversations.

**Export** (`export_customer`) returns all of it as one JSON-ready document: rows with their
columns in schema order, datetimes in ISO 8601 (UTC), money as decimal strings, free-form JSON
(payloads, event data, audit details) with sorted keys, so two exports of the same data are the
same bytes. Knowledge-base gap vectors (derived from the question text, which is exported) are
left out.

**Erase** (`erase_customer`) keeps what accounting and the service statistics need, with nothing
left that identifies the person:

- `customers`: the row stays as a tombstone, because orders must keep pointing at a customer (and
  the dashboard counts customers by tier): name "Erased customer", e-mail
  `erased-<id>@erased.invalid` (which is also how a second erase knows), no phone. Derived scores
  (tier, stage, RFM) stay; they say nothing about who it was.
- `customer_identities`: deleted (the Telegram chat id or browser id is personal; the channel can
  start afresh as a new, anonymous visitor).
- `orders`, `order_items`: kept for accounting (number, status, dates, amounts, products); the
  shipping address is emptied. `shipments`: kept, tracking numbers replaced (a carrier shows name
  and address for one); `shipment_events`: kept without their location.
- `conversations`: kept for the statistics (channel, mode, times); the channel's id becomes
  `erased-<id>` and the Rasa sender id `erased-<id>`, so nothing the customer's browser or Telegram
  chat sends reaches them again, and they are closed.
- `messages`: kept as rows (counts and response times), text replaced by "[erased]", payload and
  error emptied; a Telegram message still waiting in the outbox is marked failed, never sent.
- `handoffs`: kept (escalation rate, chat response times) without the contact e-mail; one still
  open is ended as closed.
- `tickets`: kept (ticket counts, SLA and resolution times, category, severity, CSAT score), with
  subject, description and resolution replaced by "[erased]" and contact and CSAT comment emptied;
  one still being worked on is closed (event `closed_on_erasure`), since nobody can answer them now.
  `ticket_events`: kept (history and times) with only status, category, priority, severity, tier,
  reason and score left in their data; everything else (customer texts, notes, resolutions) erased.
- `csat_surveys`: kept (the score counts in CSAT) without the comment; one still waiting to be
  asked or answered is skipped.
- `verification_attempts`: kept unchanged: a conversation id, an order number and a time, the
  brute-force protection of order look-ups.
- `kb_feedback`: kept (whether articles help) with the question replaced by "[erased]".
  `kb_gaps`: deleted (the question is the whole row, and its vector is made from it).
- `telegram_updates`: kept as ids (so a resent update is still refused) with an empty payload.
- `audit_log`: kept (it is the record of who did what); any value in the details of a row about
  the customer's records that contains their name, e-mail, phone or a channel id is replaced by
  "[erased]". A `customer_erased` row is added with counts only.
- Rasa's tracker store: every event of the conversations' sender ids is deleted.

The CRM changes happen in the caller's transaction. The tracker store is another database, so its
events are deleted (and committed) first: if the CRM transaction then fails, nothing in the CRM
changed and running the erase again finishes the job; the other order could lose the sender ids
while their events remain. Not covered: text a person copied elsewhere (a knowledge-base article
drafted from a gap keeps the questions in it; another customer's chat that mentions them).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    cast,
    create_engine,
    delete,
    func,
    inspect,
    or_,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bot.crm.audit import audit
from bot.crm.db import normalise_database_url
from bot.crm.models import (
    AuditLog,
    Base,
    Conversation,
    ConversationMode,
    CsatSurvey,
    Customer,
    CustomerIdentity,
    Direction,
    Handoff,
    KbFeedback,
    KbGap,
    Message,
    MessageStatus,
    Order,
    SurveyStatus,
    TelegramUpdate,
    Ticket,
    TicketEvent,
    TicketStatus,
    VerificationAttempt,
    utcnow,
)
from bot.errors import NotFound

ERASED = "[erased]"
ERASED_NAME = "Erased customer"
EXPORT_FORMAT = "kefu-customer-export/1"
# Keys of ticket-event data that describe the process, not the person; every other value is erased.
_SAFE_EVENT_KEYS = frozenset(
    {"from", "to", "kind", "category", "severity", "priority", "tier", "reason", "score"}
)


def erased_email(customer_id: int) -> str:
    """The e-mail an erased customer's row carries: unique, undeliverable, and the erased marker."""
    return f"erased-{customer_id}@erased.invalid"


def is_erased(customer: Customer) -> bool:
    return customer.email == erased_email(customer.id)


def find_customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"there is no customer {customer_id}; `kefu customers` takes the CRM's customer id")
    return customer


# --- Rasa's tracker store ------------------------------------------------------------------------

# The columns of Rasa 3.6's SQLTrackerStore (rasa/core/tracker_store.py, SQLEvent): one row per
# event, `data` being the event as JSON text, `timestamp` seconds since the epoch.
_tracker_metadata = MetaData()
_events = Table(
    "events",
    _tracker_metadata,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)


class TrackerStore:
    """Rasa's SQL tracker store, read and pruned directly: Rasa need not run for this.

    A store Rasa has not created yet (no SQLite file, no `events` table) holds no events; it is never
    created here.
    """

    def __init__(self, url: str) -> None:
        self.url = normalise_database_url(url)
        self._engine: Engine | None = None

    def _connect(self) -> Engine | None:
        if self._engine is None:
            parsed = make_url(self.url)
            if parsed.get_backend_name() == "sqlite":
                path = parsed.database or ""
                if not path or path == ":memory:" or not Path(path).exists():
                    return None
            self._engine = create_engine(self.url)
        if not inspect(self._engine).has_table("events"):
            return None
        return self._engine

    def events(self, sender_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Every stored event of these senders, oldest first, keyed by sender id."""
        found: dict[str, list[dict[str, Any]]] = {sender: [] for sender in sender_ids}
        engine = self._connect()
        if engine is None or not sender_ids:
            return found
        query = select(_events).where(_events.c.sender_id.in_(list(sender_ids))).order_by(_events.c.id)
        with engine.connect() as connection:
            for row in connection.execute(query).mappings():
                found[row["sender_id"]].append(_tracker_event(row))
        return found

    def delete(self, sender_ids: Sequence[str]) -> int:
        """Delete every event of these senders (committed at once); returns how many went."""
        engine = self._connect()
        if engine is None or not sender_ids:
            return 0
        with engine.begin() as connection:
            result = connection.execute(delete(_events).where(_events.c.sender_id.in_(list(sender_ids))))
        return int(result.rowcount or 0)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _tracker_event(row: Any) -> dict[str, Any]:
    try:
        data: Any = json.loads(row["data"]) if row["data"] else None
    except ValueError:
        data = row["data"]  # not JSON: handed over as stored
    timestamp = row["timestamp"]
    return {
        "id": row["id"],
        "type_name": row["type_name"],
        "timestamp": None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(),
        "intent_name": row["intent_name"],
        "action_name": row["action_name"],
        "data": _plain(data),
    }


# --- The customer's footprint ---------------------------------------------------------------------


@dataclass
class Footprint:
    """Every CRM row that is about one customer (see the module docstring for how they are found)."""

    customer: Customer
    identities: list[CustomerIdentity]
    orders: list[Order]
    conversations: list[Conversation]
    tickets: list[Ticket]
    surveys: list[CsatSurvey]
    telegram_updates: list[TelegramUpdate]
    audit_rows: list[AuditLog]
    per_conversation: dict[int, dict[str, list[Any]]] = field(default_factory=dict)

    @property
    def sender_ids(self) -> list[str]:
        return [conversation.sender_id for conversation in self.conversations]

    def personal_values(self) -> list[str]:
        """The strings that identify the person, for scrubbing free-form details."""
        values = [self.customer.name, self.customer.email, self.customer.phone or ""]
        values += [identity.external_id for identity in self.identities]
        values += [c.external_id for c in self.conversations]
        return [value for value in dict.fromkeys(values) if value and len(value) >= 4]


def footprint(session: Session, customer: Customer) -> Footprint:
    identities = list(
        session.scalars(
            select(CustomerIdentity)
            .where(CustomerIdentity.customer_id == customer.id)
            .order_by(CustomerIdentity.id)
        )
    )
    orders = list(session.scalars(select(Order).where(Order.customer_id == customer.id).order_by(Order.id)))

    contacts = [customer.email.lower()] + ([customer.phone] if customer.phone else [])
    by_contact = func.lower(Ticket.contact).in_(contacts)
    conversation_ids: set[int] = set(
        session.scalars(select(Conversation.id).where(Conversation.customer_id == customer.id))
    )
    if identities:
        conversation_ids |= set(
            session.scalars(
                select(Conversation.id).where(
                    or_(*(and_(Conversation.channel == i.channel, Conversation.external_id == i.external_id)
                          for i in identities))
                )
            )
        )  # fmt: skip
    conversation_ids |= {
        cid
        for cid in session.scalars(
            select(Ticket.conversation_id).where(or_(Ticket.customer_id == customer.id, by_contact))
        )
        if cid is not None
    }
    conversation_ids |= set(
        session.scalars(select(Handoff.conversation_id).where(func.lower(Handoff.contact).in_(contacts)))
    )
    typed = [func.lower(Message.text).contains(contact, autoescape=True) for contact in contacts]
    conversation_ids |= set(
        session.scalars(
            select(Message.conversation_id).where(Message.direction == Direction.INBOUND, or_(*typed))
        )
    )
    conversations = list(
        session.scalars(
            select(Conversation).where(Conversation.id.in_(conversation_ids)).order_by(Conversation.id)
        )
    )

    tickets = list(
        session.scalars(
            select(Ticket)
            .where(
                or_(
                    Ticket.customer_id == customer.id,
                    Ticket.conversation_id.in_(conversation_ids),
                    by_contact,
                )
            )
            .order_by(Ticket.id)
        )
    )
    ticket_ids = [ticket.id for ticket in tickets]
    surveys = list(
        session.scalars(
            select(CsatSurvey)
            .where(
                or_(
                    CsatSurvey.customer_id == customer.id,
                    CsatSurvey.conversation_id.in_(conversation_ids),
                    CsatSurvey.ticket_id.in_(ticket_ids),
                )
            )
            .order_by(CsatSurvey.id)
        )
    )

    per_conversation: dict[int, dict[str, list[Any]]] = {
        cid: {"messages": [], "handoffs": [], "verification_attempts": [], "kb_feedback": [], "kb_gaps": []}
        for cid in conversation_ids
    }
    sources: tuple[tuple[str, Any], ...] = (
        ("messages", Message),
        ("handoffs", Handoff),
        ("verification_attempts", VerificationAttempt),
        ("kb_feedback", KbFeedback),
        ("kb_gaps", KbGap),
    )
    for key, model in sources:
        rows = session.scalars(
            select(model).where(model.conversation_id.in_(conversation_ids)).order_by(model.id)
        )
        for row in rows:
            per_conversation[row.conversation_id][key].append(row)

    audit_rows = list(
        session.scalars(
            select(AuditLog)
            .where(
                or_(
                    and_(AuditLog.record_type == "customer", AuditLog.record_id == str(customer.id)),
                    _audit_about("conversation", conversation_ids),
                    _audit_about("ticket", ticket_ids),
                    _audit_about("order", [order.id for order in orders]),
                )
            )
            .order_by(AuditLog.id)
        )
    )
    chats = [c.external_id for c in conversations if c.channel == "telegram"]
    return Footprint(
        customer=customer,
        identities=identities,
        orders=orders,
        conversations=conversations,
        tickets=tickets,
        surveys=surveys,
        telegram_updates=_telegram_updates(session, chats),
        audit_rows=audit_rows,
        per_conversation=per_conversation,
    )


def _audit_about(record_type: str, ids: Iterable[int]) -> Any:
    return and_(AuditLog.record_type == record_type, AuditLog.record_id.in_([str(i) for i in ids]))


def _telegram_updates(session: Session, chat_ids: list[str]) -> list[TelegramUpdate]:
    """The stored updates of these Telegram chats: a text search narrows, the payload decides."""
    if not chat_ids:
        return []
    wanted = {str(chat) for chat in chat_ids}
    text = cast(TelegramUpdate.payload, Text)
    candidates = session.scalars(
        select(TelegramUpdate)
        .where(or_(*(text.contains(chat, autoescape=True) for chat in wanted)))
        .order_by(TelegramUpdate.update_id)
    )
    return [update for update in candidates if _chat_ids_in(update.payload) & wanted]


def _chat_ids_in(payload: Any) -> set[str]:
    """The ids of every `chat` (and of the `from` user: in a private chat it is the chat's id)."""
    found: set[str] = set()
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key in ("chat", "from") and isinstance(value, dict) and "id" in value:
                found.add(str(value["id"]))
            found |= _chat_ids_in(value)
    elif isinstance(payload, list):
        for value in payload:
            found |= _chat_ids_in(value)
    return found


# --- Export -----------------------------------------------------------------------------------------


def export_customer(
    session: Session, customer_id: int, trackers: TrackerStore | None, now: datetime | None = None
) -> dict[str, Any]:
    """Everything Kefu holds about the customer, as one JSON-ready document (see `to_json`)."""
    customer = find_customer(session, customer_id)
    found = footprint(session, customer)
    events = trackers.events(found.sender_ids) if trackers is not None else {}
    return {
        "format": EXPORT_FORMAT,
        "exported_at": _plain(now or utcnow()),
        "customer_id": customer.id,
        "erased": is_erased(customer),
        "customer": _row(customer),
        "identities": [_row(identity) for identity in found.identities],
        "orders": [
            {
                **_row(order),
                "items": [_row(item) for item in order.items],
                "shipments": [
                    {**_row(shipment), "events": [_row(event) for event in shipment.events]}
                    for shipment in order.shipments
                ],
            }
            for order in found.orders
        ],
        "conversations": [
            {
                **_row(conversation),
                **{
                    key: [_row(row) for row in rows]
                    for key, rows in found.per_conversation[conversation.id].items()
                },
            }
            for conversation in found.conversations
        ],
        "tickets": [
            {**_row(ticket), "events": [_row(event) for event in ticket.events]} for ticket in found.tickets
        ],
        "csat_surveys": [_row(survey) for survey in found.surveys],
        "telegram_updates": [_row(update) for update in found.telegram_updates],
        "audit_log": [_row(row) for row in found.audit_rows],
        "rasa_trackers": [
            {
                "sender_id": conversation.sender_id,
                "conversation_id": conversation.id,
                "events": events.get(conversation.sender_id, []),
            }
            for conversation in found.conversations
        ],
    }


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _row(obj: Base) -> dict[str, Any]:
    """A row's columns in schema order; binary columns (derived vectors) are left out."""
    values: dict[str, Any] = {}
    for attribute in inspect(type(obj)).column_attrs:
        value = getattr(obj, attribute.key)
        if isinstance(value, bytes):
            continue
        values[attribute.key] = _plain(value)
    return values


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(key): _plain(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# --- Erase -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Erasure:
    """What an erase did (all zero when the customer had been erased before)."""

    customer_id: int
    already_erased: bool
    conversations: int = 0
    messages: int = 0
    tickets: int = 0
    orders_kept: int = 0
    tracker_events: int = 0

    def describe(self) -> str:
        if self.already_erased:
            return f"Customer {self.customer_id} was already erased; nothing changed."
        return (
            f"Erased customer {self.customer_id}: {self.conversations} conversation(s) and "
            f"{self.messages} message(s) anonymised, {self.tickets} ticket(s) kept without personal data, "
            f"{self.orders_kept} order(s) kept for accounting without the address, "
            f"{self.tracker_events} Rasa tracker event(s) deleted."
        )


def erase_customer(
    session: Session,
    customer_id: int,
    trackers: TrackerStore | None,
    *,
    actor: str = "cli",
    now: datetime | None = None,
) -> Erasure:
    """Erase the customer as the module docstring describes, in the caller's transaction."""
    now = now or utcnow()
    customer = find_customer(session, customer_id)
    if is_erased(customer):
        return Erasure(customer.id, already_erased=True)
    found = footprint(session, customer)
    personal = found.personal_values()
    # First, and committed on its own: see the module docstring for why this order.
    tracker_events = trackers.delete(found.sender_ids) if trackers is not None else 0

    customer.name = ERASED_NAME
    customer.email = erased_email(customer.id)
    customer.phone = None
    for identity in found.identities:
        session.delete(identity)

    for order in found.orders:
        order.shipping_address = ""
        for shipment in order.shipments:
            shipment.tracking_number = ERASED
            for event in shipment.events:
                event.location = ""

    messages = 0
    for conversation in found.conversations:
        conversation.external_id = f"erased-{conversation.id}"
        conversation.sender_id = f"erased-{conversation.id}"
        if conversation.mode is not ConversationMode.CLOSED:
            conversation.mode = ConversationMode.CLOSED
            conversation.closed_at = conversation.closed_at or now
        rows = found.per_conversation[conversation.id]
        for message in rows["messages"]:
            messages += 1
            message.text = ERASED
            message.payload = {}
            message.error = None
            if message.status in (MessageStatus.QUEUED, MessageStatus.SENDING):
                message.status = MessageStatus.FAILED
                message.error = "not sent: the customer's data was erased"
        for handoff in rows["handoffs"]:
            handoff.contact = None
            if handoff.ended_at is None:
                handoff.ended_at = now
                handoff.outcome = "closed"
        for feedback in rows["kb_feedback"]:
            feedback.query = ERASED
        for gap in rows["kb_gaps"]:
            session.delete(gap)

    for ticket in found.tickets:
        ticket.subject = ERASED
        ticket.description = ERASED
        ticket.contact = None
        ticket.csat_comment = None
        if ticket.resolution is not None:
            ticket.resolution = ERASED
        for ticket_event in ticket.events:
            ticket_event.data = _safe_event_data(ticket_event)
        if ticket.status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            # Nobody can answer a person we no longer know: it leaves the queues and SLA checks.
            before = ticket.status
            ticket.status = TicketStatus.CLOSED
            ticket.closed_at = now
            session.add(
                TicketEvent(
                    ticket_id=ticket.id,
                    actor="system",
                    kind="closed_on_erasure",
                    data={"from": before.value, "to": TicketStatus.CLOSED.value},
                    created_at=now,
                )
            )

    for survey in found.surveys:
        survey.comment = None
        if survey.status in (SurveyStatus.PENDING, SurveyStatus.ASKED):
            survey.status = SurveyStatus.SKIPPED

    for update in found.telegram_updates:
        update.payload = {}
        update.handled_at = update.handled_at or now

    for row in found.audit_rows:
        row.details = _scrub(row.details, personal)

    erasure = Erasure(
        customer.id,
        already_erased=False,
        conversations=len(found.conversations),
        messages=messages,
        tickets=len(found.tickets),
        orders_kept=len(found.orders),
        tracker_events=tracker_events,
    )
    audit(
        session,
        actor,
        "customer_erased",
        "customer",
        customer.id,
        {
            "conversations": erasure.conversations,
            "messages": erasure.messages,
            "tickets": erasure.tickets,
            "orders_kept": erasure.orders_kept,
            "tracker_events": erasure.tracker_events,
        },
    )
    session.flush()
    return erasure


def _safe_event_data(event: TicketEvent) -> dict[str, Any]:
    return {key: (value if key in _SAFE_EVENT_KEYS else ERASED) for key, value in event.data.items()}


def _scrub(value: Any, personal: list[str]) -> Any:
    """`value` with every string that contains one of the personal values replaced by ERASED."""
    if isinstance(value, str):
        lowered = value.lower()
        return ERASED if any(p.lower() in lowered for p in personal) else value
    if isinstance(value, dict):
        return {key: _scrub(item, personal) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, personal) for item in value]
    return value
