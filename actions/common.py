"""What every action needs: the action server's settings and database, a unit of work off the event
loop, and the conversation behind a tracker.

The action server is an entry point: it is the one place here that reads the settings (from the
environment, on first use, never at import time). Tests point the actions at their own settings and
database with `configure`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

from rasa_sdk import Tracker
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import proof, sla
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import Conversation
from bot.crm.orders import conversation_by_sender
from bot.settings import Settings, get_settings

T = TypeVar("T")

_lock = threading.Lock()
_settings: Settings | None = None
_engine: Engine | None = None
_sessions: sessionmaker[Session] | None = None


def settings() -> Settings:
    """The action server's settings, read from the environment on first use."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = get_settings()
        return _settings


def sessions() -> sessionmaker[Session]:
    """The action server's session factory, built from `settings()` on first use."""
    global _engine, _sessions
    current = settings()
    with _lock:
        if _sessions is None:
            _engine = make_engine(current)
            _sessions = make_sessionmaker(_engine)
        return _sessions


def configure(new: Settings) -> sessionmaker[Session]:
    """Make the actions use `new` and its database (tests call it); returns the session factory."""
    global _settings, _engine, _sessions
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _settings = new
        _engine = make_engine(new)
        _sessions = make_sessionmaker(_engine)
        return _sessions


def sla_policy() -> sla.SlaPolicy:
    """The service-level policy in the settings' file, read again only when the file changes."""
    return sla.load_policy(settings().sla_policy_file)


async def in_transaction(work: Callable[[Session], T]) -> T:
    """Run `work(session)` in one transaction, in a worker thread so the action server stays responsive."""

    def run() -> T:
        with sessions().begin() as session:
            return work(session)

    return await asyncio.to_thread(run)


def conversation_for(session: Session, tracker: Tracker) -> Conversation:
    """The CRM conversation of this Rasa sender.

    The gateway creates it before a message reaches Rasa; a sender that reached Rasa some other way
    (rasa shell, the REST channel directly) gets one here, so its facts are still recorded.
    """
    conversation = conversation_by_sender(session, tracker.sender_id)
    if conversation is not None:
        proof.expire(session, conversation, settings())  # a proof lasts verification_valid_hours
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
