"""Inbound updates before the handlers: each stored once (Telegram resends them), each chat's in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import BaseUpdateProcessor

from bot.crm.models import TelegramUpdate, utcnow

# Every update is stored before it is acknowledged or handled, so an update Telegram resends is
# handled once, and one stored during a crash is still handled.


def remember_update(session: Session, update_id: int, payload: dict[str, Any]) -> bool:
    """Store an update as received; False when it was already stored (Telegram resent it)."""
    try:
        with session.begin():
            session.add(TelegramUpdate(update_id=update_id, payload=payload))
    except IntegrityError:
        return False
    return True


def mark_update_handled(session: Session, update_id: int) -> None:
    with session.begin():
        session.execute(
            update(TelegramUpdate).where(TelegramUpdate.update_id == update_id).values(handled_at=utcnow())
        )


def unhandled_updates(session: Session, received_before: datetime) -> list[dict[str, Any]]:
    """Updates stored before `received_before` that no handler finished, oldest first."""
    with session.begin():
        return [
            row.payload
            for row in session.scalars(
                select(TelegramUpdate)
                .where(TelegramUpdate.handled_at.is_(None), TelegramUpdate.received_at < received_before)
                .order_by(TelegramUpdate.update_id)
            )
        ]


class PerChatOrder(BaseUpdateProcessor):
    """Handles updates of different chats at the same time, and each chat's updates in order."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        # A lock per chat with updates in hand, and how many of them hold or wait for it.
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        lock, users = self._locks.get(chat.id, (asyncio.Lock(), 0))
        self._locks[chat.id] = (lock, users + 1)
        try:
            async with lock:
                await coroutine
        finally:
            lock, users = self._locks[chat.id]
            if users == 1:
                del self._locks[chat.id]
            else:
                self._locks[chat.id] = (lock, users - 1)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""
