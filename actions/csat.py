"""Satisfaction surveys in the chat: ask 1-5 and a comment, store them, follow up a low score."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SlotSet, UserUttered
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, sla_policy
from actions.knowledge import FRUSTRATED, OFFERED_PERSON, PERSON_BUTTONS
from bot.crm import csat, sentiment, tickets
from bot.crm.models import CsatSurvey, SurveyStatus, Ticket
from bot.crm.orders import parse_contact

RESET = [
    SlotSet("csat_survey_id", None),
    SlotSet("csat_score", None),
    SlotSet("csat_comment", None),
    SlotSet("csat_contact", None),
    SlotSet("csat_skipped", None),
    SlotSet("csat_attempts", None),
]
# What a customer asking to rate us hears when there is nothing to rate, or it is rated already.
NOTHING_TO_RATE = (
    "Thanks for wanting to tell us how we're doing! There's nothing in this chat to rate yet: once "
    "I've answered a question, found an order for you or a ticket of yours is resolved, I'll ask. "
    "Meanwhile I can track an order, answer a question or put you through to a person."
)
ALREADY_RATED = "You've already rated this, thank you! Is there anything else I can help with?"


def _survey_entity(tracker: Tracker) -> int | None:
    for entity in tracker.latest_message.get("entities", []):
        if entity.get("entity") == "csat_survey_id":
            try:
                return int(entity.get("value"))
            except (TypeError, ValueError):
                return None
    return None


# csat_offer is the one survey slot the rules read: true means the survey form comes next.
NO_SURVEY: list[EventType] = [SlotSet("csat_offer", False)]


def _start(survey_id: int) -> list[EventType]:
    return [*RESET, SlotSet("csat_survey_id", float(survey_id)), SlotSet("csat_offer", True)]


class ActionStartCsat(Action):
    """Starts the survey the scheduler sent (after a resolved ticket), or one the customer asked for."""

    def name(self) -> str:
        return "action_start_csat"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        survey_id = _survey_entity(tracker)

        def prepare(session: Session) -> tuple[int | None, str | None, str | None]:
            conversation = conversation_for(session, tracker)
            if survey_id is not None:
                survey = session.get(CsatSurvey, survey_id)
                if survey is None or survey.conversation_id != conversation.id:
                    return None, None, None
                if survey.status not in (SurveyStatus.PENDING, SurveyStatus.ASKED):
                    return None, None, None
            else:
                # The customer asked: only a real episode of service, and only once.
                offer = csat.offer_survey(session, conversation, trigger="customer_offered")
                if offer.survey is None:
                    return None, None, "already_rated" if offer.already_rated else "nothing_to_rate"
                survey = offer.survey
            csat.mark_asked(survey)
            ticket = session.get(Ticket, survey.ticket_id) if survey.ticket_id is not None else None
            asked_by = survey.trigger if survey_id is not None else "customer_offered"
            return survey.id, ticket.reference if ticket is not None else None, asked_by

        found, reference, trigger = await in_transaction(prepare)
        if found is None:
            if trigger == "already_rated":
                dispatcher.utter_message(text=ALREADY_RATED)
            elif trigger == "nothing_to_rate":
                dispatcher.utter_message(text=NOTHING_TO_RATE)
            return list(NO_SURVEY)
        if trigger == "customer_offered":
            dispatcher.utter_message(text="Thanks for taking a moment to rate us.")
        elif trigger == "agent_handback":
            dispatcher.utter_message(
                text="Thanks for talking with our team. One quick question before we carry on."
            )
        elif reference is not None:
            dispatcher.utter_message(
                text=f"Our team has resolved your ticket {reference}. We'd love to know how we did."
            )
        else:
            dispatcher.utter_message(text="Thanks for taking a moment to rate us.")
        return _start(found)


class ActionGoodbye(Action):
    """Says goodbye; after a real conversation, asks once for a rating first."""

    def name(self) -> str:
        return "action_goodbye"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if sentiment.is_frustrated(str(tracker.latest_message.get("text") or "")):
            # "it's just late and nobody tells me anything" is not a goodbye to rate: apologise and
            # offer a person instead.
            dispatcher.utter_message(text=FRUSTRATED, buttons=PERSON_BUTTONS)
            return [*NO_SURVEY, SlotSet("kb_state", OFFERED_PERSON)]

        def maybe_survey(session: Session) -> int | None:
            conversation = conversation_for(session, tracker)
            # Only after a real episode of service not asked about yet, and not twice in a day.
            episode = csat.latest_episode(session, conversation.id)
            if (
                episode is None
                or csat.survey_of_episode(session, episode.key) is not None
                or csat.is_rated(session, conversation.id, episode)
                or csat.recently_surveyed(session, conversation.id)
            ):
                return None
            offer = csat.offer_survey(session, conversation, trigger="conversation_end")
            if offer.survey is None:
                return None
            csat.mark_asked(offer.survey)
            return offer.survey.id

        survey_id = await in_transaction(maybe_survey)
        if survey_id is None:
            dispatcher.utter_message(response="utter_goodbye")
            return list(NO_SURVEY)
        dispatcher.utter_message(text="Before you go: could you rate this chat? It takes a second.")
        return _start(survey_id)


def _answers(tracker: Tracker, slot: str) -> bool:
    """Whether the latest message answers the question about `slot`. When the survey starts, the
    message that started it ("bye", or the scheduler's trigger) must not be taken as a rating."""
    return bool(tracker.get_slot("requested_slot") == slot)


class ValidateCsatForm(FormValidationAction):
    """Reads the rating (numbers, words, stars), asks again when it can't, lets the customer skip."""

    def name(self) -> str:
        return "validate_csat_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        survey_id = tracker.get_slot("csat_survey_id")
        if tracker.get_slot("csat_skipped") or survey_id is None:
            return []
        slots = [slot for slot in domain_slots if slot != "csat_contact"]
        score = tracker.get_slot("csat_score")
        # Before validation this is what the customer typed ("great", "four out of five"), not a number.
        if isinstance(score, (int, float)) and csat.is_low(int(score)):

            def reachable(session: Session) -> bool:
                survey = session.get(CsatSurvey, int(survey_id))
                return survey is None or csat.known_contact(session, survey) is not None

            if not await in_transaction(reachable):
                slots.append("csat_contact")
        return slots

    async def validate_csat_score(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if not _answers(tracker, "csat_score"):
            return {"csat_score": None}
        if csat.is_another_message(str(value or "")):
            # Not an answer but a message of its own: the survey ends quietly and the submit action
            # passes the message on to be answered.
            return {"csat_score": None, "csat_skipped": True}
        rating = csat.parse_rating(str(value or ""))
        if rating.score is not None:
            return {"csat_score": float(rating.score)}
        attempts = int(tracker.get_slot("csat_attempts") or 0) + 1
        if rating.problem == "skip" or attempts >= 3:
            return {"csat_score": None, "csat_skipped": True}
        if rating.problem == "out_of_range":
            dispatcher.utter_message(
                text="Please pick a whole number from 1 to 5: 1 is very poor, 5 is excellent."
            )
        else:
            dispatcher.utter_message(
                text='Sorry, I didn\'t get that. A number from 1 to 5 is all I need, or say "skip".'
            )
        return {"csat_score": None, "csat_attempts": float(attempts)}

    async def validate_csat_comment(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if not _answers(tracker, "csat_comment"):
            return {"csat_comment": None}
        text = str(value or "").strip()
        if csat.is_skip(text) or text.startswith("/"):
            return {"csat_comment": ""}
        return {"csat_comment": text[:2000]}

    async def validate_csat_contact(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if not _answers(tracker, "csat_contact"):
            return {"csat_contact": None}
        text = str(value or "").strip()
        contact = parse_contact(text)
        if contact is not None:
            return {"csat_contact": contact.email or text[:320]}
        if csat.is_skip(text) or text.startswith("/") or csat.is_another_message(text):
            return {"csat_contact": ""}
        dispatcher.utter_message(
            text='That doesn\'t look like an e-mail address or a phone number. Please type one, or say "no".'
        )
        return {"csat_contact": None}


class ActionAskCsatComment(Action):
    """Asks for an optional comment, worded by the score."""

    def name(self) -> str:
        return "action_ask_csat_comment"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        score = int(tracker.get_slot("csat_score") or 0)
        question = (
            "Thank you! Anything you'd like to add?"
            if score >= 4
            else "Thanks for being honest. What should we have done better?"
        )
        dispatcher.utter_message(text=question, buttons=[{"title": "No comment", "payload": "no comment"}])
        return []


class ActionSubmitCsat(Action):
    """Stores the rating; a 1 or 2 opens a follow-up for the support lead, and the customer is told."""

    def name(self) -> str:
        return "action_submit_csat"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        survey_id = tracker.get_slot("csat_survey_id")
        score = tracker.get_slot("csat_score")
        comment = tracker.get_slot("csat_comment")
        given_contact = tracker.get_slot("csat_contact") or None
        passed_on = score is None and csat.is_another_message(tracker.latest_message.get("text") or "")
        if survey_id is None:
            return list(RESET)

        def save(session: Session) -> tuple[str, str | None, str | None]:
            survey = session.get(CsatSurvey, int(survey_id))
            if survey is None:
                return "gone", None, None
            if score is None:
                survey.status = SurveyStatus.SKIPPED
                return "skipped", None, None
            follow_up = tickets.record_survey_answer(
                session, survey, int(score), comment, policy=sla_policy()
            )
            if follow_up is None:
                return "answered", None, None
            if given_contact and not follow_up.contact:
                follow_up.contact = given_contact
            return "answered", follow_up.reference, csat.known_contact(session, survey) or follow_up.contact

        outcome, follow_up, contact = await in_transaction(save)
        if passed_on:
            # The customer moved on to something else: no goodbye, their message is answered next.
            return [*RESET, *_hand_on(tracker)]
        if outcome == "skipped":
            dispatcher.utter_message(text="No problem. Thanks for chatting with us!")
        elif outcome == "gone":
            dispatcher.utter_message(response="utter_anything_else")
        elif follow_up is not None and contact is not None:
            how = f" at {given_contact}" if given_contact else ""
            dispatcher.utter_message(
                text=f"I'm sorry we let you down. I've passed your rating to our support lead as "
                f"{follow_up}, and they will get in touch with you personally{how}."
            )
        elif follow_up is not None:
            dispatcher.utter_message(
                text=f"Thank you for your feedback, and I'm sorry we let you down. I've passed it to our "
                f"support lead as {follow_up}, so that we can put it right. Without an e-mail or phone "
                f"number we can't contact you ourselves: if you'd like an answer, write to us here and "
                f"mention {follow_up}."
            )
        elif outcome == "answered":
            dispatcher.utter_message(text="Thank you for your feedback! It helps us get better.")
        return list(RESET)


def _hand_on(tracker: Tracker) -> list[EventType]:
    """The customer's latest message again, after a listen: the policies answer it as if no survey
    had been asked (as Rasa's own two-stage fallback re-plays a clarified message)."""
    message = tracker.latest_message
    replay = UserUttered(
        message.get("text"), parse_data=message, input_channel=tracker.get_latest_input_channel()
    )
    # Rasa reads these two from the event too: the actions that answer need the gateway's ids.
    replay["metadata"] = message.get("metadata") or {}
    replay["message_id"] = message.get("message_id")
    return [ActionExecuted("action_listen"), replay]
