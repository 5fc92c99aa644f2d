"""The durable outbox: every queued Telegram message sent once, in order per chat, retried until it is."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import random
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from telegram import InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.channels.telegram.render import Outgoing, keyboard, render
from bot.crm.models import Agent, Conversation, Direction, Message, MessageStatus, utcnow
from bot.live import LiveHub

logger = logging.getLogger(__name__)

CHANNEL = "telegram"

# Every message for a Telegram chat (the bot's replies, agents' replies, notices, surveys the
# scheduler sends) is stored queued first, so none is lost to Telegram's flood limits, network
# trouble or a restart: it waits its turn instead of being dropped.
#
# Timing: quick retries inside one attempt, then the message waits and another pass (or another
# gateway, or this one after a restart) tries again. A claim is a lease, so a message whose sender
# died is picked up again once the lease runs out.
QUICK_TRIES = 4
LEASE = timedelta(minutes=2)
POLL_SECONDS = 2.0
LONGEST_WAIT = timedelta(minutes=10)


def retry_after_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB 22 warns while it moves from int to timedelta
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class DeliveryPostponed(Exception):
    """Telegram could not be reached (or kept asking us to wait): try this message again later."""


class DeliveryRefused(Exception):
    """Telegram refused the message for good (the customer blocked the bot, the chat is gone)."""


class TelegramOutbox:
    """Sends queued Telegram messages, each once, in order per chat, from any gateway."""

    def __init__(
        self, sessions: sessionmaker[Session], hub: LiveHub, send: Callable[..., Awaitable[Any]]
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._send = send  # Bot.send_message
        self._task: asyncio.Task[None] | None = None
        self._busy: set[int] = set()
        self._workers: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="telegram-outbox")

    async def stop(self) -> None:
        for task in [self._task, *self._workers]:
            if task is not None:
                task.cancel()
        for task in [self._task, *self._workers]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _loop(self) -> None:
        events = self._hub.subscribe()
        try:
            while True:
                try:
                    await self.deliver_due()
                except Exception:
                    logger.exception("the Telegram outbox pass failed; trying again shortly")
                with contextlib.suppress(TimeoutError):
                    # Any chat activity may have queued a message; otherwise look every few seconds
                    # (the scheduler and other gateways queue messages too).
                    await asyncio.wait_for(events.get(), POLL_SECONDS)
                    while not events.empty():
                        events.get_nowait()
        finally:
            self._hub.unsubscribe(events)

    async def deliver_due(self) -> None:
        """Start a sender for every chat with a message waiting (one sender per chat at a time)."""
        for conversation_id in await run_in_threadpool(self._chats_waiting):
            if conversation_id in self._busy:
                continue
            self._busy.add(conversation_id)
            task = asyncio.create_task(self._serve(conversation_id))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def drain(self, timeout: float = 30.0) -> None:
        """Deliver everything due now and wait for it (tests, benchmarks and shutdown)."""
        await self.deliver_due()
        if self._workers:
            await asyncio.wait(list(self._workers), timeout=timeout)

    def _chats_waiting(self) -> list[int]:
        with self._sessions.begin() as session:
            return list(
                session.scalars(
                    select(Message.conversation_id)
                    .where(
                        Message.channel == CHANNEL,
                        Message.status.in_([MessageStatus.QUEUED, MessageStatus.SENDING]),
                    )
                    .distinct()
                )
            )

    async def _serve(self, conversation_id: int) -> None:
        try:
            while True:
                item = await run_in_threadpool(self._claim_next, conversation_id)
                if item is None:
                    return
                try:
                    await self._deliver(item)
                except DeliveryPostponed as exc:
                    await run_in_threadpool(self._postpone, item.message_id, str(exc))
                    return  # later messages of this chat wait: the order is kept
                except DeliveryRefused as exc:
                    logger.warning("Telegram refused message %s for good: %s", item.message_id, exc)
                    await run_in_threadpool(self._finish, item.message_id, MessageStatus.FAILED, str(exc))
                else:
                    await run_in_threadpool(self._finish, item.message_id, MessageStatus.SENT, None)
        except Exception:
            logger.exception(
                "Telegram delivery for conversation %s stopped; it resumes shortly", conversation_id
            )
        finally:
            self._busy.discard(conversation_id)

    def _claim_next(self, conversation_id: int) -> Outgoing | None:
        """Take the chat's oldest undelivered message if it is due; None if none or not yet due."""
        now = utcnow()
        with self._sessions.begin() as session:
            head = session.scalars(
                select(Message)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.direction == Direction.OUTBOUND,
                    Message.status.in_([MessageStatus.QUEUED, MessageStatus.SENDING]),
                )
                .order_by(Message.id)
                .limit(1)
            ).first()
            if head is None or (head.next_attempt_at is not None and head.next_attempt_at > now):
                return None  # waiting for its next try, or another sender holds its lease
            due = Message.next_attempt_at.is_(None) | (Message.next_attempt_at <= now)
            # Compare-and-set: of several gateways, exactly one takes the message.
            claimed = session.execute(
                update(Message)
                .where(Message.id == head.id, Message.status == head.status, due)
                .values(status=MessageStatus.SENDING, next_attempt_at=now + LEASE)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            conversation = session.get_one(Conversation, conversation_id)
            agent = session.get(Agent, head.author_agent_id) if head.author_agent_id else None
            payload = head.payload or {}
            return Outgoing(
                message_id=head.id,
                chat_id=int(conversation.external_id),
                text=head.text,
                author=head.author_kind,
                agent_name=agent.name.split()[0] if agent else None,
                buttons=list(payload.get("buttons", [])),
                parts_sent=int(payload.get("telegram_parts_sent", 0)),
            )

    async def _deliver(self, item: Outgoing) -> None:
        parts = render(item)
        markup = keyboard(item)
        for index in range(item.parts_sent, len(parts)):
            last = index == len(parts) - 1
            await self._send_part(item.chat_id, parts[index], markup if last else None)
            if not last:
                # A long message sent in parts continues after the last part sent, never repeats one.
                await run_in_threadpool(self._record_part, item.message_id, index + 1)

    async def _send_part(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None) -> None:
        plain = False
        for attempt in range(QUICK_TRIES):
            try:
                await self._send(
                    chat_id=chat_id,
                    text=html.unescape(text) if plain else text,
                    parse_mode=None if plain else ParseMode.HTML,
                    reply_markup=markup,
                )
                return
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if wait > LEASE.total_seconds() / 2:
                    raise DeliveryPostponed(f"Telegram asked to wait {wait:.0f} s") from exc
                await asyncio.sleep(wait)
            except BadRequest as exc:
                if "parse entities" in exc.message.lower() and not plain:
                    # Our markup was refused: the words matter more than the bold type.
                    logger.error("Telegram refused our HTML (%s); sending as plain text", exc.message)
                    plain = True
                    continue
                raise DeliveryRefused(exc.message) from exc
            except Forbidden as exc:
                raise DeliveryRefused(exc.message) from exc
            except (NetworkError, TelegramError) as exc:  # timeouts, 5xx, connection refused
                if attempt == QUICK_TRIES - 1:
                    raise DeliveryPostponed(str(exc)) from exc
                await asyncio.sleep(min(8.0, 0.5 * 2**attempt) * (0.5 + random.random()))
        raise DeliveryPostponed("Telegram kept asking us to wait")

    def _record_part(self, message_id: int, parts_sent: int) -> None:
        with self._sessions.begin() as session:
            message = session.get_one(Message, message_id)
            message.payload = {**(message.payload or {}), "telegram_parts_sent": parts_sent}
            message.next_attempt_at = utcnow() + LEASE

    def _postpone(self, message_id: int, error: str) -> None:
        with self._sessions.begin() as session:
            message = session.get_one(Message, message_id)
            message.delivery_attempts += 1
            wait = min(LONGEST_WAIT, timedelta(seconds=5 * 2 ** min(message.delivery_attempts, 10)))
            message.status = MessageStatus.QUEUED
            message.next_attempt_at = utcnow() + wait
            message.error = error
        logger.warning("Telegram message %s postponed (%s); next try in %s", message_id, error, wait)

    def _finish(self, message_id: int, status: MessageStatus, error: str | None) -> None:
        with self._sessions.begin() as session:
            message = session.get_one(Message, message_id)
            message.status = status
            message.delivery_attempts += 1
            message.next_attempt_at = None
            message.error = error
            if status == MessageStatus.SENT:
                message.delivered_at = utcnow()
