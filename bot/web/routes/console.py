"""The agent console's API: the queue, a chat with its customer, claiming, replying, transfer,
hand-back and closing, knowledge-base suggestions, and a WebSocket of live events.

Every route needs a console login (agent, lead or admin); changes need the CSRF header. The rules
themselves live in `bot.crm.handoff`; this module maps HTTP onto them and tells the consoles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from bot.channels.pipeline import message_json
from bot.channels.widget_live import BadFrame, close_for, receive_text_frame
from bot.crm import handoff, replies, winback
from bot.crm.audit import audit
from bot.crm.conversations import history, store_outbound
from bot.crm.models import (
    Agent,
    AuthorKind,
    Conversation,
    CsatSurvey,
    Customer,
    CustomerIdentity,
    Handoff,
    KbArticle,
    Message,
    Order,
    SurveyStatus,
    Ticket,
    utcnow,
)
from bot.errors import BadRequest, KefuError, NotFound
from bot.live import LiveHub
from bot.web.deps import (
    COOKIE,
    MAX_RECORD_ID,
    AnyAgent,
    KbIndexDep,
    LiveDep,
    LoginFirstRoute,
    RasaDep,
    RecordId,
    SessionDep,
    client_address,
    valid_login,
)
from bot.web.schemas import Text, console_message, ticket_summary

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/console", tags=["agent console"], route_class=LoginFirstRoute)

# How often a connected console is marked as present (agents online) and its login re-checked.
HEARTBEAT_SECONDS = 20.0
SUGGESTIONS = 3


class ReplyIn(BaseModel):
    text: Text = Field(min_length=1, max_length=handoff.MAX_REPLY_CHARS)


class TransferIn(BaseModel):
    agent_id: int = Field(ge=1, le=MAX_RECORD_ID)


def _touch(session: Session, agent_id: int) -> None:
    found = session.get(Agent, agent_id)
    if found is not None:
        found.last_seen_at = utcnow()


@router.get("/queue")
def get_queue(session: SessionDep, agent: AnyAgent) -> dict[str, Any]:
    """The agent's own chats, then waiting chats (most urgent, then longest waiting, first), then others'."""
    with session.begin():
        _touch(session, agent.id)
        return {
            "queue": handoff.queue(session, agent),
            "agents_online": handoff.agents_online(session),
            "me": {"id": agent.id, "name": agent.name, "role": agent.role.value},
        }


@router.get("/agents")
def list_agents(session: SessionDep, _agent: AnyAgent) -> dict[str, Any]:
    """Active colleagues, for transfers, with whether their console is connected."""
    with session.begin():
        since = utcnow() - handoff.ONLINE_WINDOW
        agents = session.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.name)).all()
        return {
            "agents": [
                {
                    "id": a.id,
                    "name": a.name,
                    "role": a.role.value,
                    "online": a.last_seen_at is not None and a.last_seen_at >= since,
                }
                for a in agents
            ]
        }


def _defection(session: Session, customer: Customer) -> dict[str, Any]:
    record = winback.defections(session, [customer.id], utcnow().date())[customer.id]
    return {"reasons": record.reasons, "details": record.describe()}


def _customer_panel(session: Session, customer: Customer, conversation_id: int) -> dict[str, Any]:
    orders = session.scalars(
        select(Order).where(Order.customer_id == customer.id).order_by(Order.placed_at.desc()).limit(10)
    ).all()
    tickets = session.scalars(
        select(Ticket).where(Ticket.customer_id == customer.id).order_by(Ticket.id.desc()).limit(10)
    ).all()
    others = session.execute(
        select(Conversation, func.count(Message.id), func.max(Message.created_at))
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Conversation.customer_id == customer.id, Conversation.id != conversation_id)
        .group_by(Conversation.id)
        .order_by(func.max(Message.created_at).desc())
        .limit(10)
    ).all()
    identities = session.scalars(
        select(CustomerIdentity).where(CustomerIdentity.customer_id == customer.id)
    ).all()
    return {
        "id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "customer_since": customer.created_at.date().isoformat(),
        "tier": customer.value_tier.value,
        "stage": customer.lifecycle_stage.value,
        "rfm": {
            "recency": customer.rfm_recency,
            "frequency": customer.rfm_frequency,
            "monetary": customer.rfm_monetary,
        },
        "churn_risk": customer.churn_risk,
        "churn_reasons": list(customer.churn_reasons or []),
        # Lifetime value (bot/crm/value.py) and what our records say could drive them away
        # (bot/crm/winback.py), so the agent knows what is at stake and what to put right.
        "lifetime_value": {
            "to_date": float(customer.clv_to_date) if customer.clv_to_date is not None else None,
            "future": float(customer.clv_future) if customer.clv_future is not None else None,
        },
        "defection": _defection(session, customer),
        "identities": [{"channel": i.channel} for i in identities],
        "orders": [
            {
                "number": o.number,
                "status": o.status.value,
                "placed_at": o.placed_at.date().isoformat(),
                "total": f"{o.total} {o.currency}",
                "shipments": [
                    {
                        "carrier": s.carrier,
                        "tracking_number": s.tracking_number,
                        "status": s.status.value,
                        "promised_date": s.promised_date.isoformat() if s.promised_date else None,
                        "latest": s.events[-1].description if s.events else None,
                    }
                    for s in o.shipments
                ],
            }
            for o in orders
        ],
        "tickets": [ticket_summary(t) for t in tickets],
        "past_conversations": [
            {
                "id": c.id,
                "channel": c.channel,
                "messages": count,
                "last_message_at": last.isoformat() if last else None,
                "mode": c.mode.value,
            }
            for c, count, last in others
        ],
    }


@router.get("/conversations/{conversation_id}")
def get_conversation(
    conversation_id: RecordId, request: Request, session: SessionDep, agent: AnyAgent
) -> dict[str, Any]:
    """One chat for the console: every message in order, the hand-over, its ticket and the customer."""
    with session.begin():
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            raise NotFound(f"there is no conversation {conversation_id}")
        names = dict(session.execute(select(Agent.id, Agent.name)).tuples().all())
        current = handoff.open_handoff(session, conversation_id)
        latest = (
            current
            or session.scalars(
                select(Handoff)
                .where(Handoff.conversation_id == conversation_id)
                .order_by(Handoff.id.desc())
                .limit(1)
            ).first()
        )
        customer = session.get(Customer, conversation.customer_id) if conversation.customer_id else None
        audit(
            session,
            f"agent:{agent.id}",
            "customer_viewed" if customer is not None else "conversation_viewed",
            "customer" if customer is not None else "conversation",
            customer.id if customer is not None else conversation_id,
            {"conversation": conversation_id},
            client_address(request),
        )
        return {
            "id": conversation.id,
            "channel": conversation.channel,
            "mode": conversation.mode.value,
            "agent_id": conversation.assigned_agent_id,
            "agent_name": names.get(conversation.assigned_agent_id)
            if conversation.assigned_agent_id
            else None,
            "mine": conversation.assigned_agent_id == agent.id,
            "verified": conversation.verified_at is not None,
            "handoff": None
            if latest is None
            else {
                "id": latest.id,
                "reason": latest.reason,
                "reason_text": handoff.REASONS.get(latest.reason, latest.reason),
                "requested_at": latest.requested_at.isoformat(),
                "claimed_at": latest.claimed_at.isoformat() if latest.claimed_at else None,
                "contact": latest.contact,
                "open": latest.ended_at is None,
            },
            "ticket": ticket_summary(latest.ticket)
            if latest is not None and latest.ticket is not None
            else None,
            "customer": _customer_panel(session, customer, conversation_id) if customer is not None else None,
            "messages": [console_message(m, names) for m in history(session, conversation)],
        }


def _publish_queue(hub: LiveHub, conversation_id: int) -> None:
    hub.publish({"type": "queue", "conversation_id": conversation_id})


def _publish_messages(hub: LiveHub, conversation_id: int, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        hub.publish({"type": "message", "conversation_id": conversation_id, "message": message})


@router.post("/conversations/{conversation_id}/claim")
def claim(conversation_id: RecordId, session: SessionDep, agent: AnyAgent, hub: LiveDep) -> dict[str, Any]:
    """Take a waiting chat; 409 when someone else was faster or the chat is closed."""
    with session.begin():
        taken = handoff.claim(session, conversation_id, agent)
        joined = session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc())
            .limit(1)
        ).one()
        view = message_json(joined)
        result = {"conversation_id": conversation_id, "handoff": taken.id, "agent": agent.name}
    _publish_messages(hub, conversation_id, [view])
    _publish_queue(hub, conversation_id)
    return result


@router.post("/conversations/{conversation_id}/messages")
def reply(
    conversation_id: RecordId, body: ReplyIn, session: SessionDep, agent: AnyAgent, hub: LiveDep
) -> dict[str, Any]:
    """Send a message to the customer on their channel; only the agent who owns the chat can.

    A saved reply's marker for a missing value ("[order number?]") left in the text is refused:
    the customer would read it as it is."""
    gaps = replies.unfilled_markers(body.text)
    if gaps:
        raise BadRequest(f"the reply still has gaps to fill in: {', '.join(gaps)}")
    with session.begin():
        message = handoff.agent_reply(session, conversation_id, agent, body.text)
        view = message_json(message)
        view["agent_name"] = agent.name
    _publish_messages(hub, conversation_id, [view])
    return {"message": view}


@router.post("/conversations/{conversation_id}/transfer")
def transfer(
    conversation_id: RecordId, body: TransferIn, session: SessionDep, agent: AnyAgent, hub: LiveDep
) -> dict[str, Any]:
    with session.begin():
        target = handoff.transfer(session, conversation_id, agent, body.agent_id)
        result = {"conversation_id": conversation_id, "agent_id": target.id, "agent_name": target.name}
    _publish_queue(hub, conversation_id)
    return result


@router.post("/conversations/{conversation_id}/close")
def close(conversation_id: RecordId, session: SessionDep, agent: AnyAgent, hub: LiveDep) -> dict[str, Any]:
    with session.begin():
        conversation = handoff.close(session, conversation_id, agent)
        notice = message_json(history(session, conversation)[-1])
    _publish_messages(hub, conversation_id, [notice])
    _publish_queue(hub, conversation_id)
    return {"conversation_id": conversation_id, "mode": "closed"}


@router.post("/conversations/{conversation_id}/handback")
async def hand_back(
    conversation_id: RecordId,
    session: SessionDep,
    agent: AnyAgent,
    rasa: RasaDep,
    hub: LiveDep,
) -> dict[str, Any]:
    """Give the chat back to the bot: Rasa is resumed and the bot asks how the agent did.

    If Rasa cannot be reached now, the chat is still the bot's: the scheduler asks the survey later
    and the customer's next message resumes Rasa.
    """

    def give_back() -> tuple[str, int | None, list[dict[str, Any]]]:
        with session.begin():
            conversation, survey = handoff.hand_back(session, conversation_id, agent)
            notice = message_json(history(session, conversation)[-1])
            return conversation.sender_id, survey.id if survey is not None else None, [notice]

    sender_id, survey_id, messages = await run_in_threadpool(give_back)
    _publish_messages(hub, conversation_id, messages)
    _publish_queue(hub, conversation_id)
    bot_said: list[dict[str, Any]] = []
    try:
        await rasa.resume(sender_id)
        if survey_id is not None:
            replies = await rasa.trigger_intent(
                sender_id, "EXTERNAL_csat_request", {"csat_survey_id": str(survey_id)}
            )

            def store() -> list[dict[str, Any]]:
                with session.begin():
                    conversation = session.get_one(Conversation, conversation_id)
                    stored = [
                        store_outbound(session, conversation, AuthorKind.BOT, r.text, r.payload())
                        for r in replies
                    ]
                    survey = session.get_one(CsatSurvey, survey_id, populate_existing=True)
                    if survey.status is SurveyStatus.PENDING and not stored:
                        survey.status = SurveyStatus.UNDELIVERABLE
                    return [message_json(m) for m in stored]

            bot_said = await run_in_threadpool(store)
    except KefuError as exc:
        logger.warning("hand-back of conversation %s: Rasa not reached yet (%s)", conversation_id, exc)
    _publish_messages(hub, conversation_id, bot_said)
    return {"conversation_id": conversation_id, "mode": "bot", "bot_messages": bot_said}


# A customer message that only asks for a person says nothing about the problem: suggesting "How do
# I talk to a person?" to the person they reached helps nobody. Short messages naming a person are
# such requests; a longer one ("my voucher fails, can I talk to someone") still describes the problem.
_ASKS_FOR_PERSON = re.compile(
    r"\b(person|people|human|agent|someone|somebody|representative|operator|staff|colleague|"
    r"mensch|mitarbeiter|medewerker|pessoa|atendente)\b|人工|客服",
    re.IGNORECASE,
)
_REQUEST_WORDS = 8
_PROBLEM_MESSAGES = 3  # the customer's latest few messages about the problem, newest first
_HANDOVER_SUBJECT = "Chat handed to a person:"  # bot.crm.handoff's own ticket subject: our words


def _about_the_problem(text: str) -> bool:
    """Whether a customer message describes the problem (not a button press or a request for a person)."""
    words = text.strip()
    if not words or words.startswith("/"):  # a button's payload ("/request_human") or a command
        return False
    return not (_ASKS_FOR_PERSON.search(words) and len(words.split()) <= _REQUEST_WORDS)


def _problem(session: Session, conversation_id: int) -> list[tuple[str, str]]:
    """What to search the knowledge base for, with why: the customer's own words about the problem
    (before the hand-over when there is one, then anything they added since) and the ticket's subject
    when someone wrote one."""
    latest = session.scalars(
        select(Handoff).where(Handoff.conversation_id == conversation_id).order_by(Handoff.id.desc()).limit(1)
    ).first()
    texts = session.scalars(
        select(Message.text)
        .where(Message.conversation_id == conversation_id, Message.author_kind == AuthorKind.CUSTOMER)
        .order_by(Message.id.desc())
        .limit(50)
    ).all()
    queries = [("customer", text) for text in texts if _about_the_problem(text)][:_PROBLEM_MESSAGES]
    ticket = latest.ticket if latest is not None else None
    if ticket is not None and ticket.subject and not ticket.subject.startswith(_HANDOVER_SUBJECT):
        queries.append(("ticket", ticket.subject))
    return queries


def _why(source: str, text: str) -> str:
    if source == "ticket":
        return "from the ticket subject"
    words = " ".join(text.split())
    return f"matches: “{words[:80]}{'…' if len(words) > 80 else ''}”"


@router.get("/conversations/{conversation_id}/suggestions")
async def suggestions(
    conversation_id: RecordId, session: SessionDep, _agent: AnyAgent, live: KbIndexDep
) -> dict[str, Any]:
    """Knowledge-base articles for the customer's problem, each with why it is suggested and the text
    to insert: searched with the customer's latest messages about it and the ticket's subject."""

    def problem() -> list[tuple[str, str]]:
        with session.begin():
            return _problem(session, conversation_id)

    queries = await run_in_threadpool(problem)
    if not queries:
        return {"query": None, "results": []}
    question = queries[0][1]
    if not live.ready:
        return {"query": question, "results": [], "note": "the knowledge base is still loading"}

    def search() -> list[tuple[float, str, str]]:
        best: dict[str, tuple[float, str, str]] = {}
        for source, text in queries:
            for hit in live.search(text[:500], SUGGESTIONS):
                if hit.slug not in best or hit.score > best[hit.slug][0]:
                    best[hit.slug] = (hit.score, hit.slug, _why(source, text))
        return sorted(best.values(), key=lambda found: -found[0])

    hits = await run_in_threadpool(search)

    def load() -> list[dict[str, Any]]:
        with session.begin():
            found = []
            for score, slug, why in hits:
                article = session.scalar(select(KbArticle).where(KbArticle.slug == slug))
                if article is None or article.published_version is None:
                    continue
                version = article.published_version
                found.append(
                    {
                        "slug": slug,
                        "title": version.title,
                        "solution": version.solution,
                        "score": round(score, 3),
                        "why": why,
                    }
                )
                if len(found) == SUGGESTIONS:
                    break
            return found

    return {"query": question, "results": await run_in_threadpool(load)}


# --- live events ------------------------------------------------------------------------------------


def _login_for(factory: sessionmaker[Session], token: str | None) -> int | None:
    """The agent id of a valid console login cookie (and mark them present), else None."""
    with factory.begin() as session:
        found = valid_login(session, token)
        if found is None:
            return None
        found.agent.last_seen_at = utcnow()
        found.last_seen_at = utcnow()
        return found.agent_id


def _same_origin(websocket: WebSocket) -> bool:
    """Browsers send the page's Origin with a WebSocket handshake; only our own pages may connect."""
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    if origin is None or host is None:
        return origin is None  # non-browser clients (tests, tools) send no Origin
    return origin.split("://", 1)[-1] == host


@router.websocket("/live")
async def live(websocket: WebSocket) -> None:
    """Pushes {"type": "message" | "queue" | "ping", ...} to a logged-in console."""
    factory: sessionmaker[Session] = websocket.app.state.sessionmaker
    token = websocket.cookies.get(COOKIE)
    agent_id = await run_in_threadpool(_login_for, factory, token)
    if agent_id is None or not _same_origin(websocket):
        # 4401: the console sends the agent to the login page.
        await websocket.close(code=4401, reason="log in first")
        return
    await websocket.accept()
    hub: LiveHub = websocket.app.state.live
    queue = hub.subscribe()
    receiver = asyncio.create_task(_drain(websocket))
    try:
        await websocket.send_json({"type": "hello", "agent_id": agent_id})
        while not receiver.done():
            try:
                event = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                if await run_in_threadpool(_login_for, factory, token) is None:
                    await websocket.close(code=4401, reason="your login has expired")
                    return
                event = {"type": "ping"}
            if event["type"] == "turn":
                continue  # a bot turn in a chat without a person: not the consoles' business
            await websocket.send_json(event)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unsubscribe(queue)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


async def _drain(websocket: WebSocket) -> None:
    """Reads (and ignores) what the console sends, so a closed socket is noticed at once; a binary
    frame, which the console never sends, closes the socket (1003)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            try:
                await receive_text_frame(websocket)
            except BadFrame as bad:
                await close_for(websocket, bad)
                return
