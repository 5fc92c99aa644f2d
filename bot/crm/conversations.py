"""Conversations and their messages: find or open a conversation, store what comes in and goes out."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.crm.models import (
    AuthorKind,
    Conversation,
    ConversationMode,
    Direction,
    Message,
    MessageStatus,
)

# Channels whose messages must be pushed to the customer: their outbound messages are stored queued
# and delivered by the channel's outbox. The web chat reads its messages itself.
PUSH_CHANNELS = frozenset({"telegram"})


def find_conversation(session: Session, channel: str, external_id: str) -> Conversation | None:
    """The conversation a channel knows by `external_id`, or None if it has never written."""
    return session.scalars(
        select(Conversation).where(Conversation.channel == channel, Conversation.external_id == external_id)
    ).one_or_none()


def get_or_create_conversation(session: Session, channel: str, external_id: str) -> Conversation:
    """The conversation for (channel, external_id), created in bot mode on first contact."""
    existing = find_conversation(session, channel, external_id)
    if existing is not None:
        return existing
    conversation = Conversation(
        channel=channel,
        external_id=external_id,
        sender_id=secrets.token_hex(16),
        mode=ConversationMode.BOT,
    )
    try:
        # A savepoint, so that losing a race to a concurrent request leaves the caller's
        # transaction usable: the other request's row is then the one to use.
        with session.begin_nested():
            session.add(conversation)
    except IntegrityError:
        existing = find_conversation(session, channel, external_id)
        if existing is None:
            raise
        return existing
    return conversation


def find_message_by_channel_id(session: Session, channel: str, channel_message_id: str) -> Message | None:
    """The message a channel already delivered with this id (how duplicates are recognised)."""
    return session.scalars(
        select(Message).where(Message.channel == channel, Message.channel_message_id == channel_message_id)
    ).one_or_none()


def store_inbound(
    session: Session, conversation: Conversation, text: str, channel_message_id: str | None = None
) -> Message:
    """Store a customer's message as received; it is marked processed or failed once handled."""
    message = Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        channel_message_id=channel_message_id,
        direction=Direction.INBOUND,
        author_kind=AuthorKind.CUSTOMER,
        text=text,
        payload={},
        status=MessageStatus.RECEIVED,
    )
    session.add(message)
    session.flush()
    return message


def store_outbound(
    session: Session,
    conversation: Conversation,
    author_kind: AuthorKind,
    text: str,
    payload: dict[str, Any] | None = None,
    author_agent_id: int | None = None,
) -> Message:
    """Store a message sent to the customer (by the bot, an agent or the system).

    On a push channel it is stored queued, in the same transaction as whatever caused it, so that a
    reply is never lost between being decided and being sent.
    """
    message = Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        direction=Direction.OUTBOUND,
        author_kind=author_kind,
        author_agent_id=author_agent_id,
        text=text,
        payload=payload or {},
        status=MessageStatus.QUEUED if conversation.channel in PUSH_CHANNELS else MessageStatus.SENT,
    )
    session.add(message)
    session.flush()
    return message


def mark_processed(session: Session, message: Message) -> None:
    session.add(message)
    message.status = MessageStatus.PROCESSED
    message.error = None
    session.flush()


def mark_failed(session: Session, message: Message, error: str) -> None:
    """Record why a message could not be handled; it stays visible to agents with its error."""
    session.add(message)
    message.status = MessageStatus.FAILED
    message.error = error
    session.flush()


def history(session: Session, conversation: Conversation) -> list[Message]:
    """Every message of the conversation, oldest first."""
    return list(
        session.scalars(
            select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
        )
    )


def replies_after(session: Session, inbound: Message) -> list[Message]:
    """The outbound messages stored after `inbound` and before the customer's next message."""
    next_inbound_id = session.scalar(
        select(Message.id)
        .where(
            Message.conversation_id == inbound.conversation_id,
            Message.direction == Direction.INBOUND,
            Message.id > inbound.id,
        )
        .order_by(Message.id)
        .limit(1)
    )
    query = select(Message).where(
        Message.conversation_id == inbound.conversation_id,
        Message.direction == Direction.OUTBOUND,
        Message.id > inbound.id,
    )
    if next_inbound_id is not None:
        query = query.where(Message.id < next_inbound_id)
    return list(session.scalars(query.order_by(Message.id)))


def last_outbound(session: Session, conversation: Conversation) -> Message | None:
    return session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation.id, Message.direction == Direction.OUTBOUND)
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
