"""What happens to every customer message, whatever the channel: store it, then bot or person.

A channel (the web chat, Telegram) turns its own input into text and calls `handle_message`. The
message is committed before anything else happens; then Rasa answers it, or it waits for a person
and reaches the agents' consoles at once. Replies are stored in the same way for every channel; a
push channel's replies are stored queued and its outbox sends them (bot/channels/outbox.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session
from starlette.concurrency import run_in_threadpool

from bot.channels import guard
from bot.crm import handoff, sentiment, sla, tickets
from bot.crm.conversations import (
    find_message_by_channel_id,
    get_or_create_conversation,
    last_outbound,
    mark_failed,
    mark_processed,
    replies_after,
    store_inbound,
    store_outbound,
)
from bot.crm.models import (
    AuthorKind,
    Conversation,
    ConversationMode,
    Direction,
    Message,
    MessageStatus,
    utcnow,
)
from bot.crm.orders import parse_contact
from bot.errors import BadRequest, Conflict, KefuError
from bot.live import LiveHub
from bot.rasa_client import BotReply, RasaClient
from bot.settings import Settings

logger = logging.getLogger(__name__)

FALLBACK_TEXT = (
    "Sorry, I can't answer right now. Your message is saved: I'll answer it here as soon as I can, "
    "or a person from our team will."
)
# Characters no person types and no database should store: a lone UTF-16 surrogate (half of a
# pair; it cannot even be encoded as UTF-8), control characters other than tab and line breaks
# (NUL, ESC and the like, which can rewrite an agent's terminal), and Unicode's non-characters.
_INVALID_CHARACTER = re.compile(
    "[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff]"
    + "".join(f"|{chr(plane << 16 | 0xFFFE)}|{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17))
)


def invalid_character(text: str) -> str | None:
    """Why `text` cannot be stored as written (naming the first bad character), or None when it can."""
    found = _INVALID_CHARACTER.search(text)
    if found is None:
        return None
    code = ord(found.group())
    kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a character that is not text"
    return f"{kind} (U+{code:04X}) at position {found.start()}"


def check_customer_text(text: str) -> str:
    """Refuse a message that is not text (400): it is not a customer message, so nothing of it is stored."""
    problem = invalid_character(text)
    if problem is not None:
        raise BadRequest(f"text contains {problem}; remove it and send again")
    return text


# Only for a queued chat with no hand-over record (an old row): no estimate, so no promise of one.
WAITING_FOR_AGENT_TEXT = "Your message is saved, and a person from our team will answer you here."


def message_json(message: Message) -> dict[str, Any]:
    """A stored message as the chat clients and the consoles receive it."""
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
    # Rasa must be resumed before this message: the chat was closed, or handed back while Rasa
    # could not be reached.
    resume_bot: bool = False
    # The message itself sent the chat to a person (strong language): Rasa is paused for it.
    escalated: bool = False
    duplicate: bool = False  # a retry of a message already stored (and already shown to agents)


@dataclass
class Handled:
    """What became of a customer message: the chat's mode after it and the replies it got."""

    conversation_id: int
    mode: str
    inbound: Message
    replies: list[Message]
    duplicate: bool


def accept(
    session: Session,
    settings: Settings,
    channel: str,
    external_id: str,
    text: str,
    channel_message_id: str | None,
) -> Accepted:
    """Store the customer's message (one committed transaction) and decide where it goes."""
    with session.begin():
        if channel_message_id is not None:
            earlier = find_message_by_channel_id(session, channel, channel_message_id)
            if earlier is not None:
                conversation = session.get_one(Conversation, earlier.conversation_id)
                if conversation.external_id != external_id:
                    raise Conflict(
                        "client_message_id was already used by another chat; generate a new random one "
                        "for every message"
                    )
                return Accepted(
                    conversation, earlier, replies=replies_after(session, earlier), duplicate=True
                )

        conversation = get_or_create_conversation(session, channel, external_id)
        reopened = conversation.mode == ConversationMode.CLOSED
        if reopened:
            conversation.mode = ConversationMode.BOT
            conversation.closed_at = None
        resume_bot = reopened or _handed_back_without_bot(session, conversation)
        conversation.updated_at = utcnow()
        inbound = store_inbound(session, conversation, text, channel_message_id)
        tickets.note_customer_message(session, conversation.id, text, settings.ticket_reopen_days)

        if conversation.mode == ConversationMode.BOT:
            if settings.trigger_on("negative_sentiment") and sentiment.is_strongly_negative(
                text, settings.sentiment_handoff_score
            ):
                return _escalate_upset(session, settings, conversation, inbound)
            return Accepted(conversation, inbound, send_to_bot=True, resume_bot=resume_bot)

        # Waiting for or talking with a person: the bot stays quiet; agents see the message.
        mark_processed(session, inbound)
        replies: list[Message] = []
        contact = parse_contact(text) if conversation.mode == ConversationMode.PENDING_AGENT else None
        if (
            contact is not None
            and contact.email
            and handoff.record_contact(session, conversation.id, contact.email)
        ):
            replies.append(
                store_outbound(
                    session,
                    conversation,
                    AuthorKind.SYSTEM,
                    f"Thank you. If nobody can answer here soon, we'll write to {contact.email}.",
                    {"buttons": [], "metadata": {"notice": "contact_saved"}},
                )
            )
        elif conversation.mode == ConversationMode.PENDING_AGENT and _should_announce_agent(
            session, conversation
        ):
            notice = _still_waiting(session, settings, conversation)
            if notice is not None:
                replies.append(
                    store_outbound(
                        session,
                        conversation,
                        AuthorKind.SYSTEM,
                        notice,
                        {"buttons": [], "metadata": {"notice": "waiting_for_agent"}},
                    )
                )
        return Accepted(conversation, inbound, replies=replies)


def _escalate_upset(
    session: Session, settings: Settings, conversation: Conversation, inbound: Message
) -> Accepted:
    """A furious message goes straight to a person, who reads it as it was written."""
    escalation = handoff.escalate(
        session,
        conversation,
        "negative_sentiment",
        policy=sla.load_policy(settings.sla_policy_file),
        minutes_per_chat=settings.handoff_minutes_per_chat,
        actor="customer",
        detail=inbound.text[:500],
    )
    mark_processed(session, inbound)
    notice = store_outbound(
        session,
        conversation,
        AuthorKind.SYSTEM,
        "I'm really sorry this has been so frustrating. I'm bringing in a person from our team, who "
        f"will see everything you've written. {escalation.notice}",
        {"buttons": [], "metadata": {"notice": "waiting_for_agent", "handoff": "negative_sentiment"}},
    )
    return Accepted(conversation, inbound, replies=[notice], escalated=True)


def _handed_back_without_bot(session: Session, conversation: Conversation) -> bool:
    """An agent handed the chat back but the bot never spoke after it (Rasa was away then)."""
    previous = last_outbound(session, conversation)
    return (
        previous is not None and (previous.payload or {}).get("metadata", {}).get("notice") == "handed_back"
    )


def _still_waiting(session: Session, settings: Settings, conversation: Conversation) -> str | None:
    """The queue's current estimate for a customer who writes while waiting (the same words as when
    they joined it, so a 7-hour queue is never "shortly"); None once an agent has claimed the chat."""
    if handoff.open_handoff(session, conversation.id) is None:
        return WAITING_FOR_AGENT_TEXT
    return handoff.still_waiting_notice(
        session,
        conversation.id,
        sla.load_policy(settings.sla_policy_file),
        settings.handoff_minutes_per_chat,
    )


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


def record_late_answer(
    session: Session, message_id: int, replies: list[BotReply]
) -> tuple[str, list[Message]] | None:
    """Store the bot's answer to a message saved while a part was down, after a notice quoting it;
    None when it was settled meanwhile (by the other path, or another gateway). The caller commits."""
    message = session.get(Message, message_id, populate_existing=True)
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


def _saved_before(session: Session, accepted: Accepted) -> list[Message]:
    with session.begin():
        return list(
            session.scalars(
                select(Message)
                .where(
                    Message.conversation_id == accepted.conversation.id,
                    Message.direction == Direction.INBOUND,
                    Message.status == MessageStatus.FAILED,
                    Message.id < accepted.inbound.id,
                )
                .order_by(Message.id)
                .limit(10)
            )
        )


def _store_late_answer(session: Session, message_id: int, replies: list[BotReply]) -> list[Message]:
    with session.begin():
        outcome = record_late_answer(session, message_id, replies)
        return outcome[1] if outcome is not None else []


async def _answer_saved_first(session: Session, rasa: RasaClient, accepted: Accepted) -> list[Message]:
    """Answer, oldest first, what the customer was told was saved, before their new message.

    They were promised an answer "as soon as I can"; their next message is the first moment the
    bot is reachable for this chat, and answering in order keeps the dialogue in order too. If the
    bot is still away, nothing changes: the scheduler's retries go on.
    """
    answered: list[Message] = []
    for message in await run_in_threadpool(_saved_before, session, accepted):
        earlier = Accepted(accepted.conversation, message, send_to_bot=True, resume_bot=accepted.resume_bot)
        try:
            replies = await ask_bot(rasa, earlier, message.text)
        except Exception as exc:
            logger.warning("saved message %s still unanswered: %s", message.id, exc)
            break
        if not replies:
            break
        answered += await run_in_threadpool(_store_late_answer, session, message.id, replies)
    return answered


async def ask_bot(
    rasa: RasaClient, accepted: Accepted, text: str, address: str | None = None
) -> list[BotReply]:
    """Rasa's replies to `text` in the accepted message's conversation; `address` is the client's, for
    the action server's counts of failed proofs (bot/crm/proof.py).

    Everything sent to Rasa goes through here, so the intent guard is never skipped: a message that
    Rasa would read as "/intent{...}" is passed on only when it is a button the bot offered.
    """
    sender_id = accepted.conversation.sender_id
    if accepted.resume_bot:
        try:
            await rasa.resume(sender_id)
        except KefuError as exc:
            # If Rasa is really down, send() below fails too and the customer gets the fallback.
            logger.warning("could not resume Rasa conversation %s: %s", accepted.conversation.id, exc)
    metadata = {
        "channel": accepted.conversation.channel,
        "conversation_id": accepted.conversation.id,
        "message_id": accepted.inbound.id,
    }
    if address:
        metadata["address"] = address
    if guard.looks_like_intent(text):
        # Rasa reads "/intent{...}" as an intent with entities: only a click on a button the bot
        # offered may send one. The pipeline's session has no transaction open here.
        session = object_session(accepted.inbound)
        offered = (
            await run_in_threadpool(
                guard.offered_payloads, session, accepted.conversation.id, accepted.inbound.id
            )
            if session is not None
            else frozenset()
        )
        text = guard.text_for_bot(text, offered, accepted.inbound.text)
    return await rasa.send(sender_id, text, metadata)


def tell_consoles(
    hub: LiveHub, conversation_id: int, mode: str, messages: list[Message], queue: bool
) -> None:
    """Push a chat's new messages to the live listeners, and a queue change when there is one."""
    for message in messages:
        hub.publish({"type": "message", "conversation_id": conversation_id, "message": message_json(message)})
    if queue:
        hub.publish({"type": "queue", "conversation_id": conversation_id, "mode": mode})


async def handle_message(
    session: Session,
    settings: Settings,
    rasa: RasaClient,
    hub: LiveHub,
    channel: str,
    external_id: str,
    text: str,
    channel_message_id: str | None = None,
    bot_text: str | None = None,
    address: str | None = None,
) -> Handled:
    """Store a customer's message, then let the bot answer it (or leave it for a person).

    `text` is what the customer sent, as stored and shown to agents; `bot_text`, when given, is what
    Rasa gets instead (a Telegram command such as /start becomes the greeting intent). `address` is
    the client's address, where the channel has one (the web widget).
    """
    check_customer_text(text)
    try:
        accepted = await run_in_threadpool(
            accept, session, settings, channel, external_id, text, channel_message_id
        )
    except IntegrityError:
        if channel_message_id is None:
            raise
        # A concurrent request with the same channel message id stored it first: answer as its retry.
        accepted = await run_in_threadpool(
            accept, session, settings, channel, external_id, text, channel_message_id
        )

    conversation_id = accepted.conversation.id
    if not accepted.send_to_bot:
        mode = accepted.conversation.mode.value
        # A message in a chat that waits for or has a person, and the notices it got, reach the
        # consoles at once; a duplicate (retry) was already shown.
        if not accepted.duplicate:
            tell_consoles(hub, conversation_id, mode, [accepted.inbound, *accepted.replies], queue=True)
        if accepted.escalated:
            try:
                await rasa.pause(accepted.conversation.sender_id)
            except KefuError as exc:
                # The gateway stops forwarding anyway while a person has the chat.
                logger.warning("could not pause Rasa for conversation %s: %s", conversation_id, exc)
        return Handled(conversation_id, mode, accepted.inbound, accepted.replies, accepted.duplicate)

    # No transaction is open here: the database is never locked while Rasa thinks.
    late = await _answer_saved_first(session, rasa, accepted)
    try:
        replies = await ask_bot(rasa, accepted, bot_text or text, address)
    except Exception as exc:
        if not isinstance(exc, KefuError):
            logger.exception("unexpected error while asking Rasa (conversation %s)", conversation_id)
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
    stored = [*late, *stored]
    if mode != ConversationMode.BOT.value:
        # The bot handed the chat to a person during this turn: the consoles see it queue up.
        tell_consoles(hub, conversation_id, mode, [accepted.inbound, *stored], queue=True)
    else:
        # Only a wake-up for the chat's own live listeners (a widget's socket, the Telegram outbox);
        # the consoles do not follow chats the bot is handling.
        hub.publish({"type": "turn", "conversation_id": conversation_id})
    return Handled(conversation_id, mode, accepted.inbound, stored, False)
