"""The Telegram channel: python-telegram-bot inside the gateway (webhook or polling) and its outbox.

Inbound: every update is stored (`telegram_updates`) before it is acknowledged or handled, so an
update Telegram resends is handled once, and one stored during a crash is still handled. Text,
commands and button presses go through the same pipeline as the web chat.

Outbound: every message for a Telegram chat (the bot's replies, agents' replies, notices, surveys
the scheduler sends) is stored queued, and `TelegramOutbox` sends each once, in order per chat,
waiting out Telegram's flood limits and network trouble rather than dropping anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import logging
import random
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatAction, MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.channels import guard
from bot.channels.pipeline import handle_message, message_json
from bot.crm.conversations import get_or_create_conversation, mark_processed, store_inbound, store_outbound
from bot.crm.models import (
    Agent,
    AuthorKind,
    Conversation,
    ConversationMode,
    Direction,
    Message,
    MessageStatus,
    TelegramUpdate,
    utcnow,
)
from bot.rasa_client import RasaClient
from bot.settings import Settings
from bot.web.live import LiveHub

logger = logging.getLogger(__name__)

CHANNEL = "telegram"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query"]
TEXT_LIMIT = int(MessageLimit.MAX_TEXT_LENGTH)

HELP_TEXT = (
    "I'm Kefu, the shop's assistant. Just write to me as you would to a person, for example:\n"
    "• where is my order 100001?\n"
    "• how do I return something?\n"
    "• I want to make a complaint\n"
    "• what's the status of ticket KF-000123?\n"
    "Send /agent at any time to talk to a person from our team."
)
UNKNOWN_COMMAND_TEXT = "I don't know that command. Send /help to see what I can do, or just write to me."
NOT_TEXT_TEXT = (
    "I can only read text messages for now. Please describe it in words, and if a person needs to "
    "see a photo or a document, ask for one with /agent."
)
EXPIRED_BUTTON_TEXT = "That button has expired; please type your answer instead."

# Outbox timing: quick retries inside one attempt, then the message waits and another pass (or
# another gateway, or this one after a restart) tries again. A claim is a lease, so a message
# whose sender died is picked up again once the lease runs out.
QUICK_TRIES = 4
LEASE = timedelta(minutes=2)
POLL_SECONDS = 2.0
LONGEST_WAIT = timedelta(minutes=10)
TYPING_EVERY_SECONDS = 4.5
# Updates stored but not handled this long ago are handed to the handlers again.
RETRY_UNHANDLED_AFTER = timedelta(minutes=2)


# --- Storing updates ---------------------------------------------------------------------------


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


# --- Rendering ---------------------------------------------------------------------------------


def utf16_length(text: str) -> int:
    """Telegram counts text in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """Cut `text` into pieces of at most `limit` UTF-16 units, at a line break or a space if any."""
    pieces: list[str] = []
    rest = text
    while utf16_length(rest) > limit:
        units = 0
        end = 0
        for end, char in enumerate(rest):  # noqa: B007 (end is used after the loop)
            units += 2 if ord(char) > 0xFFFF else 1
            if units > limit:
                break
        window = rest[:end]
        cut = max(window.rfind("\n"), window.rfind(" "))
        if cut <= 0:
            cut = end
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not pieces:
        pieces.append(rest)
    return pieces


@dataclass(frozen=True)
class Outgoing:
    """A claimed outbound message, detached from its session."""

    message_id: int
    chat_id: int
    text: str
    author: AuthorKind
    agent_name: str | None
    buttons: list[dict[str, str]]
    parts_sent: int


def render(item: Outgoing) -> list[str]:
    """The message as Telegram HTML parts, each within Telegram's limit once its tags are parsed."""
    if item.author == AuthorKind.AGENT:
        label = f"{item.agent_name or 'Support agent'} (support team)"
        pieces = split_text(item.text or " ", TEXT_LIMIT - utf16_length(label) - 1)
        first, *rest = (html.escape(piece, quote=False) for piece in pieces)
        return [f"<b>{html.escape(label, quote=False)}</b>\n{first}", *rest]
    pieces = split_text(item.text or " ", TEXT_LIMIT)
    if item.author == AuthorKind.SYSTEM:
        return [f"<i>{html.escape(piece, quote=False)}</i>" for piece in pieces]
    return [html.escape(piece, quote=False) for piece in pieces]


def keyboard(item: Outgoing) -> InlineKeyboardMarkup | None:
    """The bot's buttons as an inline keyboard; a press names the stored message and the button."""
    if not item.buttons:
        return None
    buttons = [
        InlineKeyboardButton(
            button.get("title") or button.get("payload", "?"), callback_data=f"b:{item.message_id}:{i}"
        )
        for i, button in enumerate(item.buttons)
    ]
    per_row = 3 if all(len(b.text) <= 12 for b in buttons) else 1
    return InlineKeyboardMarkup([buttons[i : i + per_row] for i in range(0, len(buttons), per_row)])


def retry_after_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB 22 warns while it moves from int to timedelta
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# --- The outbox --------------------------------------------------------------------------------


class DeliveryPostponed(Exception):
    """Telegram could not be reached (or kept asking us to wait): try this message again later."""


class DeliveryRefused(Exception):
    """Telegram refused the message for good (the customer blocked the bot, the chat is gone)."""


class TelegramOutbox:
    """Sends queued Telegram messages, each once, in order per chat, from any gateway."""

    def __init__(self, sessions: sessionmaker[Session], hub: LiveHub, send: Callable[..., Awaitable[Any]]):
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


# --- Inbound -----------------------------------------------------------------------------------


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


class TelegramChannel:
    """The bot on Telegram: receives updates (webhook or polling) and runs the outbox."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], rasa: RasaClient, hub: LiveHub
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.rasa = rasa
        self.hub = hub
        self.webhook = settings.telegram_mode == "webhook"
        builder = (
            Application.builder()
            .token(settings.telegram_bot_token)
            .base_url(settings.telegram_api_url)
            .concurrent_updates(PerChatOrder(64))
            .connect_timeout(10)
            .read_timeout(15)
            .write_timeout(15)
        )
        if self.webhook:
            builder = builder.updater(None)  # updates arrive on the gateway's own route
        self.application = builder.build()
        self.outbox = TelegramOutbox(sessions, hub, self.application.bot.send_message)
        self.ready = False
        self.username: str | None = None
        self._starter: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._retrying: set[int] = set()
        self._add_handlers()

    def _add_handlers(self) -> None:
        app = self.application
        if not self.webhook:
            # Polled updates are stored here, before any handler; the webhook route stores its own.
            app.add_handler(TypeHandler(Update, self.remember_polled), group=-1)
        private = filters.ChatType.PRIVATE
        app.add_handler(CommandHandler("start", self.start_command, filters=private))
        app.add_handler(CommandHandler("help", self.help_command, filters=private))
        app.add_handler(CommandHandler("agent", self.agent_command, filters=private))
        app.add_handler(MessageHandler(private & filters.COMMAND, self.unknown_command))
        app.add_handler(MessageHandler(private & filters.TEXT, self.text_message))
        app.add_handler(MessageHandler(private & ~filters.TEXT, self.other_message))
        app.add_handler(CallbackQueryHandler(self.button_pressed))
        app.add_error_handler(self.on_error)

    # Life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background: the gateway serves the web while Telegram is unreachable."""
        self._starter = asyncio.create_task(self._connect(), name="telegram-connect")

    async def _connect(self) -> None:
        delay = 1.0
        while True:
            try:
                await self.application.initialize()
                break
            except TelegramError as exc:
                logger.warning("cannot reach Telegram's Bot API (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        await self.application.start()
        self.username = self.application.bot.username
        if self.webhook:
            await self.application.bot.set_webhook(
                url=self.settings.telegram_webhook_url,
                secret_token=self.settings.telegram_webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            )
        elif self.settings.telegram_receive:
            assert self.application.updater is not None
            await self.application.updater.start_polling(allowed_updates=ALLOWED_UPDATES, timeout=20)
        self.outbox.start()
        self._sweeper = asyncio.create_task(self._retry_unhandled(), name="telegram-sweeper")
        self.ready = True
        logger.info("Telegram connected as @%s (%s)", self.username, self.settings.telegram_mode)

    async def stop(self) -> None:
        for task in (self._starter, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.outbox.stop()
        if self.ready:
            if self.application.updater is not None and self.application.updater.running:
                await self.application.updater.stop()
            await self.application.stop()
            await self.application.shutdown()
        self.ready = False

    async def _retry_unhandled(self) -> None:
        """Hand stored updates that no handler finished (a crash, the database away) to the handlers."""
        first = True
        while True:
            received_before = utcnow() if first else utcnow() - RETRY_UNHANDLED_AFTER
            first = False
            try:
                payloads = await run_in_threadpool(self._unhandled, received_before)
                for payload in payloads:
                    item = Update.de_json(payload, self.application.bot)
                    self._retrying.add(item.update_id)
                    await self.application.update_queue.put(item)
            except Exception:
                logger.exception("could not re-read unhandled Telegram updates")
            await asyncio.sleep(RETRY_UNHANDLED_AFTER.total_seconds() / 2)

    def _unhandled(self, received_before: datetime) -> list[dict[str, Any]]:
        with self.sessions() as session:
            return unhandled_updates(session, received_before)

    # Receiving ------------------------------------------------------------------------------

    def _remember(self, update_id: int, payload: dict[str, Any]) -> bool:
        with self.sessions() as session:
            return remember_update(session, update_id, payload)

    async def receive_webhook(self, payload: dict[str, Any]) -> None:
        """Store a posted update, then queue it for the handlers (a resent one is dropped)."""
        item = Update.de_json(payload, self.application.bot)
        if not await run_in_threadpool(self._remember, item.update_id, payload):
            logger.info("Telegram resent update %s; it was handled already", item.update_id)
            return
        if self.ready:
            await self.application.update_queue.put(item)
        # Otherwise the sweep picks it up once Telegram is connected.

    async def remember_polled(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """Store a polled update before it is handled; stop a duplicate here."""
        if update.update_id in self._retrying:
            return
        if not await run_in_threadpool(self._remember, update.update_id, update.to_dict()):
            raise ApplicationHandlerStop

    async def _done(self, update: Update) -> None:
        self._retrying.discard(update.update_id)

        def mark() -> None:
            with self.sessions() as session:
                mark_update_handled(session, update.update_id)

        await run_in_threadpool(mark)

    @contextlib.asynccontextmanager
    async def _typing(self, chat_id: int) -> AsyncIterator[None]:
        """Show "typing…" in the chat (it lasts ~5 s on Telegram, so it is repeated) while we work."""

        async def keep_typing() -> None:
            while True:
                with contextlib.suppress(TelegramError):
                    await self.application.bot.send_chat_action(chat_id, ChatAction.TYPING)
                await asyncio.sleep(TYPING_EVERY_SECONDS)

        task = asyncio.create_task(keep_typing())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _to_pipeline(self, update: Update, text: str, bot_text: str | None = None) -> None:
        chat = update.effective_chat
        assert chat is not None
        async with self._typing(chat.id):
            with self.sessions() as session:
                await handle_message(
                    session,
                    self.settings,
                    self.rasa,
                    self.hub,
                    CHANNEL,
                    str(chat.id),
                    text,
                    channel_message_id=str(update.update_id),
                    bot_text=bot_text,
                )
        await self._done(update)

    async def _answer_directly(self, update: Update, received: str, answer: str) -> None:
        """Store what came in and a fixed answer (help, an unknown command, a photo)."""
        chat = update.effective_chat
        assert chat is not None

        def store() -> tuple[int, str, list[Message]]:
            with self.sessions() as session, session.begin():
                conversation = get_or_create_conversation(session, CHANNEL, str(chat.id))
                try:
                    with session.begin_nested():
                        inbound = store_inbound(session, conversation, received, str(update.update_id))
                except IntegrityError:
                    return conversation.id, conversation.mode.value, []  # handled before
                mark_processed(session, inbound)
                reply = store_outbound(
                    session, conversation, AuthorKind.SYSTEM, answer, {"buttons": [], "metadata": {}}
                )
                conversation.updated_at = utcnow()
                return conversation.id, conversation.mode.value, [inbound, reply]

        conversation_id, mode, stored = await run_in_threadpool(store)
        if stored:
            if mode != ConversationMode.BOT.value:
                for message in stored:
                    self.hub.publish(
                        {
                            "type": "message",
                            "conversation_id": conversation_id,
                            "message": message_json(message),
                        }
                    )
            else:
                self.hub.publish({"type": "turn", "conversation_id": conversation_id})
        await self._done(update)

    # Handlers -------------------------------------------------------------------------------

    async def start_command(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """/start: the customer opened the chat; the bot greets them."""
        await self._to_pipeline(update, "/start", bot_text=guard.CHANNEL_COMMANDS["/start"])

    async def help_command(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """/help: what the assistant can do."""
        await self._answer_directly(update, "/help", HELP_TEXT)

    async def agent_command(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """/agent: the customer asks for a person."""
        await self._to_pipeline(update, "/agent", bot_text=guard.CHANNEL_COMMANDS["/agent"])

    async def unknown_command(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """Any other command; customers' commands never reach Rasa as intents."""
        message = update.effective_message
        assert message is not None
        await self._answer_directly(update, message.text or "", UNKNOWN_COMMAND_TEXT)

    async def text_message(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """A customer's text: the bot answers it, or the agent sees it."""
        message = update.effective_message
        assert message is not None and message.text is not None
        # Rasa reads "/intent{...}" as an intent with its entities; a customer's text never is one.
        # (Telegram marks most such text as a command, handled above; this covers the rest.)
        text = message.text.strip().lstrip("/") or message.text
        await self._to_pipeline(update, message.text, bot_text=text)

    async def other_message(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """A photo, sticker, voice note...: kept as a record, and the customer is told what works."""
        message = update.effective_message
        assert message is not None
        kind = next(
            (
                name
                for name in ("photo", "document", "sticker", "voice", "video", "audio", "location", "contact")
                if getattr(message, name, None)
            ),
            "attachment",
        )
        await self._answer_directly(update, f"[{kind}]", NOT_TEXT_TEXT)

    async def button_pressed(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """A press on one of the bot's buttons: the button's title is what the customer 'said'."""
        query = update.callback_query
        assert query is not None
        chat = update.effective_chat
        button = await run_in_threadpool(self._find_button, chat.id if chat else None, query.data or "")
        if button is None:
            with contextlib.suppress(TelegramError):
                await query.answer(EXPIRED_BUTTON_TEXT)
            await self._done(update)
            return
        with contextlib.suppress(TelegramError):
            await query.answer()
        with contextlib.suppress(TelegramError):
            # One press per question: the buttons go once one is used.
            await query.edit_message_reply_markup(reply_markup=None)
        title = button.get("title") or button.get("payload", "")
        await self._to_pipeline(update, title, bot_text=button.get("payload") or title)

    def _find_button(self, chat_id: int | None, data: str) -> dict[str, str] | None:
        """The button a callback names, if it belongs to a message sent to this very chat."""
        kind, _, rest = data.partition(":")
        message_id, _, index = rest.partition(":")
        if kind != "b" or chat_id is None or not message_id.isdigit() or not index.isdigit():
            return None
        with self.sessions() as session:
            message = session.get(Message, int(message_id))
            if message is None or message.direction != Direction.OUTBOUND:
                return None
            conversation = session.get_one(Conversation, message.conversation_id)
            if conversation.channel != CHANNEL or conversation.external_id != str(chat_id):
                return None
            buttons = (message.payload or {}).get("buttons", [])
            return buttons[int(index)] if int(index) < len(buttons) else None

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log a handler's failure; its update stays unhandled and is tried again later."""
        update_id = update.update_id if isinstance(update, Update) else None
        logger.error("Telegram update %s failed", update_id, exc_info=context.error)


router = APIRouter(tags=["telegram"])


@router.post(WEBHOOK_PATH, include_in_schema=False)
async def telegram_webhook(request: Request) -> Response:
    """Telegram posts updates here (webhook mode); the secret header proves it is Telegram."""
    channel: TelegramChannel | None = getattr(request.app.state, "telegram", None)
    if channel is None or not channel.webhook:
        return Response(status_code=404)
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), channel.settings.telegram_webhook_secret.encode()):
        return Response(status_code=401)
    try:
        payload = await request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
            raise ValueError("no update_id")
    except ValueError:
        return Response("not a Telegram update", status_code=400)
    await channel.receive_webhook(payload)
    return Response(status_code=200)
