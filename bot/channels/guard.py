"""Keeps customers from speaking Rasa's `/intent{"entity": "value"}` syntax; only the bot's buttons may.

Rasa reads any message that starts with "/" (after trimming whitespace) as an intent with entities,
skipping language understanding: a customer could type `/track_order{"order_number": "100004"}`
or the scheduler's own `/EXTERNAL_csat_request` and steer the dialogue where no sentence would.
So what the gateway sends to Rasa starts with "/" only when it is the payload of a button the
bot offered in its latest reply in this conversation (a click on it), the widget's permanent
"Talk to a person" button, or a Telegram command the gateway itself translated (/start, /agent).
Anything else loses its leading slashes and is read as the words it is.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import AuthorKind, Direction, Message

INTENT_PREFIX = "/"
# The web widget shows "Talk to a person" under every chat, whatever the bot said last
# (bot/web/static/widget/kefu-widget.js, HUMAN_PAYLOAD); the same as typing "I want a person".
ALWAYS_OFFERED = frozenset({"/request_human"})
# Telegram commands and the intent bot/channels/telegram/channel.py sends Rasa for each: the customer's
# stored text is the command, what Rasa gets is the gateway's own translation.
CHANNEL_COMMANDS = {"/start": "/greet", "/agent": "/request_human"}
# How many replies before the latest one still count for buttons that say all they mean.
EARLIER_REPLIES = 5
# What Rasa gets when nothing but slashes was typed.
ONLY_SLASHES = "?"


def offered_payloads(session: Session, conversation_id: int, before_message_id: int) -> frozenset[str]:
    """Payloads of the buttons the customer may click before message `before_message_id`.

    Every button of the bot's latest reply (every bot message since the customer's previous
    message: a reply may be several messages). From the few replies before it, only buttons that
    say all they mean (an intent with its entities: "Report a fault" for order #100012, an article):
    clicking one after typing something else still does what it says. A bare yes or no answers only
    the latest question, so an old "/affirm" cannot confirm something asked earlier.
    """
    with session.begin():
        since = list(
            session.scalars(
                select(Message.id)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.direction == Direction.INBOUND,
                    Message.id < before_message_id,
                )
                .order_by(Message.id.desc())
                .limit(EARLIER_REPLIES + 1)
            )
        )
        latest_from = since[0] if since else 0
        earliest_from = since[-1] if len(since) > EARLIER_REPLIES else 0
        replies = session.execute(
            select(Message.id, Message.payload).where(
                Message.conversation_id == conversation_id,
                Message.direction == Direction.OUTBOUND,
                Message.author_kind == AuthorKind.BOT,
                Message.id > earliest_from,
                Message.id < before_message_id,
            )
        ).all()
        return frozenset(
            str(button["payload"])
            for message_id, payload in replies
            for button in (payload or {}).get("buttons", [])
            if isinstance(button, dict)
            and button.get("payload")
            and (message_id > latest_from or _self_contained(str(button["payload"])))
        )


def _self_contained(payload: str) -> bool:
    """Whether a button payload carries what it is about (`/intent{"entity": ...}`), not just yes/no."""
    return payload.startswith(INTENT_PREFIX) and "{" in payload


def looks_like_intent(text: str) -> bool:
    """Whether Rasa would read `text` as an intent (it trims whitespace first)."""
    return text.strip().startswith(INTENT_PREFIX)


def without_leading_slashes(text: str) -> str:
    """The text with every leading slash (and the whitespace around them) removed."""
    cleaned = text.strip()
    while cleaned.startswith(INTENT_PREFIX):
        cleaned = cleaned[len(INTENT_PREFIX) :].strip()
    return cleaned or ONLY_SLASHES


def text_for_bot(text: str, offered: Iterable[str], customer_text: str | None = None) -> str:
    """What Rasa may be sent for `text`: unchanged unless it would be read as an intent nobody offered.

    `offered` holds the payloads of the buttons the customer could click (`offered_payloads`);
    `customer_text` is what the customer sent as stored, when the channel translated it (Telegram's
    /start is sent to Rasa as /greet).
    """
    if not looks_like_intent(text):
        return text
    candidate = text.strip()
    if candidate in ALWAYS_OFFERED or candidate in set(offered):
        return candidate
    if customer_text is not None and CHANNEL_COMMANDS.get(customer_text.strip()) == candidate:
        return candidate
    return without_leading_slashes(text)
