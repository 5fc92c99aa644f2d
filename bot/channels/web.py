"""The web chat channel's HTTP API: a visitor sends a message and reads the conversation so far."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.crm import handoff, sentiment, sla, tickets
from bot.crm.conversations import (
    find_conversation,
    find_message_by_channel_id,
    get_or_create_conversation,
    history,
    last_outbound,
    mark_failed,
    mark_processed,
    replies_after,
    store_inbound,
    store_outbound,
)
from bot.crm.models import AuthorKind, Conversation, ConversationMode, Message, utcnow
from bot.crm.orders import parse_contact
from bot.errors import BadRequest, Conflict, KefuError
from bot.rasa_client import BotReply, RasaClient
from bot.settings import Settings
from bot.web.app import get_app_settings, get_rasa_client, get_session
from bot.web.live import LiveHub

logger = logging.getLogger(__name__)

CHANNEL = "web"
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
MAX_ID_CHARS = 128
# Generous for 2,000 characters even when every one is a JSON-escaped surrogate pair.
MAX_BODY_BYTES = 64 * 1024

FALLBACK_TEXT = (
    "Sorry, I can't answer right now. Your message is saved and our team can see it. "
    "Please try again in a minute."
)
WAITING_FOR_AGENT_TEXT = "A person from our team will reply here shortly."

router = APIRouter(prefix="/api/web", tags=["web channel"])


class WebMessageIn(BaseModel):
    """What the chat page posts: the visitor id it keeps, the text, and an optional id for retries."""

    session: str = Field(description="The visitor id the page generated: 1-128 of A-Z a-z 0-9 _ -")
    text: str = Field(description="The customer's message; at most max_message_chars after trimming")
    client_message_id: str | None = Field(
        default=None, description="Unique per message; a retry with the same id is answered, not re-sent"
    )


def check_id(value: str, name: str) -> str:
    """Refuse an id that is empty, too long or has characters outside [A-Za-z0-9_-]."""
    if not value:
        raise BadRequest(f"{name} is empty: send the id the chat page generated")
    if len(value) > MAX_ID_CHARS:
        raise BadRequest(f"{name} is {len(value)} characters; the limit is {MAX_ID_CHARS}")
    if not _ID_PATTERN.fullmatch(value):
        raise BadRequest(f"{name} may contain only letters, digits, '-' and '_'")
    return value


def check_text(value: str, limit: int) -> str:
    """The message text, trimmed; refuse it when empty or longer than `limit` characters."""
    text = value.strip()
    if not text:
        raise BadRequest("text is empty: type a message")
    if len(text) > limit:
        raise BadRequest(f"text is {len(text)} characters; the limit is {limit}")
    if "\x00" in text:
        raise BadRequest("text contains a NUL character (\\u0000); remove it and send again")
    return text


def message_json(message: Message) -> dict[str, Any]:
    payload = message.payload or {}
    return {
        "id": message.id,
        "author": message.author_kind.value,
        "text": message.text,
        "buttons": payload.get("buttons", []),
        "metadata": payload.get("metadata", {}),
        "created_at": message.created_at.isoformat(),
    }


@dataclass
class Accepted:
    """The outcome of storing an inbound message (step a), before any call to Rasa."""

    conversation: Conversation
    inbound: Message
    # Messages to return now: a duplicate's earlier replies, or the waiting-for-agent notice.
    replies: list[Message] = field(default_factory=list)
    send_to_bot: bool = False
    # Rasa must be resumed before this message: the chat was closed, or handed back while Rasa
    # could not be reached.
    resume_bot: bool = False
    # The message itself sent the chat to a person (strong language): Rasa is paused for it.
    escalated: bool = False
    duplicate: bool = False  # a retry of a message already stored (and already shown to agents)


def _accept(
    session: Session, settings: Settings, visitor: str, text: str, client_message_id: str | None
) -> Accepted:
    """Store the customer's message (one committed transaction) and decide where it goes."""
    with session.begin():
        if client_message_id is not None:
            earlier = find_message_by_channel_id(session, CHANNEL, client_message_id)
            if earlier is not None:
                conversation = session.get_one(Conversation, earlier.conversation_id)
                if conversation.external_id != visitor:
                    raise Conflict(
                        "client_message_id was already used by another chat; generate a new random one "
                        "for every message"
                    )
                return Accepted(
                    conversation, earlier, replies=replies_after(session, earlier), duplicate=True
                )

        conversation = get_or_create_conversation(session, CHANNEL, visitor)
        reopened = conversation.mode == ConversationMode.CLOSED
        if reopened:
            conversation.mode = ConversationMode.BOT
            conversation.closed_at = None
        resume_bot = reopened or _handed_back_without_bot(session, conversation)
        conversation.updated_at = utcnow()
        inbound = store_inbound(session, conversation, text, client_message_id)
        tickets.note_customer_message(session, conversation.id, text, settings.ticket_reopen_days)

        if conversation.mode == ConversationMode.BOT:
            if settings.trigger_on("negative_sentiment") and sentiment.is_strongly_negative(
                text, settings.sentiment_handoff_score
            ):
                return _escalate_upset(session, settings, conversation, inbound)
            return Accepted(conversation, inbound, send_to_bot=True, resume_bot=resume_bot)

        # Waiting for or talking with a person: the bot stays quiet; agents see the message.
        mark_processed(session, inbound)
        replies: list[Message] = []
        contact = parse_contact(text) if conversation.mode == ConversationMode.PENDING_AGENT else None
        if (
            contact is not None
            and contact.email
            and handoff.record_contact(session, conversation.id, contact.email)
        ):
            replies.append(
                store_outbound(
                    session,
                    conversation,
                    AuthorKind.SYSTEM,
                    f"Thank you. If nobody can answer here soon, we'll write to {contact.email}.",
                    {"buttons": [], "metadata": {"notice": "contact_saved"}},
                )
            )
        elif _should_announce_agent(session, conversation):
            replies.append(
                store_outbound(
                    session,
                    conversation,
                    AuthorKind.SYSTEM,
                    WAITING_FOR_AGENT_TEXT,
                    {"buttons": [], "metadata": {"notice": "waiting_for_agent"}},
                )
            )
        return Accepted(conversation, inbound, replies=replies)


def _escalate_upset(
    session: Session, settings: Settings, conversation: Conversation, inbound: Message
) -> Accepted:
    """A furious message goes straight to a person, who reads it as it was written."""
    escalation = handoff.escalate(
        session,
        conversation,
        "negative_sentiment",
        policy=sla.load_policy(settings.sla_policy_file),
        minutes_per_chat=settings.handoff_minutes_per_chat,
        actor="customer",
        detail=inbound.text[:500],
    )
    mark_processed(session, inbound)
    notice = store_outbound(
        session,
        conversation,
        AuthorKind.SYSTEM,
        "I'm really sorry this has been so frustrating. I'm bringing in a person from our team, who "
        f"will see everything you've written. {escalation.notice}",
        {"buttons": [], "metadata": {"notice": "waiting_for_agent", "handoff": "negative_sentiment"}},
    )
    return Accepted(conversation, inbound, replies=[notice], escalated=True)


def _handed_back_without_bot(session: Session, conversation: Conversation) -> bool:
    """An agent handed the chat back but the bot never spoke after it (Rasa was away then)."""
    previous = last_outbound(session, conversation)
    return (
        previous is not None and (previous.payload or {}).get("metadata", {}).get("notice") == "handed_back"
    )


def _should_announce_agent(session: Session, conversation: Conversation) -> bool:
    """Say "a person will reply" once per wait: not again, and not once an agent is talking."""
    previous = last_outbound(session, conversation)
    if previous is None:
        return True
    if previous.author_kind == AuthorKind.AGENT:
        return False
    return (previous.payload or {}).get("metadata", {}).get("notice") != "waiting_for_agent"


def _record_replies(
    session: Session, accepted: Accepted, replies: list[BotReply]
) -> tuple[str, list[Message]]:
    with session.begin():
        # Re-read: an action (escalation) may have changed the mode while Rasa was answering.
        conversation = session.get_one(Conversation, accepted.conversation.id, populate_existing=True)
        stored = [
            store_outbound(session, conversation, AuthorKind.BOT, reply.text, reply.payload())
            for reply in replies
        ]
        mark_processed(session, accepted.inbound)
        conversation.updated_at = utcnow()
        return conversation.mode.value, stored


def _record_failure(session: Session, accepted: Accepted, error: str) -> tuple[str, list[Message]]:
    with session.begin():
        conversation = session.get_one(Conversation, accepted.conversation.id, populate_existing=True)
        mark_failed(session, accepted.inbound, error)
        fallback = store_outbound(
            session,
            conversation,
            AuthorKind.SYSTEM,
            FALLBACK_TEXT,
            {"buttons": [], "metadata": {"notice": "bot_unavailable"}},
        )
        return conversation.mode.value, [fallback]


async def _ask_bot(rasa: RasaClient, accepted: Accepted, text: str) -> list[BotReply]:
    sender_id = accepted.conversation.sender_id
    if accepted.resume_bot:
        try:
            await rasa.resume(sender_id)
        except KefuError as exc:
            # If Rasa is really down, send() below fails too and the customer gets the fallback.
            logger.warning("could not resume Rasa conversation %s: %s", accepted.conversation.id, exc)
    metadata = {
        "channel": CHANNEL,
        "conversation_id": accepted.conversation.id,
        "message_id": accepted.inbound.id,
    }
    return await rasa.send(sender_id, text, metadata)


def _response(conversation_id: int, mode: str, inbound: Message, messages: list[Message]) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "mode": mode,
        "message_id": inbound.id,
        "messages": [message_json(message) for message in messages],
    }


def _tell_consoles(
    hub: LiveHub, conversation_id: int, mode: str, messages: list[Message], queue: bool
) -> None:
    """Push a chat's new messages to the agents' consoles, and a queue change when there is one."""
    for message in messages:
        hub.publish({"type": "message", "conversation_id": conversation_id, "message": message_json(message)})
    if queue:
        hub.publish({"type": "queue", "conversation_id": conversation_id, "mode": mode})


@router.post("/messages", max_body_size=MAX_BODY_BYTES)
async def post_message(
    body: WebMessageIn,
    request: Request,
    session: Annotated[Session, Depends(get_session)],
    settings: Annotated[Settings, Depends(get_app_settings)],
    rasa: Annotated[RasaClient, Depends(get_rasa_client)],
) -> dict[str, Any]:
    """Store a visitor's message, then let the bot answer it (or leave it for a person)."""
    visitor = check_id(body.session, "session")
    text = check_text(body.text, settings.max_message_chars)
    client_message_id = (
        check_id(body.client_message_id, "client_message_id") if body.client_message_id is not None else None
    )

    try:
        accepted = await run_in_threadpool(_accept, session, settings, visitor, text, client_message_id)
    except IntegrityError:
        if client_message_id is None:
            raise
        # A concurrent request with the same client_message_id stored it first: answer as its retry.
        accepted = await run_in_threadpool(_accept, session, settings, visitor, text, client_message_id)

    hub: LiveHub = request.app.state.live
    conversation_id = accepted.conversation.id
    if not accepted.send_to_bot:
        mode = accepted.conversation.mode.value
        # A message in a chat that waits for or has a person, and the notices it got, reach the
        # consoles at once; a duplicate (retry) was already shown.
        if not accepted.duplicate:
            _tell_consoles(hub, conversation_id, mode, [accepted.inbound, *accepted.replies], queue=True)
        if accepted.escalated:
            try:
                await rasa.pause(accepted.conversation.sender_id)
            except KefuError as exc:
                # The gateway stops forwarding anyway while a person has the chat.
                logger.warning("could not pause Rasa for conversation %s: %s", conversation_id, exc)
        return _response(conversation_id, mode, accepted.inbound, accepted.replies)

    # No transaction is open here: the database is never locked while Rasa thinks.
    try:
        replies = await _ask_bot(rasa, accepted, text)
    except Exception as exc:
        if not isinstance(exc, KefuError):
            logger.exception("unexpected error while asking Rasa (conversation %s)", accepted.conversation.id)
        mode, stored = await run_in_threadpool(
            _record_failure, session, accepted, str(exc) or type(exc).__name__
        )
    else:
        if replies:
            mode, stored = await run_in_threadpool(_record_replies, session, accepted, replies)
        else:
            # Every turn of ours says something; silence means a custom action failed inside Rasa
            # (typically the action server is down), so the customer gets the polite fallback.
            mode, stored = await run_in_threadpool(
                _record_failure, session, accepted, "Rasa sent no reply; is the action server up?"
            )
    if mode != ConversationMode.BOT.value:
        # The bot handed the chat to a person during this turn: the consoles see it queue up.
        _tell_consoles(hub, conversation_id, mode, [accepted.inbound, *stored], queue=True)
    return _response(conversation_id, mode, accepted.inbound, stored)


def _load_history(session: Session, visitor: str) -> dict[str, Any]:
    with session.begin():
        conversation = find_conversation(session, CHANNEL, visitor)
        if conversation is None:
            return {"conversation_id": None, "mode": ConversationMode.BOT.value, "messages": []}
        return {
            "conversation_id": conversation.id,
            "mode": conversation.mode.value,
            "messages": [message_json(message) for message in history(session, conversation)],
        }


@router.get("/history")
def get_history(
    session_id: Annotated[str, Query(alias="session", description="The visitor id")],
    session: Annotated[Session, Depends(get_session)],
) -> dict[str, Any]:
    """The visitor's conversation so far, oldest first; an unknown visitor has none yet."""
    return _load_history(session, check_id(session_id, "session"))
