"""Answering questions from the knowledge base, and what the customer says about the answer.

`action_answer_question` runs for questions, for messages the NLU was unsure of, and for an
article picked from a choice. `action_kb_followup` runs for yes / no / thanks right after, and
reads `kb_state` to know what that yes or no is about: an article ("did this solve it?"), a
choice of articles, or the offer of a person.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, latest_message_id, sessions, settings
from actions.handoff import hand_over, trigger_on
from bot.crm.models import ArticleStatus, KbArticle, KbArticleVersion, KbFeedback, utcnow
from knowledge_base import answers, gaps
from knowledge_base.index import Hit
from knowledge_base.live import LiveIndex, process_index, wait_until_ready

logger = logging.getLogger(__name__)

# kb_state values
ANSWERED = "answered"
OFFERED_CHOICES = "offered_choices"
OFFERED_PERSON = "offered_person"

INDEX_WAIT_SECONDS = 30.0

ASK_HELPED = "Did this solve it?"
HELPED_BUTTONS = [
    {"title": "Yes, thanks", "payload": "/affirm"},
    {"title": "No, it didn't help", "payload": "/deny"},
]
PERSON_BUTTONS = [
    {"title": "Talk to a person", "payload": "/request_human"},
    {"title": "No, thanks", "payload": "/deny"},
]
NO_ANSWER = (
    "I'm sorry, I don't have an answer to that yet. I've noted your question so our team can add "
    "one. Would you like to talk to a person?"
)
NO_ANSWER_IN_FORM = "I don't have an answer to that one yet, sorry; I've noted it for our team."
NOT_HELPED_NO_MORE = (
    "I'm sorry that didn't help, and I've noted it so we can improve our answer. "
    "Would you like to talk to a person?"
)
SEARCH_DOWN = (
    "Sorry, I can't look that up right now. Would you like to talk to a person instead, "
    "or try again in a minute?"
)
EMPTY_QUESTION = "Could you tell me a bit more about your question? A few words are enough."


def kb_index() -> LiveIndex:
    return process_index(sessions())


if os.environ.get("KEFU_WARM_UP") == "1" and os.environ.get("SANIC_WORKER_NAME"):
    # The action server's worker process (Sanic spawns it from a manager process that never
    # answers actions): load the encoder and the index now, not at the first question.
    kb_index()


@dataclass(frozen=True)
class Shown:
    slug: str
    title: str
    solution: str


def _article_text(shown: Shown) -> str:
    # One message: Rasa's output channels cut a text at blank lines into separate messages.
    solution = re.sub(r"\n\s*\n", "\n", shown.solution.strip())
    return f"{shown.title}\n{solution}"


def _say_article(dispatcher: CollectingDispatcher, shown: Shown, ask: bool) -> None:
    dispatcher.utter_message(text=_article_text(shown), json_message={"metadata": {"kb_article": shown.slug}})
    if ask:
        dispatcher.utter_message(text=ASK_HELPED, buttons=HELPED_BUTTONS)


def _record_shown(
    session: Session,
    tracker: Tracker,
    article: KbArticle,
    version: KbArticleVersion,
    query: str,
    shown_as: str,
    score: float,
) -> None:
    conversation = conversation_for(session, tracker)
    session.add(
        KbFeedback(
            article_id=article.id,
            version_id=version.id,
            conversation_id=conversation.id,
            message_id=latest_message_id(tracker),
            query=query,
            shown_as=shown_as,
            score=round(score, 4),
        )
    )


def _published(session: Session, slug: str) -> tuple[KbArticle, KbArticleVersion] | None:
    article = session.scalar(select(KbArticle).where(KbArticle.slug == slug))
    if article is None or article.status != ArticleStatus.PUBLISHED or article.published_version is None:
        return None
    return article, article.published_version


def show_article(
    session: Session, tracker: Tracker, slug: str, query: str, shown_as: str, score: float
) -> Shown | None:
    """Load a published article and record that it was shown; None if it is not published (any more)."""
    found = _published(session, slug)
    if found is None:
        return None
    article, version = found
    _record_shown(session, tracker, article, version, query, shown_as, score)
    return Shown(slug=article.slug, title=version.title, solution=version.solution)


def _previous_reply(tracker: Tracker) -> str | None:
    """The text of the bot's last message before the customer's latest one."""
    seen_latest_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            if seen_latest_user:
                continue
            seen_latest_user = True
        elif event.get("event") == "bot" and seen_latest_user:
            return str(event.get("text") or "")
    return None


def _set(**slots: Any) -> list[EventType]:
    return [SlotSet(f"kb_{name}", value) for name, value in slots.items()]


def _offer_person(dispatcher: CollectingDispatcher, text: str) -> list[EventType]:
    dispatcher.utter_message(text=text, buttons=PERSON_BUTTONS)
    return _set(state=OFFERED_PERSON, article=None, candidates=[])


class ActionAnswerQuestion(Action):
    def name(self) -> str:
        return "action_answer_question"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        in_form = tracker.active_loop_name is not None
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent == "choose_article":
            return await self._chosen(dispatcher, tracker, in_form)
        query = answers.query_from(tracker.latest_message.get("text") or "")
        if not answers.has_words(query):
            dispatcher.utter_message(text=EMPTY_QUESTION)
            return []
        try:
            return await self._search_and_answer(dispatcher, tracker, query, in_form)
        except Exception:
            logger.exception("knowledge-base search failed for sender %s", tracker.sender_id)
            if in_form:
                dispatcher.utter_message(text="Sorry, I can't look that up right now.")
                return []
            return _offer_person(dispatcher, SEARCH_DOWN)

    async def _search_and_answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, query: str, in_form: bool
    ) -> list[EventType]:
        config = settings()
        live = kb_index()

        def search(session: Session) -> tuple[answers.Decision, Shown | None]:
            if not wait_until_ready(live, INDEX_WAIT_SECONDS):
                raise RuntimeError("the knowledge-base index is not loaded yet")
            decision = answers.decide(
                live.search(query, k=5), config.kb_answer_score, config.kb_suggest_score
            )
            shown = None
            if decision.band == "answer":
                best = decision.hits[0]
                shown = show_article(session, tracker, best.slug, query, "answer", best.score)
            elif decision.band == "none":
                conversation = conversation_for(session, tracker)
                gaps.record_gap(
                    session, query, "no_match", conversation.id, latest_message_id(tracker), decision.best
                )
            return decision, shown

        decision, shown = await in_transaction(search)
        if decision.band == "answer" and shown is not None:
            _say_article(dispatcher, shown, ask=not in_form)
            if in_form:
                return []
            rest = [hit.slug for hit in decision.hits[1:]]
            return _set(state=ANSWERED, article=shown.slug, candidates=rest, query=query)
        if decision.band == "choose" or (decision.band == "answer" and shown is None):
            return self._offer_choices(dispatcher, decision.hits, query, in_form)
        if in_form:
            dispatcher.utter_message(text=NO_ANSWER_IN_FORM)
            return []
        if _previous_reply(tracker) == NO_ANSWER and trigger_on("repeated_fallback"):
            # Twice in a row the bot had nothing: a person takes over rather than a third miss.
            return _set(state=None, article=None, candidates=[]) + await hand_over(
                dispatcher,
                tracker,
                "repeated_fallback",
                lead_in="I'm sorry, I can't find an answer to that either.",
            )
        return _offer_person(dispatcher, NO_ANSWER) + _set(query=query)

    @staticmethod
    def _offer_choices(
        dispatcher: CollectingDispatcher, hits: list[Hit], query: str, in_form: bool
    ) -> list[EventType]:
        choices = hits[: answers.MAX_CHOICES]
        buttons = [
            {"title": hit.title, "payload": f'/choose_article{{"kb_article":"{hit.slug}"}}'}
            for hit in choices
        ]
        if not in_form:  # in a form, "no" means "I have no order number": it would end the form
            buttons.append({"title": "None of these", "payload": "/deny"})
        dispatcher.utter_message(
            text="I found a few articles that might help. Which one fits best?", buttons=buttons
        )
        return _set(
            state=OFFERED_CHOICES, article=None, candidates=[hit.slug for hit in choices], query=query
        )

    async def _chosen(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, in_form: bool
    ) -> list[EventType]:
        offered: list[str] = list(tracker.get_slot("kb_candidates") or [])
        entity = next(tracker.get_latest_entity_values("kb_article"), None)
        slug = entity
        if slug is None:
            position = answers.ordinal_choice(tracker.latest_message.get("text") or "", len(offered))
            slug = offered[position] if position is not None else None
        if slug is None:
            dispatcher.utter_message(
                text="Which one would you like? Tap one of the articles above, or ask me again."
            )
            return []
        query = tracker.get_slot("kb_query") or ""
        shown = await in_transaction(
            lambda session: show_article(session, tracker, slug, query, "chosen", 0.0)
        )
        if shown is None:
            dispatcher.utter_message(
                text="Sorry, that article isn't available any more. Could you ask me your question again?"
            )
            return _set(state=None, article=None, candidates=[])
        _say_article(dispatcher, shown, ask=not in_form)
        if in_form:
            return []
        rest = [candidate for candidate in offered if candidate != slug]
        return _set(state=ANSWERED, article=shown.slug, candidates=rest)


def _mark_feedback(session: Session, tracker: Tracker, slug: str, helpful: bool) -> None:
    conversation = conversation_for(session, tracker)
    feedback = session.scalar(
        select(KbFeedback)
        .join(KbArticle, KbArticle.id == KbFeedback.article_id)
        .where(KbFeedback.conversation_id == conversation.id, KbArticle.slug == slug)
        .order_by(KbFeedback.id.desc())
        .limit(1)
    )
    if feedback is not None:
        feedback.helpful = helpful
        feedback.answered_at = utcnow()


class ActionKbFollowup(Action):
    def name(self) -> str:
        return "action_kb_followup"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        state = tracker.get_slot("kb_state")
        positive = intent in ("affirm", "thank")
        if state == ANSWERED:
            return await self._about_article(dispatcher, tracker, positive)
        if state == OFFERED_CHOICES:
            if positive and intent == "affirm":
                dispatcher.utter_message(text="Which one? Tap one of the articles above.")
                return []
            if positive:
                dispatcher.utter_message(text="You're welcome! Anything else I can help with?")
                return _set(state=None)
            await self._record_unhelpful(tracker)
            return _offer_person(dispatcher, NOT_HELPED_NO_MORE)
        if state == OFFERED_PERSON and intent == "affirm":
            return _set(state=None) + [FollowupAction("action_request_human")]
        if intent == "thank":
            dispatcher.utter_message(text="You're welcome! Anything else I can help with?")
        else:
            dispatcher.utter_message(text="All right. Is there anything else I can help you with?")
        return _set(state=None)

    async def _about_article(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, helped: bool
    ) -> list[EventType]:
        slug = tracker.get_slot("kb_article")
        if helped:
            if slug:
                await in_transaction(lambda session: _mark_feedback(session, tracker, slug, True))
            dispatcher.utter_message(text="Great, I'm glad that helped! Anything else I can do for you?")
            return _set(state=None, candidates=[])
        candidates: list[str] = list(tracker.get_slot("kb_candidates") or [])
        query = tracker.get_slot("kb_query") or ""

        def next_article(session: Session) -> Shown | None:
            if slug:
                _mark_feedback(session, tracker, slug, False)
            while candidates:
                shown = show_article(session, tracker, candidates.pop(0), query, "next", 0.0)
                if shown is not None:
                    return shown
            conversation = conversation_for(session, tracker)
            if query:
                gaps.record_gap(session, query, "unhelpful", conversation.id, latest_message_id(tracker))
            return None

        shown = await in_transaction(next_article)
        if shown is None:
            return _offer_person(dispatcher, NOT_HELPED_NO_MORE)
        dispatcher.utter_message(text="Sorry about that. This article might fit better:")
        dispatcher.utter_message(
            text=_article_text(shown), json_message={"metadata": {"kb_article": shown.slug}}
        )
        dispatcher.utter_message(text="Did this one solve it?", buttons=HELPED_BUTTONS)
        return _set(state=ANSWERED, article=shown.slug, candidates=candidates)

    @staticmethod
    async def _record_unhelpful(tracker: Tracker) -> None:
        query = tracker.get_slot("kb_query") or ""
        if not query:
            return

        def record(session: Session) -> None:
            conversation = conversation_for(session, tracker)
            gaps.record_gap(session, query, "unhelpful", conversation.id, latest_message_id(tracker))

        await in_transaction(record)
