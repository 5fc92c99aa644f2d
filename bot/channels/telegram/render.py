"""Turning the bot's replies into Telegram messages: text split to Telegram's limit, HTML, keyboards."""

from __future__ import annotations

import html
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit

from bot.crm.models import AuthorKind

TEXT_LIMIT = int(MessageLimit.MAX_TEXT_LENGTH)


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


# Here rather than in the outbox, which claims it, so that rendering needs nothing from the outbox.
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
