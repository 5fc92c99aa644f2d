"""Answering what could not be answered: customer messages stored while a part was down.

When Rasa, an action server, Redis (Rasa's locks) or the database fails during a turn, the pipeline
keeps the customer's message with status `failed` and gives them a polite reply. The scheduler then
runs `answer_pending` on one gateway at a time:

- once Rasa and the action servers answer their health checks, each conversation's failed messages
  are sent to the bot again, oldest first, and its replies reach the customer like any other (a
  short notice first, quoting what they are an answer to);
- a message still unanswered after `PENDING_RETRY_MINUTES`, or after `MAX_ATTEMPTS` tries, goes to
  the agents' queue (hand-over reason `bot_unavailable`): never dropped in silence;
- a message the customer has since moved on from (they wrote again and got an answer, or a person
  took the chat) is not replayed: answering it now would only confuse; it stays in the history.

For an inbound message, `delivery_attempts` and `next_attempt_at` count the tries to have the bot
answer it (for outbound ones they count deliveries to the channel).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased, sessionmaker
from starlette.concurrency import run_in_threadpool

from bot.channels.pipeline import Accepted, ask_bot, tell_consoles
from bot.crm import handoff, sla
from bot.crm.conversations import store_outbound
from bot.crm.models import (
    AuthorKind,
    Conversation,
    ConversationMode,
    Direction,
    Message,
    MessageStatus,
    utcnow,
)
from bot.errors import KefuError
from bot.live import LiveHub
from bot.rasa_client import BotReply, RasaClient
from bot.settings import Settings

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_SECONDS = (5, 10, 20, 40, 60, 120, 300)
CONVERSATIONS_PER_RUN = 25
GIVE_UP_TEXT = (
    "I'm sorry, I still can't answer this myself, so I've passed your message to a person from our "
    "team. {notice}"
)


@dataclass(frozen=True)
class Pending:
    conversation_id: int
    message_id: int
    text: str
    created_at: datetime
    attempts: int


def _later_answered(message: type[Message]) -> object:
    """A later customer message of the same conversation was handled (answered or seen by a person)."""
    later = aliased(Message)
    return exists().where(
        later.conversation_id == message.conversation_id,
        later.direction == Direction.INBOUND,
        later.id > message.id,
        later.status == MessageStatus.PROCESSED,
    )


def settle_superseded(session: Session) -> int:
    """Failed messages the conversation has moved on from: kept as they are, never replayed."""
    stale = session.scalars(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.direction == Direction.INBOUND,
            Message.status == MessageStatus.FAILED,
            (Conversation.mode != ConversationMode.BOT) | _later_answered(Message),
        )
        .limit(500)
    ).all()
    for message in stale:
        message.status = MessageStatus.PROCESSED
        message.error = f"{message.error or 'failed'}; not replayed: the conversation moved on"
    return len(stale)


def due_messages(session: Session, now: datetime) -> list[Pending]:
    """The oldest failed message of each bot conversation whose next try is due."""
    rows = session.scalars(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.direction == Direction.INBOUND,
            Message.status == MessageStatus.FAILED,
            Conversation.mode == ConversationMode.BOT,
        )
        .order_by(Message.id)
        .limit(CONVERSATIONS_PER_RUN * 4)
    ).all()
    first_per_conversation: dict[int, Message] = {}
    for message in rows:
        first_per_conversation.setdefault(message.conversation_id, message)
    return [
        Pending(m.conversation_id, m.id, m.text, m.created_at, m.delivery_attempts)
        for m in first_per_conversation.values()
        if m.next_attempt_at is None or m.next_attempt_at <= now
    ][:CONVERSATIONS_PER_RUN]


class PendingAnswers:
    """The scheduler's job: retry failed customer messages, or hand them to a person."""

    def __init__(
        self, sessions: sessionmaker[Session], rasa: RasaClient, settings: Settings, hub: LiveHub | None
    ) -> None:
        self.sessions = sessions
        self.rasa = rasa
        self.settings = settings
        self.hub = hub

    async def run(self) -> int:
        """Answer (or hand over) what is due; returns how many messages were settled."""
        due = await run_in_threadpool(self._due)
        if not due:
            return 0
        window = timedelta(minutes=self.settings.pending_retry_minutes)
        now = utcnow()
        expired = [p for p in due if p.created_at <= now - window or p.attempts >= MAX_ATTEMPTS]
        for pending in expired:
            await self._give_up(pending, "no answer in time")
        waiting = [p for p in due if p not in expired]
        if not waiting or not await self._bot_ready():
            return len(expired)
        answered = 0
        for pending in waiting:
            if await self._retry(pending):
                answered += 1
        return len(expired) + answered

    def _due(self) -> list[Pending]:
        with self.sessions.begin() as session:
            settled = settle_superseded(session)
            if settled:
                logger.info("%d failed message(s) superseded by later ones; not replayed", settled)
            return due_messages(session, utcnow())

    async def _bot_ready(self) -> bool:
        status = await self.rasa.status()
        return bool(status["ok"]) and await self.rasa.action_server_ok()

    async def _retry(self, pending: Pending) -> bool:
        conversation, inbound = await run_in_threadpool(self._load, pending)
        if conversation is None or inbound is None:
            return False
        accepted = Accepted(conversation, inbound, send_to_bot=True)
        try:
            replies = await ask_bot(self.rasa, accepted, inbound.text)
            if not replies:
                raise KefuError("Rasa sent no reply; is the action server up?")
        except Exception as exc:
            error = str(exc) or type(exc).__name__
            logger.warning("message %s still unanswered: %s", pending.message_id, error)
            await run_in_threadpool(self._failed_again, pending, error)
            return False
        outcome = await run_in_threadpool(self._store_answer, pending, replies)
        if outcome is not None and self.hub is not None:
            mode, stored = outcome
            if mode == ConversationMode.BOT.value:
                self.hub.publish({"type": "turn", "conversation_id": pending.conversation_id})
            else:
                tell_consoles(self.hub, pending.conversation_id, mode, stored, queue=True)
        logger.info("answered message %s after %d failed tries", pending.message_id, pending.attempts + 1)
        return outcome is not None

    def _load(self, pending: Pending) -> tuple[Conversation | None, Message | None]:
        with self.sessions.begin() as session:
            message = session.get(Message, pending.message_id)
            if message is None or message.status != MessageStatus.FAILED:
                return None, None  # settled meanwhile (another gateway, or the conversation moved on)
            return session.get_one(Conversation, message.conversation_id), message

    def _failed_again(self, pending: Pending, error: str) -> None:
        with self.sessions.begin() as session:
            message = session.get(Message, pending.message_id)
            if message is None or message.status != MessageStatus.FAILED:
                return
            message.delivery_attempts += 1
            message.error = error
            delay = BACKOFF_SECONDS[min(message.delivery_attempts - 1, len(BACKOFF_SECONDS) - 1)]
            message.next_attempt_at = utcnow() + timedelta(seconds=delay)

    def _store_answer(self, pending: Pending, replies: list[BotReply]) -> tuple[str, list[Message]] | None:
        with self.sessions.begin() as session:
            message = session.get(Message, pending.message_id, populate_existing=True)
            if message is None or message.status != MessageStatus.FAILED:
                return None
            conversation = session.get_one(Conversation, message.conversation_id, populate_existing=True)
            quoted = message.text if len(message.text) <= 80 else message.text[:77] + "..."
            stored = [
                store_outbound(
                    session,
                    conversation,
                    AuthorKind.SYSTEM,
                    f"Sorry for the wait. About your message \u201c{quoted}\u201d:",
                    {"buttons": [], "metadata": {"notice": "late_answer", "message_id": message.id}},
                )
            ]
            stored += [
                store_outbound(session, conversation, AuthorKind.BOT, reply.text, reply.payload())
                for reply in replies
            ]
            message.status = MessageStatus.PROCESSED
            message.delivery_attempts += 1
            message.error = f"answered late, after: {message.error}"
            conversation.updated_at = utcnow()
            return conversation.mode.value, stored

    async def _give_up(self, pending: Pending, why: str) -> None:
        stored = await run_in_threadpool(self._hand_over, pending, why)
        if stored and self.hub is not None:
            pending_agent = ConversationMode.PENDING_AGENT.value
            tell_consoles(self.hub, pending.conversation_id, pending_agent, stored, queue=True)

    def _hand_over(self, pending: Pending, why: str) -> list[Message]:
        with self.sessions.begin() as session:
            message = session.get(Message, pending.message_id)
            if message is None or message.status != MessageStatus.FAILED:
                return []
            conversation = session.get_one(Conversation, message.conversation_id)
            # Every failed message of the chat is now the agents' to read.
            for other in session.scalars(
                select(Message).where(
                    Message.conversation_id == conversation.id,
                    Message.direction == Direction.INBOUND,
                    Message.status == MessageStatus.FAILED,
                )
            ):
                other.status = MessageStatus.PROCESSED
                other.error = f"{other.error or 'failed'}; handed to agents ({why})"
            escalation = handoff.escalate(
                session,
                conversation,
                "bot_unavailable",
                policy=sla.load_policy(self.settings.sla_policy_file),
                minutes_per_chat=self.settings.handoff_minutes_per_chat,
                actor="system",
                detail=f"message {message.id} unanswered: {why}",
            )
            notice = store_outbound(
                session,
                conversation,
                AuthorKind.SYSTEM,
                GIVE_UP_TEXT.format(notice=escalation.notice),
                {"buttons": [], "metadata": {"notice": "waiting_for_agent", "handoff": "bot_unavailable"}},
            )
            logger.warning("message %s handed to agents: %s", message.id, why)
            return [notice]
