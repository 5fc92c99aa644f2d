"""Surveys in the chat: when to ask, reading the answer, and following up a low score."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions.csat import ActionGoodbye, ActionStartCsat, ActionSubmitCsat, ValidateCsatForm
from bot.crm import sla, tickets
from bot.crm.conversations import store_inbound
from bot.crm.models import Conversation, CsatSurvey, SurveyStatus, Ticket, TicketStatus, VerificationAttempt
from tests.support.chats import web_conversation
from tests.support.trackers import make_tracker

DOMAIN: dict[str, Any] = {"forms": {"csat_form": {"required_slots": ["csat_score", "csat_comment"]}}}


def tracker(
    conversation: Conversation, entities: list[dict[str, Any]] | None = None, **slots: Any
) -> Tracker:
    return make_tracker(
        conversation.sender_id,
        intent="goodbye",
        slots={
            "csat_survey_id": None,
            "csat_score": None,
            "csat_comment": None,
            "requested_slot": None,
            **slots,
        },
        entities=entities,
    )


def chat(crm: sessionmaker[Session], conversation: Conversation, messages: int) -> None:
    with crm.begin() as session:
        for n in range(messages):
            store_inbound(session, session.get_one(Conversation, conversation.id), f"message {n}")


def served(crm: sessionmaker[Session], conversation: Conversation) -> None:
    """The bot found an order for the customer after they proved it: a service episode."""
    with crm.begin() as session:
        session.add(
            VerificationAttempt(conversation_id=conversation.id, order_number="100001", succeeded=True)
        )


async def test_goodbye_asks_for_a_rating_after_a_real_chat_only_and_once(crm: sessionmaker[Session]) -> None:
    short = web_conversation(crm, "visitor-short")
    chat(crm, short, 4)  # chatting alone is no service episode
    dispatcher = CollectingDispatcher()
    assert await ActionGoodbye().run(dispatcher, tracker(short), DOMAIN) == [SlotSet("csat_offer", False)]
    assert dispatcher.messages[0]["response"] == "utter_goodbye"

    long = web_conversation(crm, "visitor-long")
    chat(crm, long, 2)
    served(crm, long)
    events = await ActionGoodbye().run(CollectingDispatcher(), tracker(long), DOMAIN)
    assert SlotSet("csat_offer", True) in events
    again = await ActionGoodbye().run(CollectingDispatcher(), tracker(long), DOMAIN)
    assert again == [SlotSet("csat_offer", False)]  # asked within the last 24 hours
    with crm() as session:
        surveys = session.scalars(select(CsatSurvey).where(CsatSurvey.conversation_id == long.id)).all()
        assert [(s.trigger, s.status) for s in surveys] == [("conversation_end", SurveyStatus.ASKED)]


async def test_the_scheduler_survey_starts_only_in_its_own_chat(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm, "visitor-ticket")
    with crm.begin() as session:
        ticket = tickets.open_ticket(
            session,
            kind="complaint",
            category="other",
            subject="s",
            actor="bot",
            conversation_id=conversation.id,
            policy=sla.default_policy(),
        )
        tickets.change_status(session, ticket, TicketStatus.RESOLVED, "agent:1", resolution="Done.")
        survey_id = session.scalars(select(CsatSurvey.id).where(CsatSurvey.ticket_id == ticket.id)).one()
        reference = ticket.reference
    entity = [{"entity": "csat_survey_id", "value": str(survey_id)}]
    stranger = web_conversation(crm, "visitor-stranger")
    assert await ActionStartCsat().run(CollectingDispatcher(), tracker(stranger, entity), DOMAIN) == [
        SlotSet("csat_offer", False)
    ]
    dispatcher = CollectingDispatcher()
    events = await ActionStartCsat().run(dispatcher, tracker(conversation, entity), DOMAIN)
    assert SlotSet("csat_offer", True) in events and SlotSet("csat_survey_id", float(survey_id)) in events
    assert reference in dispatcher.messages[0]["text"]


async def test_ratings_are_read_or_asked_again_and_skipping_is_allowed(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    form = ValidateCsatForm()
    asked = tracker(conversation, requested_slot="csat_score")
    for text, score in (("4", 4.0), ("three", 3.0), ("great", 5.0)):
        assert await form.validate_csat_score(text, CollectingDispatcher(), asked, DOMAIN) == {
            "csat_score": score
        }
    dispatcher = CollectingDispatcher()
    result = await form.validate_csat_score("7", dispatcher, asked, DOMAIN)
    assert result["csat_score"] is None and "from 1 to 5" in dispatcher.messages[0]["text"]
    assert (await form.validate_csat_score("skip", CollectingDispatcher(), asked, DOMAIN))[
        "csat_skipped"
    ] is True
    third_try = await form.validate_csat_score(
        "what?",
        CollectingDispatcher(),
        tracker(conversation, requested_slot="csat_score", csat_attempts=2.0),
        DOMAIN,
    )
    assert third_try["csat_skipped"] is True


async def test_the_message_that_starts_the_survey_is_not_taken_as_an_answer(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    form = ValidateCsatForm()
    starting = tracker(conversation)  # nothing asked yet: "bye" or the scheduler's trigger
    dispatcher = CollectingDispatcher()
    assert await form.validate_csat_score("bye", dispatcher, starting, DOMAIN) == {"csat_score": None}
    assert await form.validate_csat_comment("/EXTERNAL_csat_request", dispatcher, starting, DOMAIN) == {
        "csat_comment": None
    }
    assert dispatcher.messages == []
    comment = tracker(conversation, requested_slot="csat_comment")
    assert await form.validate_csat_comment("no comment", dispatcher, comment, DOMAIN) == {"csat_comment": ""}
    assert await form.validate_csat_comment("too slow", dispatcher, comment, DOMAIN) == {
        "csat_comment": "too slow"
    }


async def test_a_low_score_opens_a_follow_up_and_the_customer_is_told(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    chat(crm, conversation, 3)
    served(crm, conversation)
    await ActionGoodbye().run(CollectingDispatcher(), tracker(conversation), DOMAIN)
    with crm() as session:
        survey = session.scalars(
            select(CsatSurvey).where(CsatSurvey.conversation_id == conversation.id)
        ).one()
    dispatcher = CollectingDispatcher()
    await ActionSubmitCsat().run(
        dispatcher,
        tracker(conversation, csat_survey_id=float(survey.id), csat_score=2.0, csat_comment="slow"),
        DOMAIN,
    )
    with crm() as session:
        stored = session.get_one(CsatSurvey, survey.id)
        assert (stored.status, stored.score, stored.comment) == (SurveyStatus.ANSWERED, 2, "slow")
        follow_up = session.get_one(Ticket, stored.follow_up_ticket_id)
        assert follow_up.kind == "csat_follow_up" and follow_up.reference in dispatcher.messages[0]["text"]


async def _asked_survey(crm: sessionmaker[Session], conversation: Conversation) -> int:
    """A survey asked at the end of a real chat in `conversation`; returns its id."""
    chat(crm, conversation, 3)
    served(crm, conversation)
    await ActionGoodbye().run(CollectingDispatcher(), tracker(conversation), DOMAIN)
    with crm() as session:
        return session.scalars(
            select(CsatSurvey.id).where(CsatSurvey.conversation_id == conversation.id)
        ).one()


async def test_a_question_instead_of_a_rating_ends_the_survey_and_is_answered(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    survey_id = await _asked_survey(crm, conversation)
    question = "wait, so can I get a replacement chair or not??"
    asked = tracker(conversation, requested_slot="csat_score", csat_survey_id=float(survey_id))
    dispatcher = CollectingDispatcher()
    assert await ValidateCsatForm().validate_csat_score(question, dispatcher, asked, DOMAIN) == {
        "csat_score": None,
        "csat_skipped": True,
    }
    assert dispatcher.messages == []  # no "Sorry, I didn't get that"

    latest = make_tracker(
        conversation.sender_id,
        text=question,
        intent="ask_question",
        slots={"csat_survey_id": float(survey_id), "csat_skipped": True},
        metadata={"conversation_id": conversation.id, "message_id": 7},
    )
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitCsat().run(dispatcher, latest, DOMAIN)
    assert dispatcher.messages == []  # no "Thanks for chatting": the question comes first
    listen, replay = events[-2:]
    assert listen["event"] == "action" and listen["name"] == "action_listen"
    assert replay["event"] == "user" and replay["text"] == question
    assert replay["parse_data"]["intent"]["name"] == "ask_question"
    assert replay["metadata"]["message_id"] == 7
    assert SlotSet("csat_survey_id", None) in events
    with crm() as session:
        assert session.get_one(CsatSurvey, survey_id).status is SurveyStatus.SKIPPED


async def test_ratings_and_unclear_answers_are_not_taken_for_another_message(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    asked = tracker(conversation, requested_slot="csat_score")
    for text in ("hmm", "what?", "between 3 and 4 I guess"):
        dispatcher = CollectingDispatcher()
        result = await ValidateCsatForm().validate_csat_score(text, dispatcher, asked, DOMAIN)
        assert "csat_skipped" not in result and "from 1 to 5" in dispatcher.messages[0]["text"], text
    skipped = tracker(conversation, csat_survey_id=1.0, csat_skipped=True)
    events = await ActionSubmitCsat().run(CollectingDispatcher(), skipped, DOMAIN)
    assert all(event["event"] != "user" for event in events)


async def test_a_low_score_from_someone_we_cannot_reach_asks_for_a_contact(
    crm: sessionmaker[Session],
) -> None:
    anonymous = web_conversation(crm, "visitor-anonymous")
    survey_id = await _asked_survey(crm, anonymous)
    form = ValidateCsatForm()
    slots = ["csat_score", "csat_comment", "csat_contact"]
    low = tracker(anonymous, csat_survey_id=float(survey_id), csat_score=1.0)
    assert await form.required_slots(slots, CollectingDispatcher(), low, DOMAIN) == slots
    high = tracker(anonymous, csat_survey_id=float(survey_id), csat_score=4.0)
    assert await form.required_slots(slots, CollectingDispatcher(), high, DOMAIN) == slots[:2]

    asked = tracker(anonymous, requested_slot="csat_contact")
    assert await form.validate_csat_contact("pat@example.com", CollectingDispatcher(), asked, DOMAIN) == {
        "csat_contact": "pat@example.com"
    }
    assert await form.validate_csat_contact("no thanks", CollectingDispatcher(), asked, DOMAIN) == {
        "csat_contact": ""
    }

    dispatcher = CollectingDispatcher()
    answered = tracker(
        anonymous,
        csat_survey_id=float(survey_id),
        csat_score=1.0,
        csat_comment="slow",
        csat_contact="pat@example.com",
    )
    await ActionSubmitCsat().run(dispatcher, answered, DOMAIN)
    with crm() as session:
        follow_up = session.get_one(Ticket, session.get_one(CsatSurvey, survey_id).follow_up_ticket_id)
        assert follow_up.contact == "pat@example.com"
    assert "get in touch with you personally at pat@example.com" in dispatcher.messages[0]["text"]


async def test_a_customer_who_gives_no_contact_is_not_promised_a_call(crm: sessionmaker[Session]) -> None:
    anonymous = web_conversation(crm, "visitor-declines")
    survey_id = await _asked_survey(crm, anonymous)
    dispatcher = CollectingDispatcher()
    declined = tracker(anonymous, csat_survey_id=float(survey_id), csat_score=2.0, csat_contact="")
    await ActionSubmitCsat().run(dispatcher, declined, DOMAIN)
    said = dispatcher.messages[0]["text"]
    assert "get in touch" not in said and "can't contact you" in said
    with crm() as session:
        follow_up = session.get_one(Ticket, session.get_one(CsatSurvey, survey_id).follow_up_ticket_id)
        assert follow_up.contact is None and follow_up.reference in said
