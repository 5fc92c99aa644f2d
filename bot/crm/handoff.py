"""Handing a chat to a person and back: escalation, the agents' queue, claiming, replies, transfer,
hand-back and closing.

Every step is a function over one caller-owned transaction, so the action server (a customer asks
for a person), the gateway (strong language) and the console (an agent claims) share one set of
rules. Rasa itself is paused and resumed by the callers, after their transaction commits.

A conversation's `mode` is the single source of truth for who answers: `bot`, `pending_agent`
(in the queue), `agent` (`assigned_agent_id` owns it) or `closed`. Each trip through the queue is a
`Handoff` row, from which the dashboard computes escalation rate and chat response times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.crm import csat, sla, tickets
from bot.crm.audit import audit
from bot.crm.conversations import store_outbound
from bot.crm.models import (
    Agent,
    AuthorKind,
    Conversation,
    ConversationMode,
    CsatSurvey,
    Customer,
    Handoff,
    Message,
    Severity,
    Ticket,
    TicketStatus,
    utcnow,
)
from bot.crm.priority import PRIORITY_ORDER
from bot.errors import BadRequest, Conflict, Forbidden, NotFound

# Why a chat went to a person, in the words agents see in their queue.
# An agent's reply: long enough for step-by-step instructions (Telegram gets it in parts).
MAX_REPLY_CHARS = 8000

REASONS = {
    "customer_asked": "asked for a person",
    "repeated_fallback": "the bot could not answer twice in a row",
    "severe_complaint": "serious complaint",
    "vip_complaint": "complaint from a VIP customer",
    "valuable_at_risk": "complaint from a high-value customer at risk of leaving",
    "negative_sentiment": "very upset customer",
    "bot_unavailable": "the bot could not answer for a while (a part was down)",
}
_SEVERITY = {
    "customer_asked": Severity.LOW,
    "repeated_fallback": Severity.LOW,
    "severe_complaint": Severity.HIGH,
    "vip_complaint": Severity.MEDIUM,
    "valuable_at_risk": Severity.MEDIUM,
    "negative_sentiment": Severity.MEDIUM,
    "bot_unavailable": Severity.MEDIUM,
}
# An agent counts as online when their console has been connected within this time.
ONLINE_WINDOW = timedelta(seconds=60)
_PRIORITY_RANK = {priority: rank for rank, priority in enumerate(PRIORITY_ORDER)}

HANDED_BACK_TEXT = "You're back with the Kefu assistant. Thanks for your patience with us."
CLOSED_TEXT = "Our team has closed this chat. Write here any time if you need us again."


@dataclass
class Escalation:
    handoff: Handoff
    ticket: Ticket | None
    notice: str  # what the customer is told: who will answer, when and how
    created: bool  # False when the chat was already with a person or in the queue


def open_handoff(session: Session, conversation_id: int) -> Handoff | None:
    """The conversation's current trip through the queue, if it is waiting for or with a person."""
    return session.scalars(
        select(Handoff)
        .where(Handoff.conversation_id == conversation_id, Handoff.ended_at.is_(None))
        .order_by(Handoff.id.desc())
        .limit(1)
    ).first()


def _active_ticket(session: Session, conversation_id: int) -> Ticket | None:
    return session.scalars(
        select(Ticket)
        .where(Ticket.conversation_id == conversation_id, Ticket.status.in_(tickets.ACTIVE))
        .order_by(Ticket.id.desc())
        .limit(1)
    ).first()


def escalate(
    session: Session,
    conversation: Conversation,
    reason: str,
    *,
    policy: sla.SlaPolicy,
    minutes_per_chat: float,
    actor: str = "bot",
    detail: str = "",
    now: datetime | None = None,
) -> Escalation:
    """Put the conversation in the agents' queue with a ticket, and say what the customer can expect.

    A ticket already open in this chat (a complaint just filed) is linked rather than duplicated.
    Escalating a chat that is already queued or with a person changes nothing.
    """
    if reason not in REASONS:
        raise ValueError(f"unknown hand-over reason {reason!r}; known: {', '.join(REASONS)}")
    now = now or utcnow()
    current = open_handoff(session, conversation.id)
    if conversation.mode in (ConversationMode.PENDING_AGENT, ConversationMode.AGENT) and current:
        return Escalation(
            current, current.ticket, wait_notice(session, current, policy, minutes_per_chat, now), False
        )

    ticket = _active_ticket(session, conversation.id)
    if ticket is None:
        ticket = tickets.open_ticket(
            session,
            kind="conversation",
            category="handoff",
            subject=f"Chat handed to a person: {REASONS[reason]}",
            description=detail,
            actor=actor,
            customer_id=conversation.customer_id,
            conversation_id=conversation.id,
            policy=policy,
            severity=_SEVERITY[reason],
            now=now,
        )
    tickets.add_event(session, ticket, actor, "handoff_requested", {"reason": reason})
    handoff = Handoff(
        conversation_id=conversation.id,
        ticket_id=ticket.id,
        reason=reason,
        priority=ticket.priority,
        requested_at=now,
    )
    session.add(handoff)
    conversation.mode = ConversationMode.PENDING_AGENT
    conversation.assigned_agent_id = None
    conversation.updated_at = now
    session.flush()
    audit(
        session,
        actor,
        "handoff_requested",
        "conversation",
        conversation.id,
        {"reason": reason, "ticket": ticket.reference},
    )
    return Escalation(handoff, ticket, wait_notice(session, handoff, policy, minutes_per_chat, now), True)


def agents_online(session: Session, now: datetime | None = None) -> int:
    now = now or utcnow()
    count = session.scalar(
        select(func.count(Agent.id)).where(Agent.active.is_(True), Agent.last_seen_at >= now - ONLINE_WINDOW)
    )
    return int(count or 0)


def _waiting(session: Session) -> list[Handoff]:
    return list(
        session.scalars(
            select(Handoff)
            .join(Conversation, Conversation.id == Handoff.conversation_id)
            .where(Handoff.ended_at.is_(None), Conversation.mode == ConversationMode.PENDING_AGENT)
        )
    )


def _queue_key(handoff: Handoff) -> tuple[int, datetime]:
    """Most urgent first, then longest waiting first."""
    return (-_PRIORITY_RANK[handoff.priority], handoff.requested_at)


def queue_position(session: Session, handoff: Handoff) -> int:
    """1 for the next chat an agent should take."""
    waiting = sorted(_waiting(session), key=_queue_key)
    ids = [h.id for h in waiting]
    return ids.index(handoff.id) + 1 if handoff.id in ids else 1


def is_open(policy: sla.SlaPolicy, now: datetime) -> bool:
    local = now.astimezone(policy.zone)
    return (
        local.weekday() in policy.days
        and local.date() not in policy.holidays
        and policy.opens <= local.time() < policy.closes
    )


def next_opening(policy: sla.SlaPolicy, now: datetime) -> datetime:
    """When the team is next at work (business hours of the SLA policy), in the shop's time zone."""
    local = now.astimezone(policy.zone)
    day = local.date()
    for _ in range(370):
        if day.weekday() in policy.days and day not in policy.holidays:
            opens = datetime.combine(day, policy.opens, policy.zone)
            if opens > local:
                return opens
        day += timedelta(days=1)
    raise sla.PolicyError("the business hours in the SLA policy never open (check days and holidays)")


def _when(moment: datetime, now: datetime, policy: sla.SlaPolicy) -> str:
    local_now = now.astimezone(policy.zone)
    if moment.date() == local_now.date():
        day = "today"
    elif moment.date() == (local_now + timedelta(days=1)).date():
        day = "tomorrow"
    else:
        day = f"{moment:%A} {moment.day} {moment:%B}"
    return f"{day} at {moment:%H:%M} ({policy.timezone.split('/')[-1].replace('_', ' ')} time)"


def wait_notice(
    session: Session, handoff: Handoff, policy: sla.SlaPolicy, minutes_per_chat: float, now: datetime
) -> str:
    """What the customer is told while waiting: the expected wait, or when and how we will answer."""
    online = agents_online(session, now)
    if handoff.agent_id is not None:
        return "A person from our team is with you now."
    if online == 0 or not is_open(policy, now):
        opening = next_opening(policy, now) if not is_open(policy, now) else None
        when = (
            f"from {_when(opening, now, policy)}"
            if opening is not None
            else "as soon as someone is back at their desk"
        )
        return (
            f"Nobody from our team is online right now. Someone will answer you here {when}, and you "
            "can close this window: the reply will wait for you. If you'd rather get it by e-mail, "
            "just type your e-mail address."
        )
    position = queue_position(session, handoff)
    minutes = max(1, math.ceil(position / online * minutes_per_chat))
    ahead = position - 1
    people = "nobody is" if ahead == 0 else ("1 person is" if ahead == 1 else f"{ahead} people are")
    team = "1 person" if online == 1 else f"{online} people"
    return (
        f"{people.capitalize()} waiting ahead of you and {team} from our team "
        f"{'is' if online == 1 else 'are'} online, so someone should be with you in "
        f"{about(minutes)}. Everything you write meanwhile reaches them."
    )


def about(minutes: int) -> str:
    """A wait in words: minutes under an hour, then hours ("about 7 hours", not 408 minutes)."""
    if minutes < 60:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    return "about an hour" if hours == 1 else f"about {hours} hours"


def still_waiting_notice(
    session: Session,
    conversation_id: int,
    policy: sla.SlaPolicy,
    minutes_per_chat: float,
    now: datetime | None = None,
) -> str | None:
    """What a customer who writes again while in the queue is told, from the queue as it is now;
    None once an agent has the chat (they read it and answer themselves)."""
    now = now or utcnow()
    handoff = open_handoff(session, conversation_id)
    if handoff is None or handoff.agent_id is not None:
        return None
    return "Your message is saved for our team. " + wait_notice(
        session, handoff, policy, minutes_per_chat, now
    )


def record_contact(session: Session, conversation_id: int, email: str) -> Handoff | None:
    """Keep an e-mail a waiting customer gave, so an agent can answer there too."""
    handoff = open_handoff(session, conversation_id)
    if handoff is None or handoff.agent_id is not None:
        return None
    handoff.contact = email
    if handoff.ticket is not None and not handoff.ticket.contact:
        handoff.ticket.contact = email
    session.flush()
    return handoff


# --- the agents' side -----------------------------------------------------------------------------


def _conversation(session: Session, conversation_id: int) -> Conversation:
    conversation = session.get(Conversation, conversation_id, populate_existing=True)
    if conversation is None:
        raise NotFound(f"there is no conversation {conversation_id}")
    return conversation


def queue(session: Session, agent: Agent, now: datetime | None = None) -> list[dict[str, object]]:
    """The agent's own chats first, then chats waiting for a person, then the chats colleagues are in
    (each group most urgent, then longest waiting, first); each with what an agent needs to choose:
    tier, reason, wait, last words."""
    now = now or utcnow()
    rows = session.execute(
        select(Handoff, Conversation, Customer)
        .join(Conversation, Conversation.id == Handoff.conversation_id)
        .outerjoin(Customer, Customer.id == Conversation.customer_id)
        .where(
            Handoff.ended_at.is_(None),
            Conversation.mode.in_((ConversationMode.PENDING_AGENT, ConversationMode.AGENT)),
        )
    ).all()
    # An agent's own chats stay on top: they are the ones waiting for this agent's answer.
    mine = sorted(
        (r for r in rows if r[1].mode is ConversationMode.AGENT and r[1].assigned_agent_id == agent.id),
        key=lambda r: _queue_key(r[0]),
    )
    waiting = sorted(
        (r for r in rows if r[1].mode is ConversationMode.PENDING_AGENT), key=lambda r: _queue_key(r[0])
    )
    taken = sorted(
        (r for r in rows if r[1].mode is ConversationMode.AGENT and r[1].assigned_agent_id != agent.id),
        key=lambda r: r[0].requested_at,
    )
    last_words = _last_customer_messages(session, [r[1].id for r in rows])
    names = dict(session.execute(select(Agent.id, Agent.name)).tuples().all())
    result: list[dict[str, object]] = []
    for handoff, conversation, customer in [*mine, *waiting, *taken]:
        result.append(
            {
                "conversation_id": conversation.id,
                "channel": conversation.channel,
                "mode": conversation.mode.value,
                "reason": handoff.reason,
                "reason_text": REASONS.get(handoff.reason, handoff.reason),
                "priority": handoff.priority.value,
                "requested_at": handoff.requested_at.isoformat(),
                "waiting_seconds": int((now - handoff.requested_at).total_seconds()),
                "agent_id": conversation.assigned_agent_id,
                "agent_name": names.get(conversation.assigned_agent_id)
                if conversation.assigned_agent_id
                else None,
                "mine": conversation.assigned_agent_id == agent.id,
                "customer": None
                if customer is None
                else {"id": customer.id, "name": customer.name, "tier": customer.value_tier.value},
                "tier": customer.value_tier.value if customer is not None else None,
                "ticket": handoff.ticket.reference if handoff.ticket is not None else None,
                "contact": handoff.contact,
                "last_message": last_words.get(conversation.id),
            }
        )
    return result


def _last_customer_messages(session: Session, conversation_ids: list[int]) -> dict[int, str]:
    if not conversation_ids:
        return {}
    newest = (
        select(Message.conversation_id, func.max(Message.id).label("id"))
        .where(Message.conversation_id.in_(conversation_ids), Message.author_kind == AuthorKind.CUSTOMER)
        .group_by(Message.conversation_id)
        .subquery()
    )
    rows = session.execute(
        select(Message.conversation_id, Message.text).join(newest, newest.c.id == Message.id)
    )
    return {conversation_id: text[:200] for conversation_id, text in rows.tuples()}


def claim(session: Session, conversation_id: int, agent: Agent, now: datetime | None = None) -> Handoff:
    """Take a waiting chat. The compare-and-set UPDATE means two agents claiming at once cannot both
    win: the database lets one row change and the other claim sees it taken (409)."""
    now = now or utcnow()
    taken = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.mode == ConversationMode.PENDING_AGENT)
        .values(mode=ConversationMode.AGENT, assigned_agent_id=agent.id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    won = taken.rowcount  # type: ignore[attr-defined]  # an UPDATE returns a CursorResult
    conversation = _conversation(session, conversation_id)
    if won != 1:
        if conversation.mode is ConversationMode.AGENT:
            holder = (
                session.get(Agent, conversation.assigned_agent_id) if conversation.assigned_agent_id else None
            )
            if holder is not None and holder.id == agent.id:
                raise Conflict("you already have this chat")
            raise Conflict(f"{holder.name if holder else 'another agent'} has already taken this chat")
        if conversation.mode is ConversationMode.CLOSED:
            raise Conflict("this chat is closed; it cannot be claimed")
        raise Conflict("this chat is back with the bot; nobody is waiting in it")
    handoff = open_handoff(session, conversation_id)
    if handoff is None:  # a chat put in the queue by hand (an old row): give it its handoff now
        handoff = Handoff(conversation_id=conversation_id, reason="customer_asked", requested_at=now)
        session.add(handoff)
    handoff.agent_id = agent.id
    handoff.claimed_at = handoff.claimed_at or now
    session.flush()
    store_outbound(
        session,
        conversation,
        AuthorKind.SYSTEM,
        f"{agent.name.split()[0]} from our support team has joined the chat.",
        {"buttons": [], "metadata": {"notice": "agent_joined"}},
    )
    audit(
        session, f"agent:{agent.id}", "chat_claimed", "conversation", conversation_id, {"handoff": handoff.id}
    )
    return handoff


def _owned(session: Session, conversation_id: int, agent: Agent) -> tuple[Conversation, Handoff]:
    conversation = _conversation(session, conversation_id)
    if conversation.mode is not ConversationMode.AGENT or conversation.assigned_agent_id != agent.id:
        if conversation.mode is ConversationMode.CLOSED:
            raise Conflict("this chat is closed")
        raise Forbidden("this chat is not yours: claim it from the queue first")
    handoff = open_handoff(session, conversation_id)
    if handoff is None:
        raise Conflict("this chat has no open hand-over")
    return conversation, handoff


def agent_reply(
    session: Session, conversation_id: int, agent: Agent, text: str, now: datetime | None = None
) -> Message:
    """An agent's message to the customer, stored for delivery on the customer's channel."""
    now = now or utcnow()
    text = text.strip()
    if not text:
        raise BadRequest("the message is empty")
    if len(text) > MAX_REPLY_CHARS:
        raise BadRequest(f"the message is {len(text)} characters; the limit is {MAX_REPLY_CHARS}")
    conversation, handoff = _owned(session, conversation_id, agent)
    message = store_outbound(
        session, conversation, AuthorKind.AGENT, text, {"buttons": []}, author_agent_id=agent.id
    )
    handoff.first_agent_reply_at = handoff.first_agent_reply_at or now
    ticket = handoff.ticket
    if ticket is not None:
        if ticket.status is TicketStatus.NEW:
            tickets.change_status(session, ticket, TicketStatus.OPEN, actor=f"agent:{agent.id}", now=now)
        ticket.first_responded_at = ticket.first_responded_at or now
    conversation.updated_at = now
    session.flush()
    return message


def transfer(
    session: Session, conversation_id: int, agent: Agent, to_agent_id: int, now: datetime | None = None
) -> Agent:
    """Pass a chat to a colleague; the customer keeps the conversation as it is."""
    conversation, handoff = _owned(session, conversation_id, agent)
    target = session.get(Agent, to_agent_id)
    if target is None or not target.active:
        raise BadRequest(f"there is no active agent {to_agent_id}")
    if target.id == agent.id:
        raise BadRequest("the chat is already yours")
    conversation.assigned_agent_id = target.id
    handoff.agent_id = target.id
    if handoff.ticket is not None:
        tickets.add_event(session, handoff.ticket, f"agent:{agent.id}", "transferred", {"to": target.name})
    audit(
        session,
        f"agent:{agent.id}",
        "chat_transferred",
        "conversation",
        conversation_id,
        {"to_agent": target.id},
    )
    session.flush()
    return target


def hand_back(
    session: Session, conversation_id: int, agent: Agent, now: datetime | None = None
) -> tuple[Conversation, CsatSurvey | None]:
    """Give the chat back to the bot. A satisfaction survey about the agent's help is queued; the
    caller resumes Rasa and lets the bot ask it."""
    now = now or utcnow()
    conversation, handoff = _owned(session, conversation_id, agent)
    _end(session, conversation, handoff, agent, "handed_back", now)
    conversation.mode = ConversationMode.BOT
    store_outbound(
        session,
        conversation,
        AuthorKind.SYSTEM,
        HANDED_BACK_TEXT,
        {"buttons": [], "metadata": {"notice": "handed_back"}},
    )
    survey = None
    if not csat.recently_surveyed(session, conversation.id, now):
        survey = csat.request_survey(session, trigger="agent_handback", conversation=conversation, now=now)
    session.flush()
    return conversation, survey


def close(session: Session, conversation_id: int, agent: Agent, now: datetime | None = None) -> Conversation:
    """End the chat; the customer's next message opens it again with the bot."""
    now = now or utcnow()
    conversation, handoff = _owned(session, conversation_id, agent)
    _end(session, conversation, handoff, agent, "closed", now)
    conversation.mode = ConversationMode.CLOSED
    conversation.closed_at = now
    store_outbound(
        session,
        conversation,
        AuthorKind.SYSTEM,
        CLOSED_TEXT,
        {"buttons": [], "metadata": {"notice": "closed"}},
    )
    session.flush()
    return conversation


def _end(
    session: Session, conversation: Conversation, handoff: Handoff, agent: Agent, outcome: str, now: datetime
) -> None:
    handoff.ended_at = now
    handoff.outcome = outcome
    conversation.assigned_agent_id = None
    conversation.updated_at = now
    if handoff.ticket is not None:
        tickets.add_event(session, handoff.ticket, f"agent:{agent.id}", f"chat_{outcome}", {})
    audit(
        session,
        f"agent:{agent.id}",
        f"chat_{outcome}",
        "conversation",
        conversation.id,
        {"handoff": handoff.id},
    )
