"""Answering questions from the knowledge base, and what the customer says about the answer.

`action_answer_question` runs for questions, for messages the NLU was unsure of, and for an
article picked from a choice. `action_kb_followup` runs for yes / no / thanks right after, and
reads `kb_state` to know what that yes or no is about: an article ("did this solve it?"), a
choice of articles, or the offer of a person.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, latest_message_id, sessions, settings
from actions.followups import (
    asks_status,
    offer_second_request,
    offered_request,
    refers_back,
    split_requests,
    taken_up,
)
from actions.forms import not_an_answer, without_it
from actions.handoff import hand_over, trigger_on
from bot.crm import sentiment
from bot.crm.models import ArticleStatus, KbArticle, KbArticleVersion, KbFeedback, utcnow
from knowledge_base import answers, gaps, routing
from knowledge_base.index import Hit, SearchIndex
from knowledge_base.live import LiveIndex, process_index, wait_until_ready

logger = logging.getLogger(__name__)

# kb_state values
ANSWERED = "answered"
OFFERED_CHOICES = "offered_choices"
OFFERED_PERSON = "offered_person"

INDEX_WAIT_SECONDS = 30.0

ASK_HELPED = "Did this solve it?"
ASK_NEXT_HELPED = "Did this one solve it?"
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
OUT_OF_SCOPE = (
    "That's outside what I can help with, sorry. I can answer questions about our shop, track orders "
    "and connect you with our support team."
)
MISSED_AGAIN = (
    "I'm sorry, I can't help with that either. A person from our team may be able to: shall I bring one in?"
)
FRUSTRATED = (
    "I'm really sorry: this isn't how it should be. A person from our team can look into it with you "
    "right now, or tell me your order number and I'll check where things stand."
)
SECURITY_ARTICLE = "account-hacked"
SECURITY_OFFER = (
    "Because this is about the safety of your account, a person from our team should check it with "
    "you now. Shall I bring one in?"
)
# Account-security words: whatever the intent, these get the security article and a person.
SECURITY = re.compile(
    r"\b(?:hacked|hijacked|compromised|take ?over|taken over|fraud(?:ulent)?|"
    r"unauthori[sz]ed|stolen (?:card|account|password|identity)|identity theft|phish(?:ed|ing)|"
    r"someone (?:else )?(?:has )?(?:ordered|logged|used|accessed|changed|is using|got into)|"
    r"(?:order|orders|purchase)s? (?:i|I) (?:never|didn'?t|did not) (?:make|place|made|placed|order)|"
    r"wasn'?t me)\b",
    re.IGNORECASE,
)
# ...unless they are about another service's account, which is outside what we can help with.
_ELSEWHERE = re.compile(
    r"\b(?:instagram|facebook|whatsapp|gmail|outlook|twitter|tiktok|snapchat|netflix|steam|"
    r"paypal account|bank account|ex'?s)\b",
    re.IGNORECASE,
)


def security_worry(text: str, intent: str | None) -> bool:
    """Whether the customer fears someone else is in their account with us."""
    if intent == "account_security":
        return True
    return SECURITY.search(text or "") is not None and _ELSEWHERE.search(text or "") is None


SECURITY_STEPS = (
    "Change your password now (account icon > Security) and log out of all devices there. If a card "
    "was used without your permission, tell your bank so they can block it, and tell us which orders "
    "aren't yours: those that haven't shipped can be stopped and refunded."
)
# "so what can I do now?", "what are my options": asking for the next step after our answer.
_WHAT_NOW = re.compile(
    r"\b(?:what (?:else )?(?:do|can|should|shall) i do|what now|now what|what are my options|"
    r"what next|what happens now|what'?s next)\b",
    re.IGNORECASE,
)
_WHY = re.compile(r"^\W*(?:(?:but|and|so|ok|okay|ugh|hmm|wait)\W+)*why\b", re.IGNORECASE)

# What we already said that counts as "couldn't help": twice in a row, a person is offered.
_MISSES = (OUT_OF_SCOPE, NO_ANSWER, MISSED_AGAIN, NOT_HELPED_NO_MORE)


def kb_index() -> LiveIndex:
    return process_index(sessions())


if os.environ.get("KEFU_WARM_UP") == "1" and os.environ.get("SANIC_WORKER_NAME"):
    # The action server's worker process (Sanic spawns it from a manager process that never
    # answers actions): load the encoder and the index now, not at the first question.
    kb_index()


def search_query(text: str) -> str:
    """What is searched for a message: its first request, without "hi, quick question:"."""
    first, _rest = split_requests(text)
    return answers.query_from(answers.without_lead_in(first))


# The last searches, per query, with the index they came from: the router searches a message
# first, and the answer that follows takes the same hits instead of encoding it again.
_RECENT: OrderedDict[str, tuple[SearchIndex, list[Hit]]] = OrderedDict()
_RECENT_SIZE = 256
_recent_lock = threading.Lock()


def search_articles(query: str) -> list[Hit]:
    """The best articles for a query from the current index."""
    current = kb_index().index()
    with _recent_lock:
        found = _RECENT.get(query)
    if found is not None and found[0] is current:
        return list(found[1])
    hits = current.search(query, k=5)
    with _recent_lock:
        _RECENT[query] = (current, hits)
        _RECENT.move_to_end(query)
        while len(_RECENT) > _RECENT_SIZE:
            _RECENT.popitem(last=False)
    return list(hits)


def decide(hits: list[Hit]) -> answers.Decision:
    config = settings()
    return answers.decide(hits, config.kb_answer_score, config.kb_suggest_score)


def routing_policy() -> routing.RoutingPolicy:
    config = settings()
    return routing.RoutingPolicy(
        article_score=config.kb_route_score,
        unsure_below=config.kb_route_unsure_below,
        sure_score=config.kb_route_sure_score,
        decisive_score=config.kb_route_decisive_score,
        doubtful_below=config.kb_route_doubtful_below,
    )


async def article_instead(tracker: Tracker, decisive_only: bool = False) -> bool:
    """Whether the knowledge base should answer this message rather than the flow its intent starts
    (knowledge_base/routing.py): "how long do refunds take?" is a question, not a refund request.
    With `decisive_only`, only a decisive article will do (the message tells what went wrong)."""
    text = str(tracker.latest_message.get("text") or "")
    if tracker.active_loop_name is not None or text.startswith("/") or not kb_index().ready:
        return False
    query = search_query(text)
    if not answers.has_words(query):
        return False
    try:
        hits = await asyncio.to_thread(search_articles, query)
    except Exception:
        logger.exception("knowledge-base search failed while routing; the flow goes ahead")
        return False
    reading = routing.Reading.of(tracker.latest_message)
    if decisive_only:
        return routing.decisive(reading, hits, routing_policy())
    return routing.prefer_article(reading, hits, routing_policy())


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


def missed_before(tracker: Tracker) -> bool:
    """Whether the assistant's last reply already said it couldn't help."""
    previous = _previous_reply(tracker) or ""
    return any(previous.startswith(miss[:40]) for miss in _MISSES)


async def no_dead_end(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType] | None:
    """What to say instead of "I can't help" when that would leave the customer stuck: account
    security (the article and a person), frustration (an apology and a person), or a second miss in
    a row (an apology and a person). None when a plain "I can't help" is fair."""
    text = str(tracker.latest_message.get("text") or "")
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    if security_worry(text, intent):
        return await security_concern(dispatcher, tracker)
    if (events := what_now(dispatcher, tracker)) is not None:
        return events
    if sentiment.is_frustrated(text):
        dispatcher.utter_message(
            text=FRUSTRATED,
            buttons=[PERSON_BUTTONS[0], {"title": "Check my order", "payload": "/track_order"}],
        )
        return _set(state=OFFERED_PERSON, article=None, candidates=[])
    if missed_before(tracker):
        return _offer_person(dispatcher, MISSED_AGAIN)
    return None


async def security_concern(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """Someone else in the customer's account: what to do now, and a person offered at once."""
    text = str(tracker.latest_message.get("text") or "")[:500]
    shown = await in_transaction(
        lambda session: show_article(session, tracker, SECURITY_ARTICLE, text, "answer", 1.0)
    )
    if shown is not None:
        dispatcher.utter_message(
            text=_article_text(shown), json_message={"metadata": {"kb_article": shown.slug}}
        )
    return _offer_person(dispatcher, SECURITY_OFFER) + [SlotSet("next_steps", SECURITY_STEPS)]


def what_now(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType] | None:
    """A follow-up that only makes sense after what we just said: "so what can I do?" gets the
    steps we gave again, "why was it cancelled?" an honest "I can't see why" and a person. None when
    the message is neither, or there is nothing to refer back to."""
    text = str(tracker.latest_message.get("text") or "")
    steps = tracker.get_slot("next_steps")
    if steps and _WHAT_NOW.search(text) and len(re.findall(r"\w+", text)) <= 8:
        dispatcher.utter_message(
            text=f"{steps} If that doesn't settle it, a person from our team can help you with it now.",
            buttons=[PERSON_BUTTONS[0]],
        )
        return _set(state=OFFERED_PERSON, article=None, candidates=[])
    order, ticket = tracker.get_slot("last_order"), tracker.get_slot("last_ticket")
    if (order or ticket) and _WHY.match(text) and len(re.findall(r"\w+", text)) <= 10:
        about = f"order #{order}" if order else f"ticket {ticket}"
        return _offer_person(
            dispatcher,
            f"I can't see the reason for that from here, I'm afraid. A person from our team can look "
            f"into {about} with you: shall I bring one in?",
        )
    return None


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
        text = str(tracker.latest_message.get("text") or "")
        if tracker.active_loop_name == "complaint_form" and not answers.is_question(text):
            # Said while the complaint form waits for an answer: it is the customer's story, kept.
            so_far = str(tracker.get_slot("complaint_details") or "")
            dispatcher.utter_message(text="Thank you, I've noted that for your complaint.")
            return [SlotSet("complaint_details", f"{so_far}\n{text.strip()}".strip()[:2000])]
        if in_form and without_it(dispatcher, tracker):
            # "I don't have it, deleted the e-mail" while the form asks for the number: not a question.
            return []
        if intent == "account_security" and SECURITY.search(text) is None and await article_instead(tracker):
            # Read as a security worry, but without its words ("my account is locked"), and an
            # article answers exactly that.
            intent = None
        if not in_form and security_worry(text, intent):
            return await security_concern(dispatcher, tracker)
        if not in_form and (events := what_now(dispatcher, tracker)) is not None:
            return events
        if not in_form and tracker.get_slot("last_order") and asks_status(text):
            # "ok so what's happening with it now?" about the order we just looked at.
            return [
                SlotSet("order_number", tracker.get_slot("last_order")),
                SlotSet("order_purpose", "track"),
                FollowupAction("order_form"),
            ]
        if not in_form and (offered := offered_request(_previous_reply(tracker))) and taken_up(text, offered):
            # "and the return?" right after "You also asked: how do I return stuff from 100002".
            text = offered
        _first, rest = split_requests(text)
        query = search_query(text)
        if not answers.has_words(query):
            dispatcher.utter_message(text=EMPTY_QUESTION)
            return []
        try:
            events = await self._search_and_answer(dispatcher, tracker, query, in_form)
            if rest and not in_form:
                events += offer_second_request(dispatcher, rest)
            return events
        except Exception:
            logger.exception("knowledge-base search failed for sender %s", tracker.sender_id)
            if in_form:
                dispatcher.utter_message(text="Sorry, I can't look that up right now.")
                return []
            return _offer_person(dispatcher, SEARCH_DOWN)

    async def _search_and_answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, query: str, in_form: bool
    ) -> list[EventType]:
        live = kb_index()

        text = str(tracker.latest_message.get("text") or "")
        followup = refers_back(text) or answers.is_followup(text)
        context = tracker.get_slot("last_order") or tracker.get_slot("last_ticket")

        def search(session: Session) -> tuple[answers.Decision, Shown | None]:
            if not wait_until_ready(live, INDEX_WAIT_SECONDS):
                raise RuntimeError("the knowledge-base index is not loaded yet")
            decision = decide(search_articles(query))
            shown = None
            single = decision.band == "choose" and answers.plausible(decision) == 1
            if decision.band == "answer" or single:
                best = decision.hits[0]
                shown = show_article(session, tracker, best.slug, query, "answer", best.score)
            elif decision.band == "none" and not (followup and context) and not sentiment.is_frustrated(text):
                # Not a gap in the knowledge base: a follow-up that needs the chat's context, or
                # the customer venting.
                conversation = conversation_for(session, tracker)
                gaps.record_gap(
                    session, query, "no_match", conversation.id, latest_message_id(tracker), decision.best
                )
            return decision, shown

        decision, shown = await in_transaction(search)
        if shown is not None:
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
        if followup and context:
            return self._ask_in_context(dispatcher, tracker)
        if _previous_reply(tracker) == NO_ANSWER and trigger_on("repeated_fallback"):
            # Twice in a row the bot had nothing: a person takes over rather than a third miss.
            return _set(state=None, article=None, candidates=[]) + await hand_over(
                dispatcher,
                tracker,
                "repeated_fallback",
                lead_in="I'm sorry, I can't find an answer to that either.",
            )
        if (instead := await no_dead_end(dispatcher, tracker)) is not None:
            return instead + _set(query=query)
        return _offer_person(dispatcher, NO_ANSWER) + _set(query=query)

    @staticmethod
    def _ask_in_context(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        """A follow-up we can't answer on its own: ask what they'd like to know about the order or
        ticket being discussed, rather than noting it as a question the knowledge base lacks."""
        order, ticket = tracker.get_slot("last_order"), tracker.get_slot("last_ticket")
        buttons = []
        if order:
            about = f"order #{order}"
            buttons += [
                {"title": f"Where is #{order}?", "payload": f'/track_order{{"order_number": "{order}"}}'},
                {"title": f"Return #{order}", "payload": f'/request_refund{{"order_number": "{order}"}}'},
            ]
        else:
            about = f"ticket {ticket}"
            buttons.append(
                {
                    "title": f"Status of {ticket}",
                    "payload": f'/check_ticket{{"ticket_reference": "{ticket}"}}',
                }
            )
        buttons.append(PERSON_BUTTONS[0])
        dispatcher.utter_message(
            text=f"Sorry, I'm not sure what you'd like to know. Is it about {about}? Tell me a little "
            "more, or pick one of these.",
            buttons=buttons,
        )
        return _set(state=None, article=None, candidates=[])

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
        if slug is None and in_form and not offered:
            # "the blue one" while a form waits for an answer, with no articles on offer.
            return not_an_answer(dispatcher, tracker)
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
        if _previous_reply(tracker) == ASK_NEXT_HELPED:
            # Two articles didn't help: a third guess is worse than a person.
            candidates = []
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
        dispatcher.utter_message(text=ASK_NEXT_HELPED, buttons=HELPED_BUTTONS)
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


class ActionRequestHuman(Action):
    """Puts the conversation in the agents' queue and pauses the bot for it; a question the classifier
    only half took for a request for a person ("till what time can I reach someone?") and an article
    answers decisively gets the article (knowledge_base/routing.py)."""

    def name(self) -> str:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if await article_instead(tracker):
            return [FollowupAction("action_answer_question")]
        return await hand_over(dispatcher, tracker, "customer_asked")


class ActionOutOfScope(Action):
    """Says what is outside the assistant's reach, but never as a dead end (see `no_dead_end`)."""

    def name(self) -> str:
        return "action_out_of_scope"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = str(tracker.latest_message.get("text") or "")
        if SECURITY.search(text) is None and await article_instead(tracker):
            # "I was double charged": the classifier found it strange, our articles answer it. Security
            # words are ours (the security answer below) or another service's ("my instagram got hacked").
            return [FollowupAction("action_answer_question")]
        if (instead := await no_dead_end(dispatcher, tracker)) is not None:
            return instead
        dispatcher.utter_message(text=OUT_OF_SCOPE)
        return _set(state=None, article=None, candidates=[])
