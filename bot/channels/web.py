"""The web chat channel's HTTP API: a visitor sends a message and reads the conversation so far."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.crm import tickets
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
from bot.errors import BadRequest, Conflict, KefuError
from bot.rasa_client import BotReply, RasaClient
from bot.settings import Settings
from bot.web.app import get_app_settings, get_rasa_client, get_session

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
    reopened: bool = False


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
                return Accepted(conversation, earlier, replies=replies_after(session, earlier))

        conversation = get_or_create_conversation(session, CHANNEL, visitor)
        reopened = conversation.mode == ConversationMode.CLOSED
        if reopened:
            conversation.mode = ConversationMode.BOT
            conversation.closed_at = None
        conversation.updated_at = utcnow()
        inbound = store_inbound(session, conversation, text, client_message_id)
        tickets.note_customer_message(session, conversation.id, text, settings.ticket_reopen_days)

        if conversation.mode == ConversationMode.BOT:
            return Accepted(conversation, inbound, send_to_bot=True, reopened=reopened)

        # Waiting for or talking with a person: the bot stays quiet; agents see the message.
        mark_processed(session, inbound)
        replies: list[Message] = []
        if _should_announce_agent(session, conversation):
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
    if accepted.reopened:
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


@router.post("/messages", max_body_size=MAX_BODY_BYTES)
async def post_message(
    body: WebMessageIn,
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

    if not accepted.send_to_bot:
        return _response(
            accepted.conversation.id, accepted.conversation.mode.value, accepted.inbound, accepted.replies
        )

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
    return _response(accepted.conversation.id, mode, accepted.inbound, stored)


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
