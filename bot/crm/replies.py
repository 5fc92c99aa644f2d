"""Saved replies: the rules for writing them (leads) and filling their placeholders from the CRM
for one chat (agents).

A body may hold placeholders such as `{customer.first_name}` or `{order.number}` (`PLACEHOLDERS`).
They are filled on the server from the CRM rows of the chat the agent has open, never from what a
browser sends. A value the CRM does not have becomes a marker such as `[order number?]`, which the
agent must replace: a reply that still holds a marker is refused (`unfilled_markers`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.crm import sla
from bot.crm.audit import audit
from bot.crm.models import (
    Agent,
    AuthorKind,
    Conversation,
    Customer,
    Handoff,
    Message,
    Order,
    OrderStatus,
    SavedReply,
    Shipment,
    Ticket,
    VerificationAttempt,
)
from bot.errors import BadRequest, Conflict, NotFound

# The languages the assistant is to speak (DESIGN: en, de, nl, pt, zh); English is the fallback.
LANGUAGES = ("en", "de", "nl", "pt", "zh")
FALLBACK_LANGUAGE = "en"
MAX_SHORTCUT_CHARS = 40
MAX_TITLE_CHARS = 120
MAX_BODY_CHARS = 2000
SHORTCUT = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Anything in braces without spaces is meant as a placeholder, so a typo ("{order.numbr}") is
# refused instead of reaching a customer as it is; braces around words with spaces stay text.
_PLACEHOLDER = re.compile(r"\{([^{}\s]{1,60})\}")


@dataclass(frozen=True)
class Placeholder:
    name: str
    meaning: str
    marker: str  # what is inserted when the CRM has no value: the agent must replace it


PLACEHOLDERS: dict[str, Placeholder] = {
    p.name: p
    for p in (
        Placeholder("customer.first_name", "the customer's first name", "[first name?]"),
        Placeholder("customer.name", "the customer's full name", "[customer name?]"),
        Placeholder("order.number", "the number of the order the chat is about", "[order number?]"),
        Placeholder("order.status", "that order's status in words (e.g. 'on its way')", "[order status?]"),
        Placeholder("order.carrier", "the carrier of its latest shipment", "[carrier?]"),
        Placeholder(
            "order.tracking_number", "the tracking number of its latest shipment", "[tracking number?]"
        ),
        Placeholder("order.tracking_url", "a link to the carrier's tracking page", "[tracking link?]"),
        Placeholder("order.expected_date", "the delivery date the carrier promised", "[delivery date?]"),
        Placeholder("ticket.reference", "the chat's ticket reference (KF-...)", "[ticket reference?]"),
        Placeholder("ticket.due", "when we promised to resolve that ticket", "[promised time?]"),
        Placeholder("agent.first_name", "your first name, as the customer sees it", "[your name?]"),
        Placeholder("agent.name", "your full name", "[your name?]"),
    )
}
_MARKERS = frozenset(p.marker for p in PLACEHOLDERS.values())
# The marker of a placeholder that is no longer known ("[order.numbr?]").
_RAW_MARKER = re.compile(r"\[[a-z_]+\.[a-z_]+\?\]")

# Order statuses as a customer reads them.
STATUS_WORDS = {
    OrderStatus.PROCESSING: "being prepared in our warehouse",
    OrderStatus.SHIPPED: "shipped",
    OrderStatus.IN_TRANSIT: "on its way",
    OrderStatus.DELAYED: "delayed",
    OrderStatus.DELIVERED: "delivered",
    OrderStatus.RETURNED: "returned to us",
    OrderStatus.CANCELLED: "cancelled",
}

# The carriers' public tracking pages; a carrier not listed gets the marker instead of a guess.
TRACKING_PAGES = {
    "DHL": "https://www.dhl.com/de-en/home/tracking.html?tracking-id={number}",
    "DPD": "https://tracking.dpd.de/status/en_US/parcel/{number}",
    "GLS": "https://gls-group.com/DE/en/parcel-tracking?match={number}",
    "UPS": "https://www.ups.com/track?tracknum={number}",
    "POSTNL": "https://jouw.postnl.nl/track-and-trace/{number}",
}


# --- writing them (leads) ------------------------------------------------------------------------


def placeholders_in(body: str) -> list[str]:
    return _PLACEHOLDER.findall(body)


def check_content(shortcut: str, title: str, body: str, language: str) -> None:
    """Refuse (400) what agents could not use: every message says what to change."""
    if not shortcut:
        raise BadRequest(
            "the shortcut is empty; give lower-case words joined by hyphens, e.g. 'where-is-order'"
        )
    if len(shortcut) > MAX_SHORTCUT_CHARS:
        raise BadRequest(f"the shortcut is {len(shortcut)} characters; the limit is {MAX_SHORTCUT_CHARS}")
    if not SHORTCUT.fullmatch(shortcut):
        raise BadRequest(
            f"the shortcut {shortcut!r} must be lower-case letters and digits joined by hyphens, "
            "e.g. 'where-is-order'"
        )
    if not title.strip():
        raise BadRequest("the title is empty; say in a few words what the reply is for")
    if len(title) > MAX_TITLE_CHARS:
        raise BadRequest(f"the title is {len(title)} characters; the limit is {MAX_TITLE_CHARS}")
    if not body.strip():
        raise BadRequest("the reply text is empty; write what the agent should send")
    if len(body) > MAX_BODY_CHARS:
        raise BadRequest(f"the reply text is {len(body)} characters; the limit is {MAX_BODY_CHARS}")
    unknown = sorted({name for name in placeholders_in(body) if name not in PLACEHOLDERS})
    if unknown:
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        raise BadRequest(
            f"unknown placeholder {', '.join('{' + n + '}' for n in unknown)}; the placeholders are {known}"
        )
    if language not in LANGUAGES:
        raise BadRequest(f"unknown language {language!r}; use one of {', '.join(LANGUAGES)}")


def _actor(agent: Agent) -> str:
    return f"agent:{agent.id}"


def _duplicate(shortcut: str, language: str) -> Conflict:
    return Conflict(f"there is already a saved reply '/{shortcut}' in {language}; choose another shortcut")


def _taken(session: Session, shortcut: str, language: str, other_than: int | None = None) -> bool:
    query = select(SavedReply.id).where(SavedReply.shortcut == shortcut, SavedReply.language == language)
    if other_than is not None:
        query = query.where(SavedReply.id != other_than)
    return session.scalar(query.limit(1)) is not None


def _flush_unique(session: Session, shortcut: str, language: str) -> None:
    """Flush in a savepoint: a colleague saving the same shortcut at the same moment gets 409."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise _duplicate(shortcut, language) from exc


def create(
    session: Session,
    lead: Agent,
    shortcut: str,
    title: str,
    body: str,
    language: str = FALLBACK_LANGUAGE,
    source: str | None = None,
) -> SavedReply:
    shortcut, title = shortcut.strip(), title.strip()
    check_content(shortcut, title, body, language)
    if _taken(session, shortcut, language):
        raise _duplicate(shortcut, language)
    reply = SavedReply(
        shortcut=shortcut,
        title=title,
        body=body,
        language=language,
        archived=False,
        created_by_id=lead.id,
        updated_by_id=lead.id,
    )
    session.add(reply)
    _flush_unique(session, shortcut, language)
    audit(
        session,
        _actor(lead),
        "saved_reply_created",
        "saved_reply",
        reply.id,
        {"shortcut": shortcut, "language": language, "title": title},
        source,
    )
    return reply


def get(session: Session, reply_id: int) -> SavedReply:
    reply = session.get(SavedReply, reply_id)
    if reply is None:
        raise NotFound(f"there is no saved reply {reply_id}")
    return reply


def edit(
    session: Session, lead: Agent, reply_id: int, changes: dict[str, str], source: str | None = None
) -> SavedReply:
    """Change some of shortcut, title, body and language; the audit row names the fields changed."""
    reply = get(session, reply_id)
    new = {
        "shortcut": changes.get("shortcut", reply.shortcut).strip(),
        "title": changes.get("title", reply.title).strip(),
        "body": changes.get("body", reply.body),
        "language": changes.get("language", reply.language),
    }
    check_content(new["shortcut"], new["title"], new["body"], new["language"])
    changed = sorted(k for k, v in new.items() if getattr(reply, k) != v)
    if not changed:
        return reply
    if _taken(session, new["shortcut"], new["language"], other_than=reply.id):
        raise _duplicate(new["shortcut"], new["language"])
    before = {k: getattr(reply, k) for k in changed}
    for key in changed:
        setattr(reply, key, new[key])
    reply.updated_by_id = lead.id
    _flush_unique(session, new["shortcut"], new["language"])
    audit(
        session,
        _actor(lead),
        "saved_reply_edited",
        "saved_reply",
        reply.id,
        {"changed": changed, "before": before},
        source,
    )
    return reply


def set_archived(
    session: Session, lead: Agent, reply_id: int, archived: bool, source: str | None = None
) -> SavedReply:
    """Archive (agents no longer see it) or bring it back; doing it twice changes nothing."""
    reply = get(session, reply_id)
    if reply.archived == archived:
        return reply
    reply.archived = archived
    reply.updated_by_id = lead.id
    session.flush()
    audit(
        session,
        _actor(lead),
        "saved_reply_archived" if archived else "saved_reply_restored",
        "saved_reply",
        reply.id,
        {"shortcut": reply.shortcut, "language": reply.language},
        source,
    )
    return reply


def list_all(session: Session, q: str | None = None, include_archived: bool = True) -> list[SavedReply]:
    query = select(SavedReply).order_by(SavedReply.archived, SavedReply.shortcut, SavedReply.language)
    if not include_archived:
        query = query.where(SavedReply.archived.is_(False))
    if q:
        like = f"%{q.strip().lower()}%"
        query = query.where(
            func.lower(SavedReply.shortcut).like(like)
            | func.lower(SavedReply.title).like(like)
            | func.lower(SavedReply.body).like(like)
        )
    return list(session.scalars(query))


def view(reply: SavedReply) -> dict[str, Any]:
    return {
        "id": reply.id,
        "shortcut": reply.shortcut,
        "title": reply.title,
        "body": reply.body,
        "language": reply.language,
        "archived": reply.archived,
        "placeholders": sorted(set(placeholders_in(reply.body))),
        "created_by": reply.created_by.name if reply.created_by else None,
        "updated_by": reply.updated_by.name if reply.updated_by else None,
        "created_at": reply.created_at.isoformat(),
        "updated_at": reply.updated_at.isoformat(),
    }


# --- using them (agents) -------------------------------------------------------------------------


def chat_language(conversation: Conversation) -> str:
    """The language of the chat's saved replies. Conversations keep no language yet (the languages
    issue adds it), so every chat is English until then."""
    return FALLBACK_LANGUAGE


def for_chat(session: Session, conversation: Conversation) -> list[SavedReply]:
    """The active replies an agent may insert in this chat: each shortcut in the chat's language,
    else in English."""
    language = chat_language(conversation)
    found = session.scalars(
        select(SavedReply)
        .where(SavedReply.archived.is_(False), SavedReply.language.in_({language, FALLBACK_LANGUAGE}))
        .order_by(SavedReply.shortcut)
    ).all()
    best: dict[str, SavedReply] = {}
    for reply in found:
        if reply.shortcut not in best or reply.language == language:
            best[reply.shortcut] = reply
    return list(best.values())


@dataclass
class ChatFacts:
    """What the CRM knows about a chat, for filling placeholders; None where it knows nothing."""

    customer: Customer | None = None
    order: Order | None = None
    ticket: Ticket | None = None
    agent: Agent | None = None
    policy: sla.SlaPolicy | None = None
    values: dict[str, str | None] = field(default_factory=dict)


def _latest_ticket(session: Session, conversation: Conversation) -> Ticket | None:
    """The hand-over's ticket (the newest hand-over), else the chat's newest ticket."""
    ticket_id = session.scalar(
        select(Handoff.ticket_id)
        .where(Handoff.conversation_id == conversation.id, Handoff.ticket_id.is_not(None))
        .order_by(Handoff.id.desc())
        .limit(1)
    )
    if ticket_id is not None:
        return session.get(Ticket, ticket_id)
    return session.scalars(
        select(Ticket).where(Ticket.conversation_id == conversation.id).order_by(Ticket.id.desc()).limit(1)
    ).first()


_ORDER_NUMBER = re.compile(r"\b(\d{6,10})\b")


def _order_of_chat(
    session: Session, conversation: Conversation, customer: Customer | None, ticket: Ticket | None
) -> Order | None:
    """The order the chat is about, from the surest source to the least sure: the ticket's order,
    the order proven in this chat, an order of the customer's named in their messages, their only
    order. Anything but the ticket and the proof must be the chat's own customer's, so a stranger
    who types someone else's order number never gets its details."""
    if ticket is not None and ticket.order is not None:
        return ticket.order
    proven = session.scalar(
        select(VerificationAttempt.order_number)
        .where(
            VerificationAttempt.conversation_id == conversation.id, VerificationAttempt.succeeded.is_(True)
        )
        .order_by(VerificationAttempt.id.desc())
        .limit(1)
    )
    if proven is not None:
        order = session.scalar(select(Order).where(Order.number == proven))
        if order is not None and (customer is None or order.customer_id == customer.id):
            return order
    if customer is None:
        return None
    texts = session.scalars(
        select(Message.text)
        .where(Message.conversation_id == conversation.id, Message.author_kind == AuthorKind.CUSTOMER)
        .order_by(Message.id.desc())
    ).all()
    numbers = [n for text in texts for n in reversed(_ORDER_NUMBER.findall(text or ""))]
    if numbers:
        owned = {
            o.number: o
            for o in session.scalars(
                select(Order).where(Order.customer_id == customer.id, Order.number.in_(set(numbers)))
            )
        }
        for number in numbers:  # the most recent mention first
            if number in owned:
                return owned[number]
    only = session.scalars(select(Order).where(Order.customer_id == customer.id).limit(2)).all()
    return only[0] if len(only) == 1 else None


def chat_facts(
    session: Session, conversation: Conversation, agent: Agent, policy: sla.SlaPolicy
) -> ChatFacts:
    ticket = _latest_ticket(session, conversation)
    customer = conversation.customer or (ticket.customer if ticket is not None else None)
    order = _order_of_chat(session, conversation, customer, ticket)
    return ChatFacts(customer=customer, order=order, ticket=ticket, agent=agent, policy=policy)


def _shipment(order: Order | None) -> Shipment | None:
    return order.shipments[-1] if order is not None and order.shipments else None


def _tracking_url(shipment: Shipment | None) -> str | None:
    if shipment is None or not shipment.tracking_number:
        return None
    page = TRACKING_PAGES.get(shipment.carrier.strip().upper().replace(" ", ""))
    return page.format(number=shipment.tracking_number) if page else None


def _due(facts: ChatFacts) -> str | None:
    ticket = facts.ticket
    if ticket is None or ticket.sla_resolution_due is None or facts.policy is None:
        return None
    local = ticket.sla_resolution_due.astimezone(facts.policy.zone)
    return f"{local:%A %-d %B, %H:%M} ({facts.policy.timezone} time)"


def _first(name: str | None) -> str | None:
    return name.split()[0] if name and name.split() else None


_VALUES: dict[str, Callable[[ChatFacts], str | None]] = {
    "customer.first_name": lambda f: _first(f.customer.name) if f.customer else None,
    "customer.name": lambda f: f.customer.name if f.customer else None,
    "order.number": lambda f: f.order.number if f.order else None,
    "order.status": lambda f: STATUS_WORDS.get(f.order.status) if f.order else None,
    "order.carrier": lambda f: s.carrier if (s := _shipment(f.order)) else None,
    "order.tracking_number": lambda f: s.tracking_number if (s := _shipment(f.order)) else None,
    "order.tracking_url": lambda f: _tracking_url(_shipment(f.order)),
    "order.expected_date": lambda f: (
        f"{s.promised_date:%A %-d %B}" if (s := _shipment(f.order)) and s.promised_date else None
    ),
    "ticket.reference": lambda f: f.ticket.reference if f.ticket else None,
    "ticket.due": _due,
    "agent.first_name": lambda f: _first(f.agent.name) if f.agent else None,
    "agent.name": lambda f: f.agent.name if f.agent else None,
}


@dataclass(frozen=True)
class Filled:
    text: str
    filled: dict[str, str]
    missing: list[Placeholder]


def fill(body: str, facts: ChatFacts) -> Filled:
    """The body with every placeholder replaced by its value, or by its marker when there is none."""
    filled: dict[str, str] = {}
    missing: dict[str, Placeholder] = {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        placeholder = PLACEHOLDERS.get(name)
        if placeholder is None:  # written before the name was retired: a gap, never the raw braces
            placeholder = Placeholder(name, "an unknown placeholder", f"[{name}?]")
        getter = _VALUES.get(name)
        value = getter(facts) if getter is not None else None
        if value:
            filled[name] = value
            return value
        missing[name] = placeholder
        return placeholder.marker

    text = _PLACEHOLDER.sub(replace, body)
    return Filled(text=text, filled=filled, missing=list(missing.values()))


def unfilled_markers(text: str) -> list[str]:
    """The markers of missing values still in a reply about to be sent."""
    return sorted({marker for marker in _MARKERS if marker in text} | set(_RAW_MARKER.findall(text)))
