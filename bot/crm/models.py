"""The CRM schema: customers, orders, shipments, conversations, tickets, agents and the audit log."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use bot.crm.models.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    # Named constraints, so later migrations can alter them on SQLite too (0001 uses these names).
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
    }


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native enum types) so migrations stay simple on PostgreSQL.
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class ValueTier(enum.StrEnum):
    VIP = "vip"
    KEY = "key"
    REGULAR = "regular"


class LifecycleStage(enum.StrEnum):
    PROSPECT = "prospect"
    NEW = "new"
    GROWING = "growing"
    MATURE = "mature"
    DECLINING = "declining"
    CHURNED = "churned"


class OrderStatus(enum.StrEnum):
    PROCESSING = "processing"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RETURNED = "returned"
    CANCELLED = "cancelled"


class ConversationMode(enum.StrEnum):
    BOT = "bot"
    PENDING_AGENT = "pending_agent"
    AGENT = "agent"
    CLOSED = "closed"


class Direction(enum.StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"


class AuthorKind(enum.StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class MessageStatus(enum.StrEnum):
    # Inbound messages: stored -> processed, or failed when a part was down (kept for retry/agents).
    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"
    # Outbound messages. The web chat reads them from the database, so they are stored already
    # sent. Push channels (Telegram) store them queued; the outbox delivers each once, in order:
    # queued -> sending -> sent, or failed when the channel refuses it for good.
    SENT = "sent"
    QUEUED = "queued"
    SENDING = "sending"


class TicketStatus(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING_CUSTOMER = "pending_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


class TicketPriority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Severity(enum.StrEnum):
    """How bad a complaint is, inferred from its words and its order (see bot/crm/complaints.py)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class SurveyStatus(enum.StrEnum):
    """A satisfaction survey: waiting to be sent, asked, answered, or given up on."""

    PENDING = "pending"  # to be sent on the customer's channel by the scheduler
    ASKED = "asked"
    ANSWERED = "answered"
    SKIPPED = "skipped"  # the customer moved on without rating
    UNDELIVERABLE = "undeliverable"  # no channel to reach the customer on


class AgentRole(enum.StrEnum):
    AGENT = "agent"
    LEAD = "lead"
    ADMIN = "admin"


class ArticleStatus(enum.StrEnum):
    """Where an article stands; `published` means customers get answers from it."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class VersionStatus(enum.StrEnum):
    """Where one version stands: a published article keeps serving its published version while
    a newer draft of it is written and reviewed; the version it replaces becomes `superseded`."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"


class GapStatus(enum.StrEnum):
    OPEN = "open"
    DRAFTED = "drafted"  # a draft article was made from it
    DISMISSED = "dismissed"
    ANSWERED = "answered"  # a published article now answers it (best_article_id)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    value_tier: Mapped[ValueTier] = mapped_column(_enum(ValueTier), default=ValueTier.REGULAR)
    lifecycle_stage: Mapped[LifecycleStage] = mapped_column(
        _enum(LifecycleStage), default=LifecycleStage.PROSPECT
    )
    rfm_recency: Mapped[int | None] = mapped_column(Integer)
    rfm_frequency: Mapped[int | None] = mapped_column(Integer)
    rfm_monetary: Mapped[int | None] = mapped_column(Integer)
    # Set by bot/crm/scoring.py: at risk of leaving, and why ("falling_frequency", ...).
    churn_risk: Mapped[bool] = mapped_column(default=False)
    churn_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    scored_at: Mapped[datetime | None]
    # Set by bot/crm/value.py through scoring: margin on purchases so far, and the discounted margin
    # expected over the CLV horizon (refitted nightly with the whole base; EUR).
    clv_to_date: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    clv_future: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))

    identities: Mapped[list[CustomerIdentity]] = relationship(back_populates="customer")
    orders: Mapped[list[Order]] = relationship(back_populates="customer")

    def __repr__(self) -> str:
        return f"Customer(id={self.id!r}, email={self.email!r})"


class CustomerIdentity(Base):
    """A way one customer reaches us: (channel, external id) such as a Telegram user or web visitor."""

    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(200))
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="identities")

    def __repr__(self) -> str:
        return f"CustomerIdentity({self.channel!r}, {self.external_id!r} -> {self.customer_id!r})"


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus))
    placed_at: Mapped[datetime]
    total: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    shipping_address: Mapped[str] = mapped_column(Text, default="")

    customer: Mapped[Customer] = relationship(back_populates="orders")
    items: Mapped[list[OrderItem]] = relationship(back_populates="order", cascade="all, delete-orphan")
    shipments: Mapped[list[Shipment]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Shipment.id"
    )

    def __repr__(self) -> str:
        return f"Order(number={self.number!r}, status={self.status.value!r})"


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))

    order: Mapped[Order] = relationship(back_populates="items")

    def __repr__(self) -> str:
        return f"OrderItem({self.sku!r} x{self.quantity})"


class Shipment(Base):
    __tablename__ = "shipments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    carrier: Mapped[str] = mapped_column(String(64))
    tracking_number: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus))
    shipped_at: Mapped[datetime | None]
    promised_date: Mapped[date | None] = mapped_column(Date)
    delivered_at: Mapped[datetime | None]

    order: Mapped[Order] = relationship(back_populates="shipments")
    events: Mapped[list[ShipmentEvent]] = relationship(
        back_populates="shipment", cascade="all, delete-orphan", order_by="ShipmentEvent.occurred_at"
    )

    def __repr__(self) -> str:
        return f"Shipment({self.carrier!r}, {self.tracking_number!r}, {self.status.value!r})"


class ShipmentEvent(Base):
    __tablename__ = "shipment_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"), index=True)
    occurred_at: Mapped[datetime]
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus))
    location: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(String(500))

    shipment: Mapped[Shipment] = relationship(back_populates="events")

    def __repr__(self) -> str:
        return f"ShipmentEvent({self.occurred_at:%Y-%m-%d %H:%M}, {self.description!r})"


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[AgentRole] = mapped_column(_enum(AgentRole), default=AgentRole.AGENT)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Refreshed while the agent's console is connected; "online" means seen in the last minute.
    last_seen_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"Agent(id={self.id!r}, email={self.email!r}, role={self.role.value!r})"


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index("ix_conversations_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    # The visitor id (web) or chat id (Telegram) the channel knows this conversation by.
    external_id: Mapped[str] = mapped_column(String(200))
    # The sender id used with Rasa; random so that it cannot be guessed from the external id.
    sender_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    mode: Mapped[ConversationMode] = mapped_column(_enum(ConversationMode), default=ConversationMode.BOT)
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    verified_at: Mapped[datetime | None]
    # How the chat proved it is the customer's: "order" (an order number with its e-mail or phone,
    # which shows that order only) or "code" (a one-time code from the customer's mailbox, which
    # opens everything: all orders, cancelling, refunds, tickets). Both expire (bot/crm/proof.py).
    proof: Mapped[str | None] = mapped_column(String(8))
    closed_at: Mapped[datetime | None]

    customer: Mapped[Customer | None] = relationship()
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.id", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"Conversation(id={self.id!r}, {self.channel!r}, mode={self.mode.value!r})"


class Message(Base):
    __tablename__ = "messages"
    # A channel's own message id (Telegram update id, web client message id) is accepted once only.
    __table_args__ = (
        UniqueConstraint("channel", "channel_message_id"),
        Index("ix_messages_channel_status", "channel", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(32))
    channel_message_id: Mapped[str | None] = mapped_column(String(200))
    direction: Mapped[Direction] = mapped_column(_enum(Direction))
    author_kind: Mapped[AuthorKind] = mapped_column(_enum(AuthorKind))
    author_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Outbox delivery (push channels): tries so far, when to try again, when the channel took it.
    delivery_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]

    conversation: Mapped[Conversation] = relationship(back_populates="messages")

    def __repr__(self) -> str:
        return f"Message(id={self.id!r}, {self.author_kind.value}: {self.text[:30]!r})"


class Handoff(Base):
    """One time a conversation went to a person: why, who took it, when they first answered, how
    it ended. Escalation rate, containment and chat response times are computed from these rows."""

    __tablename__ = "handoffs"
    __table_args__ = (Index("ix_handoffs_requested", "requested_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # customer_asked, repeated_fallback, severe_complaint, vip_complaint, negative_sentiment.
    reason: Mapped[str] = mapped_column(String(32))
    priority: Mapped[TicketPriority] = mapped_column(_enum(TicketPriority), default=TicketPriority.NORMAL)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The agent who holds the chat now (a transfer changes it) and when it was first claimed.
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    claimed_at: Mapped[datetime | None]
    first_agent_reply_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # handed_back or closed, once ended.
    outcome: Mapped[str | None] = mapped_column(String(16))
    # Where to answer when nobody is online (an e-mail the customer gave while waiting).
    contact: Mapped[str | None] = mapped_column(String(320))

    conversation: Mapped[Conversation] = relationship()
    ticket: Mapped[Ticket | None] = relationship()
    agent: Mapped[Agent | None] = relationship()

    def __repr__(self) -> str:
        return f"Handoff(id={self.id!r}, conversation={self.conversation_id!r}, {self.reason!r})"


class VerificationAttempt(Base):
    """One try at proving an order is the customer's; failures are counted per chat, order number,
    contact given and client address (bot/crm/proof.py)."""

    __tablename__ = "verification_attempts"
    __table_args__ = (
        Index("ix_verification_conversation_time", "conversation_id", "created_at"),
        Index("ix_verification_order_time", "order_number", "created_at"),
        Index("ix_verification_contact_time", "contact_key", "created_at"),
        Index("ix_verification_address_time", "address", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    order_number: Mapped[str] = mapped_column(String(32))
    succeeded: Mapped[bool]
    # A keyed hash of the e-mail or phone digits given (never the contact itself), and the client's
    # address as the gateway saw it (None on Telegram, where the chat id is Telegram's).
    contact_key: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OneTimeCode(Base):
    """A code e-mailed to a customer to prove a chat is theirs: 6 digits, stored hashed, a few
    minutes long, a few tries, used once."""

    __tablename__ = "one_time_codes"
    __table_args__ = (Index("ix_one_time_codes_customer_time", "customer_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    tries: Mapped[int] = mapped_column(default=0)
    used_at: Mapped[datetime | None]


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_status_priority", "status", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"), index=True)
    # The customer message that created the ticket: one message can never open two tickets.
    source_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), unique=True
    )
    # A follow-up (a low satisfaction score, say) points at the ticket it follows.
    parent_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # complaint, refund, delivery, cancellation, csat_follow_up: what opened it.
    kind: Mapped[str] = mapped_column(String(32), default="complaint")
    category: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    # What the customer wants: refund, replacement, repair, apology, information.
    desired_outcome: Mapped[str | None] = mapped_column(String(32))
    severity: Mapped[Severity] = mapped_column(_enum(Severity), default=Severity.LOW)
    # An e-mail or phone to answer on when the chat is not linked to a customer.
    contact: Mapped[str | None] = mapped_column(String(320))
    priority: Mapped[TicketPriority] = mapped_column(_enum(TicketPriority), default=TicketPriority.NORMAL)
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.NEW)
    sla_first_response_due: Mapped[datetime | None]
    sla_resolution_due: Mapped[datetime | None]
    sla_first_response_breached_at: Mapped[datetime | None]
    sla_resolution_breached_at: Mapped[datetime | None]
    first_responded_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    resolution: Mapped[str | None] = mapped_column(Text)
    csat_score: Mapped[int | None]
    csat_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer | None] = relationship()
    order: Mapped[Order | None] = relationship()
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"Ticket({self.reference!r}, {self.status.value!r}, {self.priority.value!r})"


class TicketEvent(Base):
    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    # "customer", "bot", "agent:<id>" or "system": who made the change.
    actor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class CsatSurvey(Base):
    """One satisfaction question (1-5 and an optional comment) about a resolved ticket or a chat."""

    __tablename__ = "csat_surveys"
    __table_args__ = (Index("ix_csat_surveys_status_requested", "status", "requested_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    # ticket_resolved, conversation_end, agent_handback, customer_offered.
    trigger: Mapped[str] = mapped_column(String(32))
    # The service episode rated (bot/crm/csat.py: "ticket:12@1764950400", "handoff:7",
    # "chat:3:article:41"): one survey per episode, and only surveys with one count on the dashboard.
    episode: Mapped[str | None] = mapped_column(String(80), unique=True)
    channel: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[SurveyStatus] = mapped_column(_enum(SurveyStatus), default=SurveyStatus.PENDING)
    score: Mapped[int | None]
    comment: Mapped[str | None] = mapped_column(Text)
    # The ticket a score of 1 or 2 opened for the support lead.
    follow_up_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    delivery_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    asked_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"CsatSurvey(id={self.id!r}, {self.trigger!r}, {self.status.value!r}, score={self.score!r})"


class EquitySnapshot(Base):
    """Customer equity as one rescoring of the whole base found it: one row per day, for the trend."""

    __tablename__ = "equity_snapshots"

    taken_on: Mapped[date] = mapped_column(Date, primary_key=True)
    customers: Mapped[int]
    value_to_date: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    equity: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    model: Mapped[str] = mapped_column(String(16))

    def __repr__(self) -> str:
        return f"EquitySnapshot({self.taken_on!r}, {self.equity!r})"


class JobLease(Base):
    """Who runs a scheduled job right now: with several gateways, only the lease holder runs it."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"JobLease({self.name!r}, {self.holder!r})"


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    record_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    def __repr__(self) -> str:
        return f"AuditLog({self.actor!r} {self.action!r} {self.record_type}:{self.record_id})"


class AgentSession(Base):
    """A console login. Only a hash of the cookie's token is stored."""

    __tablename__ = "agent_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str | None] = mapped_column(String(200))

    agent: Mapped[Agent] = relationship()


class KbArticle(Base):
    """A knowledge-base article; its content lives in versions, every edit making a new one."""

    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[ArticleStatus] = mapped_column(
        _enum(ArticleStatus), default=ArticleStatus.DRAFT, index=True
    )
    # Number of the newest version (what an edit must start from) and the version customers get.
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    published_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("kb_article_versions.id", ondelete="SET NULL", use_alter=True)
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    versions: Mapped[list[KbArticleVersion]] = relationship(
        back_populates="article",
        order_by="KbArticleVersion.number",
        foreign_keys="KbArticleVersion.article_id",
        cascade="all, delete-orphan",
    )
    published_version: Mapped[KbArticleVersion | None] = relationship(
        foreign_keys=[published_version_id], post_update=True
    )

    def __repr__(self) -> str:
        return f"KbArticle({self.slug!r}, {self.status.value!r}, v{self.latest_version})"


class KbArticleVersion(Base):
    __tablename__ = "kb_article_versions"
    __table_args__ = (UniqueConstraint("article_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[VersionStatus] = mapped_column(_enum(VersionStatus), default=VersionStatus.DRAFT)
    title: Mapped[str] = mapped_column(String(200))
    problem: Mapped[str] = mapped_column(Text)
    solution: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The version this one was edited from (None for the first), and why it was made.
    based_on: Mapped[int | None] = mapped_column(Integer)
    change_note: Mapped[str] = mapped_column(String(300), default="")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    # float32 vectors (rows of `embedding_dim`) from `embedding_model`, made when published.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_model: Mapped[str | None] = mapped_column(String(120))
    embedding_dim: Mapped[int | None] = mapped_column(Integer)

    article: Mapped[KbArticle] = relationship(back_populates="versions", foreign_keys=[article_id])
    author: Mapped[Agent | None] = relationship(foreign_keys=[author_id])
    reviewer: Mapped[Agent | None] = relationship(foreign_keys=[reviewer_id])

    def __repr__(self) -> str:
        return f"KbArticleVersion(article={self.article_id}, v{self.number}, {self.status.value!r})"


class KbIndexState(Base):
    """One row whose generation goes up whenever the set of published articles changes; every
    process with a search index polls it and reloads when it moved."""

    __tablename__ = "kb_index_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class KbFeedback(Base):
    """An article shown to a customer, and whether they said it helped (None: no answer yet)."""

    __tablename__ = "kb_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("kb_article_versions.id", ondelete="SET NULL"))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    query: Mapped[str] = mapped_column(Text)
    # How it was shown: "answer" (confident), "chosen" (picked from choices), "next" (after a no).
    shown_as: Mapped[str] = mapped_column(String(16))
    score: Mapped[float]
    helpful: Mapped[bool | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    answered_at: Mapped[datetime | None]


class KbGap(Base):
    """A question the knowledge base could not answer, or whose answers did not help."""

    __tablename__ = "kb_gaps"

    id: Mapped[int] = mapped_column(primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(16))  # "no_match" or "unhelpful"
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    # Once answered: the article that answers it, and its score.
    best_article_id: Mapped[int | None] = mapped_column(ForeignKey("kb_articles.id", ondelete="SET NULL"))
    best_score: Mapped[float | None]
    status: Mapped[GapStatus] = mapped_column(_enum(GapStatus), default=GapStatus.OPEN, index=True)
    draft_article_id: Mapped[int | None] = mapped_column(ForeignKey("kb_articles.id", ondelete="SET NULL"))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SavedReply(Base):
    """A saved reply (canned response) agents insert from the reply box; placeholders such as
    `{order.number}` are filled from the CRM when inserted (bot/crm/replies.py)."""

    __tablename__ = "saved_replies"
    # One reply per shortcut and language: the same shortcut in German is its translation.
    __table_args__ = (UniqueConstraint("language", "shortcut"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8), default="en")
    archived: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    created_by: Mapped[Agent | None] = relationship(foreign_keys=[created_by_id])
    updated_by: Mapped[Agent | None] = relationship(foreign_keys=[updated_by_id])

    def __repr__(self) -> str:
        return f"SavedReply({self.language}:{self.shortcut!r}, archived={self.archived!r})"


class TelegramUpdate(Base):
    """An update Telegram delivered, stored before it is acknowledged: Telegram resends an update
    after a timeout or an error, and each update id must be handled once (and, after a crash,
    still handled)."""

    __tablename__ = "telegram_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(index=True)

    def __repr__(self) -> str:
        return f"TelegramUpdate({self.update_id!r}, handled={self.handled_at is not None})"
