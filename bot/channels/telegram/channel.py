"""The bot on Telegram: its life cycle in the gateway (webhook or polling), handlers and webhook route."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from telegram import Update
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.channels import guard
from bot.channels.pipeline import handle_message, message_json
from bot.channels.telegram.outbox import CHANNEL, TelegramOutbox
from bot.channels.telegram.updates import (
    PerChatOrder,
    mark_update_handled,
    remember_update,
    unhandled_updates,
)
from bot.crm.conversations import get_or_create_conversation, mark_processed, store_inbound, store_outbound
from bot.crm.models import AuthorKind, Conversation, ConversationMode, Direction, Message, utcnow
from bot.errors import BadRequest
from bot.live import LiveHub
from bot.rasa_client import RasaClient
from bot.settings import Settings

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query"]

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

TYPING_EVERY_SECONDS = 4.5
# Updates stored but not handled this long ago are handed to the handlers again.
RETRY_UNHANDLED_AFTER = timedelta(minutes=2)


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
                try:
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
                except BadRequest as refused:
                    # Not text (control characters): nothing is stored, and retrying would not help.
                    logger.warning("telegram update %s refused: %s", update.update_id, refused)
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
    # Text, commands and button presses go through the same pipeline as the web chat.

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
