"""Answering what could not be answered: customer messages stored while a part was down.

When Rasa, an action server, Redis (Rasa's locks) or the database fails during a turn, the pipeline
keeps the customer's message with status `failed` and gives them a polite reply. The scheduler then
runs `answer_pending` on one gateway at a time:

- once Rasa and the action servers answer their health checks, each conversation's failed messages
  are sent to the bot again, oldest first, and its replies reach the customer like any other (a
  short notice first, quoting what they are an answer to);
- a message still unanswered after `PENDING_RETRY_MINUTES`, or after `MAX_ATTEMPTS` tries, goes to
  the agents' queue (hand-over reason `bot_unavailable`): never dropped in silence;
- a customer who writes again first has the saved messages answered before the new one, in order
  (`pipeline`);
- a message is not replayed once a person has the chat, or once the customer sent the same text
  again and got an answer: it stays in the history.

For an inbound message, `delivery_attempts` and `next_attempt_at` count the tries to have the bot
answer it (for outbound ones they count deliveries to the channel).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased, sessionmaker
from starlette.concurrency import run_in_threadpool

from bot.channels.pipeline import Accepted, ask_bot, record_late_answer, tell_consoles
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
    next_attempt_at: datetime | None

    def due(self, now: datetime) -> bool:
        return self.next_attempt_at is None or self.next_attempt_at <= now


def _answered_again(message: type[Message]) -> object:
    """The customer sent the same text again later in the conversation, and that one was answered.

    Only a repeat supersedes a saved message: a different later question answered meanwhile (small
    talk while the action server was down) leaves the saved one owed an answer, as promised.
    """
    later = aliased(Message)
    return exists().where(
        later.conversation_id == message.conversation_id,
        later.direction == Direction.INBOUND,
        later.id > message.id,
        later.status == MessageStatus.PROCESSED,
        func.lower(func.trim(later.text)) == func.lower(func.trim(message.text)),
    )


def settle_superseded(session: Session) -> int:
    """Failed messages not to replay: a person has the chat now, or the customer asked the same
    again and got an answer. They stay in the history as they are."""
    stale = session.scalars(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.direction == Direction.INBOUND,
            Message.status == MessageStatus.FAILED,
            (Conversation.mode != ConversationMode.BOT) | _answered_again(Message),
        )
        .limit(500)
    ).all()
    for message in stale:
        message.status = MessageStatus.PROCESSED
        message.error = f"{message.error or 'failed'}; not replayed: the conversation moved on"
    return len(stale)


def reclaim_abandoned(session: Session, stored_before: datetime) -> int:
    """Customer messages stored but never answered nor failed: the gateway that took them stopped in
    the middle of the turn (killed, crashed). They wait for an answer like failed ones."""
    abandoned = session.scalars(
        select(Message)
        .where(
            Message.direction == Direction.INBOUND,
            Message.status == MessageStatus.RECEIVED,
            Message.created_at < stored_before,
        )
        .limit(500)
    ).all()
    for message in abandoned:
        message.status = MessageStatus.FAILED
        message.error = "the gateway stopped before answering"
    return len(abandoned)


def waiting_messages(session: Session) -> list[Pending]:
    """The oldest failed message of each bot conversation, due now or waiting out its backoff."""
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
        Pending(m.conversation_id, m.id, m.text, m.created_at, m.delivery_attempts, m.next_attempt_at)
        for m in first_per_conversation.values()
    ][:CONVERSATIONS_PER_RUN]


class PendingAnswers:
    """The scheduler's job: retry failed customer messages, or hand them to a person.

    The scheduler runs it every few seconds while a message waits. A message is retried once the
    bot answers its health checks; one that failed again waits out its backoff, except when the bot
    was just seen down and is back (a part restarted): then everything waiting is answered at once,
    as the customer was promised.
    """

    def __init__(
        self, sessions: sessionmaker[Session], rasa: RasaClient, settings: Settings, hub: LiveHub | None
    ) -> None:
        self.sessions = sessions
        self.rasa = rasa
        self.settings = settings
        self.hub = hub
        self._bot_was_ready = True

    def _abandoned_before(self) -> datetime:
        # No turn lasts this long: the pipeline gives up on Rasa after its timeout and marks it failed.
        return utcnow() - timedelta(seconds=max(30.0, 3 * self.settings.rasa_timeout_seconds))

    def any_waiting(self) -> bool:
        """Whether some customer message waits for an answer (a cheap check, run every few seconds)."""
        with self.sessions() as session:
            failed = Message.status == MessageStatus.FAILED
            abandoned = (Message.status == MessageStatus.RECEIVED) & (
                Message.created_at < self._abandoned_before()
            )
            found = session.scalar(
                select(Message.id).where(Message.direction == Direction.INBOUND, failed | abandoned).limit(1)
            )
            return found is not None

    async def run(self) -> int:
        """Answer (or hand over) what is due; returns how many messages were settled."""
        waiting = await run_in_threadpool(self._waiting)
        if not waiting:
            return 0
        window = timedelta(minutes=self.settings.pending_retry_minutes)
        now = utcnow()
        expired = [
            p for p in waiting if p.due(now) and (p.created_at <= now - window or p.attempts >= MAX_ATTEMPTS)
        ]
        for pending in expired:
            await self._give_up(pending, "no answer in time")
        waiting = [p for p in waiting if p not in expired]
        if not waiting:
            return len(expired)
        ready = await self._bot_ready()
        back_up = ready and not self._bot_was_ready
        self._bot_was_ready = ready
        if not ready:
            return len(expired)
        answered = 0
        for pending in waiting:
            if (back_up or pending.due(now)) and await self._retry(pending):
                answered += 1
        return len(expired) + answered

    def _waiting(self) -> list[Pending]:
        with self.sessions.begin() as session:
            reclaimed = reclaim_abandoned(session, self._abandoned_before())
            if reclaimed:
                logger.warning(
                    "%d customer message(s) left unanswered by a stopped gateway; retrying", reclaimed
                )
            settled = settle_superseded(session)
            if settled:
                logger.info("%d failed message(s) superseded by later ones; not replayed", settled)
            return waiting_messages(session)

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
            return record_late_answer(session, pending.message_id, replies)

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
