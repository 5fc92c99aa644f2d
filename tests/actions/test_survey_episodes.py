"""Asking to rate the service: only a real service episode gets a survey, and only once."""

from __future__ import annotations

from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from actions.csat import ActionStartCsat, ActionSubmitCsat
from bot.crm import handoff
from bot.crm.models import (
    Agent,
    Conversation,
    ConversationMode,
    CsatSurvey,
    Handoff,
    SurveyStatus,
    Ticket,
    VerificationAttempt,
)
from tests.actions.test_csat import DOMAIN, tracker
from tests.support.chats import web_conversation


def counts(crm: sessionmaker[Session], conversation: Conversation) -> tuple[int, int]:
    """(surveys, low-rating follow-up tickets) of this chat."""
    with crm() as session:
        surveys = session.scalar(
            select(func.count()).select_from(CsatSurvey).where(CsatSurvey.conversation_id == conversation.id)
        )
        follow_ups = session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.conversation_id == conversation.id, Ticket.kind == "csat_follow_up")
        )
        return int(surveys or 0), int(follow_ups or 0)


async def ask_to_rate(conversation: Conversation) -> tuple[list[object], str]:
    dispatcher = CollectingDispatcher()
    events = await ActionStartCsat().run(dispatcher, tracker(conversation), DOMAIN)
    return events, " ".join(str(m.get("text")) for m in dispatcher.messages)


async def rate(conversation: Conversation, events: list[object], score: int) -> str:
    survey_id = [e["value"] for e in events if isinstance(e, dict) and e.get("name") == "csat_survey_id"][-1]
    dispatcher = CollectingDispatcher()
    done = tracker(conversation, csat_survey_id=survey_id, csat_score=float(score), csat_comment="")
    await ActionSubmitCsat().run(dispatcher, done, DOMAIN)
    return " ".join(str(m.get("text")) for m in dispatcher.messages)


async def test_an_anonymous_chat_with_nothing_to_rate_gets_no_survey_however_often_it_asks(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm, "rate-nothing")
    for _ in range(3):
        events, said = await ask_to_rate(conversation)
        assert events == [SlotSet("csat_offer", False)]
        assert "nothing in this chat to rate yet" in said and "person" in said
    assert counts(crm, conversation) == (0, 0)


async def test_a_served_chat_is_rated_once_then_thanked(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm, "rate-once")
    with crm.begin() as session:
        session.add(
            VerificationAttempt(conversation_id=conversation.id, order_number="100001", succeeded=True)
        )

    events, said = await ask_to_rate(conversation)
    assert SlotSet("csat_offer", True) in events and "rate us" in said
    assert "let you down" in await rate(conversation, events, 1)

    again, said_again = await ask_to_rate(conversation)
    assert again == [SlotSet("csat_offer", False)]
    assert "already rated this, thank you" in said_again
    assert counts(crm, conversation) == (1, 1)  # one survey, one follow-up for the lead


async def test_after_a_hand_back_the_rating_counts_once(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm, "rate-handback")
    with crm.begin() as session:
        agent = session.scalars(select(Agent).where(Agent.email == "ada@kefu.example")).one()
        session.add(Handoff(conversation_id=conversation.id, reason="customer_asked", agent_id=agent.id))
        chat = session.get_one(Conversation, conversation.id)
        chat.mode, chat.assigned_agent_id = ConversationMode.AGENT, agent.id
        session.flush()
        _, survey = handoff.hand_back(session, conversation.id, agent)
        assert survey is not None and survey.episode is not None and survey.episode.startswith("handoff:")
        queued = survey.id

    events, _ = await ask_to_rate(conversation)  # the customer asks before the bot does
    assert SlotSet("csat_survey_id", float(queued)) in events  # the hand-back's survey, not a new one
    await rate(conversation, events, 5)
    again, said = await ask_to_rate(conversation)
    assert again == [SlotSet("csat_offer", False)] and "already rated" in said
    with crm() as session:
        surveys = session.scalars(
            select(CsatSurvey).where(CsatSurvey.conversation_id == conversation.id)
        ).all()
        assert [(s.score, s.status) for s in surveys] == [(5, SurveyStatus.ANSWERED)]
