"""What every action needs: a unit of work off the event loop, and the conversation behind a tracker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from rasa_sdk import Tracker
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.crm.db import get_sessionmaker
from bot.crm.models import Conversation
from bot.crm.orders import conversation_by_sender

T = TypeVar("T")


async def in_transaction(work: Callable[[Session], T]) -> T:
    """Run `work(session)` in one transaction, in a worker thread so the action server stays responsive."""

    def run() -> T:
        with get_sessionmaker().begin() as session:
            return work(session)

    return await asyncio.to_thread(run)


def conversation_for(session: Session, tracker: Tracker) -> Conversation:
    """The CRM conversation of this Rasa sender.

    The gateway creates it before a message reaches Rasa; a sender that reached Rasa some other way
    (rasa shell, the REST channel directly) gets one here, so its facts are still recorded.
    """
    conversation = conversation_by_sender(session, tracker.sender_id)
    if conversation is not None:
        return conversation
    channel = tracker.get_latest_input_channel() or "rasa"
    conversation = Conversation(
        channel=f"rasa-{channel}"[:32], external_id=tracker.sender_id, sender_id=tracker.sender_id
    )
    try:
        with session.begin_nested():
            session.add(conversation)
    except IntegrityError:
        found = conversation_by_sender(session, tracker.sender_id)
        assert found is not None
        return found
    return conversation


def latest_message_id(tracker: Tracker) -> int | None:
    """The gateway's id of the customer message being answered (sent to Rasa as metadata)."""
    metadata = tracker.latest_message.get("metadata") or {}
    value = metadata.get("message_id")
    return value if isinstance(value, int) else None
