"""Satisfaction surveys (CSAT): asking for 1-5 and a comment, reading the answer, following up.

A survey rates one service episode, found in our own records:

- a ticket resolved (`ticket:<id>@<resolved at, epoch seconds>`; a reopened ticket resolved again
  is a new episode),
- a chat a person handed back to the bot (`handoff:<handoff id>`),
- a chat the bot served: an article the customer answered "did this solve it?" about, yes or no
  (a no is service worth rating too, or the figure would only count successes); an order the
  customer proved was theirs and was told about; a ticket the bot opened from their message
  (`chat:<conversation id>:article|order|opened:<row id>`, the newest of them).

Each episode gets at most one survey (a unique key), and an episode is rated once: after the
answer, asking to rate it again gets a thank-you, not a second survey. The bot-served episode of a
chat is rated once its newest service is older than the chat's last answer. Surveys without an
episode are not counted on the dashboard.

A survey is requested when a ticket is resolved, a person hands a chat back, a served chat ends
or the customer asks; the scheduler sends pending ones on the customer's channel
(bot/scheduler.py). A score of 1 or 2 calls for a follow-up ticket for the support lead, so an
unhappy customer always hears from a person (`tickets.record_survey_answer`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import (
    Conversation,
    CsatSurvey,
    Customer,
    Handoff,
    KbFeedback,
    SurveyStatus,
    Ticket,
    VerificationAttempt,
    utcnow,
)

# A customer who ignores the question for this long is not asked about it again.
ANSWER_WINDOW = timedelta(hours=24)
LOW_SCORE = 2

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "zero": 0, "six": 6, "ten": 10}
# Words people rate with. Checked after numbers, and after "not ..." turns them down a step.
_WORD_SCORES: tuple[tuple[int, re.Pattern[str]], ...] = (
    (
        1,
        re.compile(
            r"\b(terrible|awful|horrible|horrendous|useless|worst|rubbish|appalling|dreadful|pathetic|hopeless)\b"
        ),
    ),
    (
        5,
        re.compile(
            r"\b(excellent|amazing|perfect|fantastic|brilliant|superb|great|awesome|outstanding|wonderful"
            r"|loved? it|top)\b"
        ),
    ),
    (2, re.compile(r"\b(bad|poor|unhelpful|disappointing|disappointed)\b")),
    (4, re.compile(r"\b(good|nice|helpful|pretty good|very good|happy|satisfied)\b")),
    (3, re.compile(r"\b(ok|okay|fine|average|alright|all right|so-so|meh|mediocre|could be better)\b")),
)
_NOT_BAD = re.compile(r"\bnot (?:too |that |so )?bad\b")
_NOT_GOOD = re.compile(
    r"\bnot (?:very |so |that |really |too |at all )?"
    r"(?:good|great|helpful|nice|happy|satisfied|excellent|amazing)\b"
)
_SKIP = re.compile(
    r"^\W*(no|nope|nah|skip|no thanks?|no thank you|not now|later|rather not|i'?d rather not|"
    r"don'?t want to|pass|no comment|nothing|none|n/?a)\W*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Rating:
    """A parsed answer: a score 1-5, or why there is none ("out_of_range", "not_understood", "skip")."""

    score: int | None
    problem: str | None = None


def parse_rating(text: str) -> Rating:
    """Read 1-5 from what the customer typed: "4", "4/5", "8 out of 10", "three", "★★★★", "great"."""
    value = (text or "").strip().lower()
    if not value:
        return Rating(None, "not_understood")
    stars = value.count("★") + value.count("⭐")
    if stars and not re.search(r"\d", value):
        return Rating(stars) if stars <= 5 else Rating(None, "out_of_range")
    # "four out of five" is read like "4 out of 5".
    as_digits = re.sub(r"[a-z]+", lambda m: str(_NUMBER_WORDS.get(m.group(0), m.group(0))), value)
    number_match = re.search(r"(-?\d+(?:[.,]\d+)?)\s*(?:/|out of|of)\s*(\d+)", as_digits)
    if number_match:
        score, scale = float(number_match.group(1).replace(",", ".")), int(number_match.group(2))
        if scale <= 0 or score < 0 or score > scale:
            return Rating(None, "out_of_range")
        scaled = round(score * 5 / scale) if scale != 5 else round(score)
        return Rating(scaled) if 1 <= scaled <= 5 else Rating(None, "out_of_range")
    digits = re.findall(r"-?\d+(?:[.,]\d+)?", value)
    words = [_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", value) if w in _NUMBER_WORDS]
    numbers = [float(d.replace(",", ".")) for d in digits] + [float(w) for w in words]
    if len(set(numbers)) == 1:
        number = numbers[0]
        if number != int(number) or not 1 <= number <= 5:
            return Rating(None, "out_of_range")
        return Rating(int(number))
    if len(set(numbers)) > 1:
        return Rating(None, "not_understood")
    if _SKIP.match(value):
        return Rating(None, "skip")
    if _NOT_BAD.search(value):
        return Rating(3)
    if _NOT_GOOD.search(value):
        return Rating(2)
    for score, pattern in _WORD_SCORES:
        if pattern.search(value):
            return Rating(score)
    return Rating(None, "not_understood")


def is_skip(text: str) -> bool:
    return bool(_SKIP.match(text or ""))


_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# A number no rating has: an order number, a ticket reference, a phone number.
_LONG_NUMBER = re.compile(r"\d{3,}")
_SCALE = re.compile(r"\d\s*(?:/|out of|of)\s*\d")
# At least this many words with no rating in them is a message of its own, not a failed rating.
MIN_WORDS_OF_A_MESSAGE = 3


def is_another_message(text: str) -> bool:
    """Whether an answer to "rate us 1-5" is clearly something else: a question of a few words, a
    long number (an order, a ticket), or a few words with no number or rating word in them.

    "wait, so can I get a replacement chair or not??" is; "4", "great", "what?", "hmm" are not.
    """
    value = (text or "").strip().lower()
    words = _WORD.findall(value)
    if len(words) >= MIN_WORDS_OF_A_MESSAGE and "?" in value:
        return True
    if _LONG_NUMBER.search(value) and not _SCALE.search(value):
        return True
    rating = parse_rating(value)
    return (
        rating.problem == "not_understood"
        and len(words) >= MIN_WORDS_OF_A_MESSAGE
        and not re.search(r"\d", value)
        and not any(word in _NUMBER_WORDS for word in words)
    )


# What a survey rates (Episode.trigger): the first two are also survey triggers.
TICKET_RESOLVED = "ticket_resolved"
AGENT_HANDBACK = "agent_handback"
BOT_SERVED = "bot_served"


@dataclass(frozen=True)
class Episode:
    """One piece of service a customer can rate, as our records show it."""

    key: str
    trigger: str
    at: datetime
    ticket_id: int | None = None


def ticket_episode(ticket: Ticket, now: datetime | None = None) -> str:
    resolved = ticket.resolved_at or now or utcnow()
    return f"ticket:{ticket.id}@{int(resolved.timestamp())}"


def handoff_episode(handoff_id: int) -> str:
    return f"handoff:{handoff_id}"


def latest_episode(session: Session, conversation_id: int) -> Episode | None:
    """The newest episode of this chat the customer could rate, or None when there is none."""
    found: list[Episode] = []
    handoff = session.scalars(
        select(Handoff)
        .where(
            Handoff.conversation_id == conversation_id,
            Handoff.outcome == "handed_back",
            Handoff.ended_at.is_not(None),
        )
        .order_by(Handoff.ended_at.desc(), Handoff.id.desc())
        .limit(1)
    ).first()
    if handoff is not None and handoff.ended_at is not None:
        found.append(Episode(handoff_episode(handoff.id), AGENT_HANDBACK, handoff.ended_at))
    resolved = session.scalars(
        select(Ticket)
        .where(
            Ticket.conversation_id == conversation_id,
            Ticket.kind != "csat_follow_up",
            Ticket.resolved_at.is_not(None),
        )
        .order_by(Ticket.resolved_at.desc(), Ticket.id.desc())
        .limit(1)
    ).first()
    if resolved is not None and resolved.resolved_at is not None:
        found.append(Episode(ticket_episode(resolved), TICKET_RESOLVED, resolved.resolved_at, resolved.id))
    served = _latest_bot_service(session, conversation_id)
    if served is not None:
        found.append(served)
    return max(found, key=lambda episode: episode.at) if found else None


def _latest_bot_service(session: Session, conversation_id: int) -> Episode | None:
    prefix = f"chat:{conversation_id}"
    found: list[Episode] = []
    article = session.execute(
        select(KbFeedback.id, KbFeedback.answered_at)
        .where(
            KbFeedback.conversation_id == conversation_id,
            KbFeedback.helpful.is_not(None),
            KbFeedback.answered_at.is_not(None),
        )
        .order_by(KbFeedback.answered_at.desc(), KbFeedback.id.desc())
        .limit(1)
    ).first()
    if article is not None:
        found.append(Episode(f"{prefix}:article:{article.id}", BOT_SERVED, article.answered_at))
    order = session.execute(
        select(VerificationAttempt.id, VerificationAttempt.created_at)
        .where(VerificationAttempt.conversation_id == conversation_id, VerificationAttempt.succeeded)
        .order_by(VerificationAttempt.created_at.desc(), VerificationAttempt.id.desc())
        .limit(1)
    ).first()
    if order is not None:
        found.append(Episode(f"{prefix}:order:{order.id}", BOT_SERVED, order.created_at))
    opened = session.execute(
        select(Ticket.id, Ticket.created_at)
        .where(
            Ticket.conversation_id == conversation_id,
            Ticket.kind != "csat_follow_up",
            Ticket.source_message_id.is_not(None),
        )
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(1)
    ).first()
    if opened is not None:
        found.append(Episode(f"{prefix}:opened:{opened.id}", BOT_SERVED, opened.created_at))
    return max(found, key=lambda episode: episode.at) if found else None


def survey_of_episode(session: Session, key: str) -> CsatSurvey | None:
    return session.scalars(select(CsatSurvey).where(CsatSurvey.episode == key)).first()


def is_rated(session: Session, conversation_id: int, episode: Episode) -> bool:
    """Whether the customer has already rated this episode."""
    survey = survey_of_episode(session, episode.key)
    if survey is not None and survey.status is SurveyStatus.ANSWERED:
        return True
    if episode.trigger != BOT_SERVED:
        return False
    # A rating in this chat after the bot's latest service covered it, whichever episode it was asked for.
    later = session.scalars(
        select(CsatSurvey.id).where(
            CsatSurvey.conversation_id == conversation_id,
            CsatSurvey.episode.is_not(None),
            CsatSurvey.status == SurveyStatus.ANSWERED,
            CsatSurvey.answered_at >= episode.at,
        )
    ).first()
    return later is not None


@dataclass(frozen=True)
class Offer:
    """What a customer asking to rate us gets: a survey to answer, or why there is none."""

    survey: CsatSurvey | None
    episode: Episode | None

    @property
    def already_rated(self) -> bool:
        return self.survey is None and self.episode is not None


def offer_survey(
    session: Session, conversation: Conversation, *, trigger: str, now: datetime | None = None
) -> Offer:
    """The survey for this chat's latest episode, unless there is none or it was rated already.

    An episode's unanswered survey (waiting to be sent, asked, skipped) is the one offered again,
    so an episode never has two. `trigger` names who asked for a bot-served chat's survey
    (`customer_offered`, `conversation_end`); other episodes keep their own.
    """
    episode = latest_episode(session, conversation.id)
    if episode is None:
        return Offer(None, None)
    if is_rated(session, conversation.id, episode):
        return Offer(None, episode)
    survey = survey_of_episode(session, episode.key)
    if survey is None:
        ticket = session.get(Ticket, episode.ticket_id) if episode.ticket_id is not None else None
        survey = request_survey(
            session,
            trigger=trigger if episode.trigger == BOT_SERVED else episode.trigger,
            ticket=ticket,
            conversation=conversation,
            episode=episode.key,
            now=now,
        )
    return Offer(survey, episode)


def _episode_of_request(
    session: Session, trigger: str, ticket: Ticket | None, conversation: Conversation | None, now: datetime
) -> str | None:
    if trigger == TICKET_RESOLVED and ticket is not None:
        return ticket_episode(ticket, now)
    if trigger == AGENT_HANDBACK and conversation is not None:
        handoff_id = session.scalars(
            select(Handoff.id)
            .where(Handoff.conversation_id == conversation.id, Handoff.outcome == "handed_back")
            .order_by(Handoff.ended_at.desc(), Handoff.id.desc())
            .limit(1)
        ).first()
        return handoff_episode(handoff_id) if handoff_id is not None else None
    return None


def request_survey(
    session: Session,
    *,
    trigger: str,
    ticket: Ticket | None = None,
    conversation: Conversation | None = None,
    episode: str | None = None,
    now: datetime | None = None,
) -> CsatSurvey | None:
    """Queue a survey about a resolved ticket or a finished chat; None when we cannot reach anyone
    or the episode has its survey already. A resolved ticket's or a hand-back's episode is found
    here when not given."""
    now = now or utcnow()
    if conversation is None and ticket is not None and ticket.conversation_id is not None:
        conversation = session.get(Conversation, ticket.conversation_id)
    # The follow-up ticket a bad score opens is for the lead: asking about it again would loop.
    if ticket is not None and ticket.kind == "csat_follow_up":
        return None
    episode = episode or _episode_of_request(session, trigger, ticket, conversation, now)
    if episode is not None and survey_of_episode(session, episode) is not None:
        return None
    survey = CsatSurvey(
        episode=episode,
        trigger=trigger,
        ticket_id=ticket.id if ticket is not None else None,
        conversation_id=conversation.id if conversation is not None else None,
        customer_id=(ticket.customer_id if ticket is not None else None)
        or (conversation.customer_id if conversation is not None else None),
        channel=conversation.channel if conversation is not None else None,
        status=SurveyStatus.PENDING if conversation is not None else SurveyStatus.UNDELIVERABLE,
        requested_at=now,
    )
    session.add(survey)
    session.flush()
    return survey


def recently_surveyed(session: Session, conversation_id: int, now: datetime | None = None) -> bool:
    """Whether this chat was already asked within the answer window (don't ask twice in a row)."""
    now = now or utcnow()
    found = session.scalars(
        select(CsatSurvey.id).where(
            CsatSurvey.conversation_id == conversation_id,
            CsatSurvey.requested_at >= now - ANSWER_WINDOW,
            CsatSurvey.status != SurveyStatus.UNDELIVERABLE,
        )
    ).first()
    return found is not None


def mark_asked(survey: CsatSurvey, now: datetime | None = None) -> None:
    survey.status = SurveyStatus.ASKED
    survey.asked_at = now or utcnow()


def record_answer(
    session: Session, survey: CsatSurvey, score: int, comment: str | None, now: datetime | None = None
) -> Ticket | None:
    """Store the score on the survey and on the ticket it was about; returns that ticket, if any.

    The ticket's history and a follow-up for a low score are the caller's to write
    (`tickets.record_survey_answer`): satisfaction knows nothing of the ticket life cycle.
    """
    if not 1 <= score <= 5:
        raise ValueError(f"a CSAT score is 1-5, not {score}")
    survey.score = score
    survey.comment = (comment or "").strip() or None
    survey.status = SurveyStatus.ANSWERED
    survey.answered_at = now or utcnow()
    ticket = session.get(Ticket, survey.ticket_id) if survey.ticket_id is not None else None
    if ticket is not None:
        ticket.csat_score = score
        ticket.csat_comment = survey.comment
    return ticket


def known_contact(session: Session, survey: CsatSurvey) -> str | None:
    """How the support lead can reach the customer who answered: their customer record, or an
    e-mail or phone they gave in this chat (waiting for a person, on a ticket); None if nothing."""
    if survey.customer_id is not None:
        customer = session.get(Customer, survey.customer_id)
        if customer is not None and (customer.email or customer.phone):
            return customer.email or customer.phone
    if survey.conversation_id is None:
        return None
    conversation = session.get(Conversation, survey.conversation_id)
    if conversation is not None and conversation.customer_id is not None:
        customer = session.get(Customer, conversation.customer_id)
        if customer is not None and (customer.email or customer.phone):
            return customer.email or customer.phone
    given = (
        session.scalars(
            select(Handoff.contact)
            .where(Handoff.conversation_id == survey.conversation_id, Handoff.contact.is_not(None))
            .order_by(Handoff.id.desc())
            .limit(1)
        ).first()
        or session.scalars(
            select(Ticket.contact)
            .where(Ticket.conversation_id == survey.conversation_id, Ticket.contact.is_not(None))
            .order_by(Ticket.id.desc())
            .limit(1)
        ).first()
    )
    return given or None


def is_low(score: int) -> bool:
    """A 1 or a 2: the customer was let down, and a lead should follow it up."""
    return score <= LOW_SCORE


def expire_unanswered(session: Session, now: datetime | None = None) -> int:
    """Surveys asked and left unanswered past the window count as skipped (a scheduled job)."""
    now = now or utcnow()
    stale = session.scalars(
        select(CsatSurvey).where(
            CsatSurvey.status == SurveyStatus.ASKED, CsatSurvey.asked_at < now - ANSWER_WINDOW
        )
    ).all()
    for survey in stale:
        survey.status = SurveyStatus.SKIPPED
    return len(stale)
