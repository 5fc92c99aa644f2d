"""Whether the bot resolved a conversation: one honest verdict per chat, computed from stored rows.

"Not handed to a person" is not the same as "resolved": a chat whose only reply was "That's outside
what I can help with" was not resolved by anyone. Each conversation gets exactly one of:

- handed: it went to a person (a `handoffs` row), whatever else happened;
- confirmed: the customer said so, or the bot finished what was asked. The chat's own latest rating
  of 4-5, an article the customer said helped ("Did this solve it?" -> yes, `kb_feedback`), a
  completed flow: a reply tagged with an outcome in `COMPLETED` (order status given, orders listed,
  ticket status given, order cancelled) or a ticket opened from the chat (complaint, refund,
  delivery; not the hand-over's own ticket nor a low rating's follow-up);
- not_resolved: the chat's own latest rating of 1-2 (this beats a completed flow: the customer's
  word counts over ours), or the bot's last substantive reply was a fallback ("no answer", "out of
  scope", "sorry that didn't help") or an article the customer said did not help, or the bot never
  answered at all;
- assumed: the bot's last substantive reply was an answer (an article or a flow's reply) and the
  chat has been quiet for `QUIET` (24 h) since its last message;
- pending: like assumed, but the quiet period has not passed yet. Pending chats are left out of the
  rates until they settle.

Precedence, first match wins: handed > rating (4-5 confirmed, 1-2 not resolved) > confirmed >
not_resolved > assumed > pending. Ratings here are those of the chat (no ticket): a rating of a
ticket's later resolution rates the team's work, not the chat.

A bot reply is substantive when it is an answer or a fallback; greetings, "you're welcome" and
questions asked inside a form are neither. Actions tag their replies in the message metadata
(`kb_article` for an article, `outcome` for the rest); replies stored before the tags existed are
recognised as fallbacks by their opening words (`FALLBACK_OPENINGS`).

A conversation's topic is what the bot first did about it: the first article shown (its first tag,
else its slug), the first ticket opened (its category) or the first completed flow; a chat with none
of those takes its first fallback's kind ("no answer", "out of scope"), else "other".
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Text, case, cast, func, literal, select
from sqlalchemy.orm import Session

from bot.crm.models import (
    AuthorKind,
    Conversation,
    CsatSurvey,
    Handoff,
    KbArticle,
    KbArticleVersion,
    KbFeedback,
    Message,
    SurveyStatus,
    Ticket,
)

HANDED = "handed"
CONFIRMED = "confirmed"
NOT_RESOLVED = "not_resolved"
ASSUMED = "assumed"
PENDING = "pending"
# In the order the dashboard shows them; pending is counted but left out of the rates.
CATEGORIES: tuple[str, ...] = (CONFIRMED, ASSUMED, NOT_RESOLVED, HANDED)
LABELS = {
    CONFIRMED: "confirmed",
    ASSUMED: "assumed",
    NOT_RESOLVED: "not resolved",
    HANDED: "handed to a person",
    PENDING: "pending",
}
QUIET = timedelta(hours=24)

# `outcome` tags actions put in a reply's metadata. Completed flows confirm a resolution.
ORDER_STATUS = "order_status"
ORDERS_LISTED = "orders_listed"
TICKET_STATUS = "ticket_status"
ORDER_CANCELLED = "order_cancelled"
COMPLETED = frozenset({ORDER_STATUS, ORDERS_LISTED, TICKET_STATUS, ORDER_CANCELLED})
# An answer that finishes nothing by itself (a refund refused, an order too late to cancel).
ANSWERED = "answered"
# Fallbacks: the bot could not help.
NO_ANSWER = "no_answer"
OUT_OF_SCOPE = "out_of_scope"
NOT_HELPED = "not_helped"
FALLBACKS = frozenset({NO_ANSWER, OUT_OF_SCOPE, NOT_HELPED})
# The opening words of the fallback replies (actions/knowledge.py), for replies stored untagged.
FALLBACK_OPENINGS: dict[str, str] = {
    "That's outside what I can help with": OUT_OF_SCOPE,
    "I'm sorry, I don't have an answer to that yet": NO_ANSWER,
    "I don't have an answer to that one yet": NO_ANSWER,
    "I'm sorry, I can't help with that either": NO_ANSWER,
    "I'm sorry that didn't help": NOT_HELPED,
}
# Tickets that are not a flow the bot completed: the hand-over's own, a low rating's follow-up.
NOT_A_FLOW_TICKET = ("conversation", "csat_follow_up")

# Why a chat is not resolved, for the lists of unanswered and unhelpful topics.
REASON_NO_ANSWER = "no answer"
REASON_OUT_OF_SCOPE = "out of scope"
REASON_UNHELPFUL = "did not help"
REASON_BAD_RATING = "rated 1-2"
REASON_SILENT = "never answered"
UNANSWERED_REASONS = (REASON_NO_ANSWER, REASON_OUT_OF_SCOPE, REASON_SILENT)
UNHELPFUL_REASONS = (REASON_UNHELPFUL, REASON_BAD_RATING)
_FALLBACK_REASON = {
    NO_ANSWER: REASON_NO_ANSWER,
    OUT_OF_SCOPE: REASON_OUT_OF_SCOPE,
    NOT_HELPED: REASON_UNHELPFUL,
}
_TOPIC_OF_FLOW = {
    ORDER_STATUS: "order status",
    ORDERS_LISTED: "order status",
    TICKET_STATUS: "ticket status",
    ORDER_CANCELLED: "cancellation",
}

# What one bot reply was, for the verdict.
REPLY_ANSWER = "answer"
REPLY_COMPLETED = "completed"
REPLY_FALLBACK = "fallback"


class Reply(NamedTuple):
    """A substantive bot reply: an answer, a completed flow or a fallback (`what` names which)."""

    message_id: int
    kind: str  # REPLY_ANSWER, REPLY_COMPLETED or REPLY_FALLBACK
    what: str  # the article's topic, the outcome tag or the fallback tag


@dataclass(slots=True)
class ChatRecord:
    """What the verdict needs to know about one conversation, read from its rows. Only what can
    matter is kept: the last substantive reply, the first of each kind, the latest rating."""

    conversation_id: int
    # The UTC day it started, as the caller asked for it (`load_chats`).
    day: Any
    # The chat's last message, when it is recent enough to matter (None: older than QUIET).
    last_message_at: datetime | None = None
    last_reply: Reply | None = None
    first_answer: Reply | None = None
    first_completed: Reply | None = None
    first_fallback: Reply | None = None
    handed: bool = False
    # The category of the first ticket one of the chat's flows opened.
    flow_ticket: str | None = None
    # The chat's own latest rating, 1-5.
    rating: int | None = None
    # "Did this solve it?": yes to any article, and the messages of the articles that got a no.
    helped: bool = False
    unhelpful: tuple[int | None, ...] = ()

    def add(self, reply: Reply) -> None:
        """Note a substantive reply; replies come oldest first."""
        self.last_reply = reply
        if reply.kind == REPLY_ANSWER and self.first_answer is None and reply.what:
            self.first_answer = reply
        elif reply.kind == REPLY_COMPLETED and self.first_completed is None:
            self.first_completed = reply
        elif reply.kind == REPLY_FALLBACK and self.first_fallback is None:
            self.first_fallback = reply


class Verdict(NamedTuple):
    conversation_id: int
    category: str
    topic: str
    reason: str | None = None  # why it is not resolved (REASON_*), else None
    # The customer message before this reply shows what went wrong (`example_for`); None: the
    # chat's first customer message does.
    example_before: int | None = None


def classify(chat: ChatRecord, now: datetime) -> Verdict:
    """The one category of `chat` as of `now` (see the module docstring for the rules)."""
    cid, topic, last = chat.conversation_id, _topic(chat), chat.last_reply
    if chat.handed:
        return Verdict(cid, HANDED, topic)
    rating = chat.rating
    if rating is not None and rating >= 4:
        return Verdict(cid, CONFIRMED, topic)
    if rating is not None and rating <= 2:
        return Verdict(cid, NOT_RESOLVED, topic, REASON_BAD_RATING, last.message_id if last else None)
    if chat.flow_ticket is not None or chat.helped or chat.first_completed is not None:
        return Verdict(cid, CONFIRMED, topic)
    if last is None:
        return Verdict(cid, NOT_RESOLVED, topic, REASON_SILENT)
    if last.kind == REPLY_FALLBACK:
        return Verdict(cid, NOT_RESOLVED, topic, _FALLBACK_REASON[last.what], last.message_id)
    if last.message_id in chat.unhelpful:
        return Verdict(cid, NOT_RESOLVED, topic, REASON_UNHELPFUL, last.message_id)
    quiet = chat.last_message_at is None or now - chat.last_message_at >= QUIET
    return Verdict(cid, ASSUMED if quiet else PENDING, topic)


def _topic(chat: ChatRecord) -> str:
    if chat.flow_ticket is not None:
        return chat.flow_ticket
    answer, done = chat.first_answer, chat.first_completed
    if answer is not None and (done is None or answer.message_id < done.message_id):
        return answer.what
    if done is not None:
        return _TOPIC_OF_FLOW.get(done.what) or done.what.replace("_", " ")
    if chat.first_fallback is not None:
        return _FALLBACK_REASON[chat.first_fallback.what]
    return "other"


def reply_kind(metadata: dict[str, Any] | None, text: str) -> tuple[str, str] | None:
    """(kind, what) of one bot reply, or None when it is not substantive."""
    metadata = metadata or {}
    outcome = metadata.get("outcome")
    if outcome in FALLBACKS:
        return REPLY_FALLBACK, str(outcome)
    if outcome in COMPLETED:
        return REPLY_COMPLETED, str(outcome)
    if metadata.get("kb_article"):
        return REPLY_ANSWER, str(metadata["kb_article"])
    if outcome == ANSWERED:
        return REPLY_ANSWER, ""
    for opening, tag in FALLBACK_OPENINGS.items():
        if text.startswith(opening):
            return REPLY_FALLBACK, tag
    return None


# --- reading the rows ---------------------------------------------------------------------------


def _fallback_opening(column: Any) -> ColumnElement[Any]:
    """The fallback tag of an untagged reply, matched by the database on its opening words."""
    # None of the openings holds % or _, so LIKE needs no escaping.
    whens = [(column.like(opening + "%"), literal(tag)) for opening, tag in FALLBACK_OPENINGS.items()]
    return case(*whens, else_=None)


def load_chats(
    session: Session, which: ColumnElement[bool], now: datetime, day: ColumnElement[Any] | None = None
) -> list[ChatRecord]:
    """See `_load_chats`; the cyclic garbage collector waits meanwhile. The records hold no cycles,
    but making tens of thousands of them sets off collections that scan them all again and again:
    a third of the time over a year of chats, measured."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load_chats(session, which, now, day)
    finally:
        if enabled:
            gc.enable()


def _load_chats(
    session: Session, which: ColumnElement[bool], now: datetime, day: ColumnElement[Any] | None
) -> list[ChatRecord]:
    """A record per conversation matching `which` (a condition on `Conversation`), oldest first;
    `day` is how its day is read (the start time unless given: the dashboard asks for a string).

    One query per table, and only the rows that matter: the bot's substantive replies (tags read
    and fallback openings matched by the database), each chat's last message time, its hand-overs,
    flow tickets, ratings and "Did this solve it?" answers. The customers' words are read later,
    for the few examples shown (`example_for`). Core rows, not ORM ones: a year is 10,000+ chats.
    """
    db = session.connection()
    chosen = select(Conversation.id).where(which).scalar_subquery()
    started = Conversation.created_at if day is None else day
    chats = {
        cid: ChatRecord(cid, started_on)
        for cid, started_on in db.execute(
            select(Conversation.id, started).where(which).order_by(Conversation.id)
        )
    }
    if not chats:
        return []
    # Only a chat with a message in the last QUIET can still be pending: the others' last message
    # time does not change their verdict, so it is read for these few only.
    for cid, last_at in db.execute(
        select(Message.conversation_id, func.max(Message.created_at))
        .where(Message.conversation_id.in_(chosen), Message.created_at >= now - QUIET)
        .group_by(Message.conversation_id)
    ):
        chats[cid].last_message_at = last_at
    article_topics = _article_topics(session)

    metadata = Message.payload["metadata"]
    outcome, article = metadata["outcome"].as_string(), metadata["kb_article"].as_string()
    opening = _fallback_opening(Message.text)
    tagged = cast(Message.payload, Text)
    rows = db.execute(
        select(Message.conversation_id, Message.id, outcome, article, opening)
        .where(
            Message.conversation_id.in_(chosen),
            Message.author_kind == AuthorKind.BOT,
            # Words before JSON: reading the JSON of every reply costs twice the whole query.
            tagged.like('%"outcome"%') | tagged.like('%"kb_article"%') | opening.is_not(None),
        )
        .order_by(Message.id)
    )
    for cid, message_id, tag, slug, fallback in rows.all():
        # reply_kind's rules, spelt out for the columns: this loop sees every reply of the range.
        if tag in FALLBACKS or tag in COMPLETED:
            reply = Reply(message_id, REPLY_FALLBACK if tag in FALLBACKS else REPLY_COMPLETED, tag)
        elif slug:
            reply = Reply(message_id, REPLY_ANSWER, article_topics.get(slug, slug))
        elif tag == ANSWERED:
            reply = Reply(message_id, REPLY_ANSWER, "")
        elif fallback:
            reply = Reply(message_id, REPLY_FALLBACK, fallback)
        else:
            continue
        chats[cid].add(reply)

    for (cid,) in db.execute(select(Handoff.conversation_id).where(Handoff.conversation_id.in_(chosen))):
        chats[cid].handed = True
    for cid, category in db.execute(
        select(Ticket.conversation_id, Ticket.category)
        .where(Ticket.conversation_id.in_(chosen), Ticket.kind.not_in(NOT_A_FLOW_TICKET))
        .order_by(Ticket.id.desc())  # the first ticket is written last
    ):
        chats[cid].flow_ticket = category.replace("_", " ")
    for cid, score in db.execute(
        select(CsatSurvey.conversation_id, CsatSurvey.score)
        .where(
            CsatSurvey.conversation_id.in_(chosen),
            CsatSurvey.ticket_id.is_(None),
            CsatSurvey.status == SurveyStatus.ANSWERED,
            CsatSurvey.score.is_not(None),
        )
        .order_by(CsatSurvey.id)  # the latest is written last
    ):
        chats[cid].rating = int(score)
    for cid, message_id, helpful in db.execute(
        select(KbFeedback.conversation_id, KbFeedback.message_id, KbFeedback.helpful).where(
            KbFeedback.conversation_id.in_(chosen), KbFeedback.helpful.is_not(None)
        )
    ):
        chat = chats[cid]
        if helpful:
            chat.helped = True
        else:
            chat.unhelpful += (message_id,)
    return list(chats.values())


def example_for(session: Session, verdict: Verdict) -> str:
    """What the customer said that shows the verdict: the message before the reply it is about,
    or the chat's first message."""
    query = select(Message.text).where(
        Message.conversation_id == verdict.conversation_id, Message.author_kind == AuthorKind.CUSTOMER
    )
    if verdict.example_before is not None:
        query = query.where(Message.id < verdict.example_before).order_by(Message.id.desc())
    else:
        query = query.order_by(Message.id)
    return session.scalar(query.limit(1)) or ""


def _article_topics(session: Session) -> dict[str, str]:
    """slug -> the first tag of its published version (the slug itself when it has no tags)."""
    topics: dict[str, str] = {}
    for slug, tags in session.execute(
        select(KbArticle.slug, KbArticleVersion.tags).join(
            KbArticleVersion, KbArticleVersion.id == KbArticle.published_version_id
        )
    ):
        topics[slug] = str(tags[0]).replace("-", " ") if tags else slug
    return topics
