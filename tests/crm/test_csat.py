"""Reading a satisfaction rating the way customers type it, and what happens to unanswered surveys."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session

from bot.crm import csat
from bot.crm.conversations import get_or_create_conversation
from bot.crm.models import SurveyStatus, utcnow
from bot.demo.seed import seed_demo_data


@pytest.mark.parametrize(
    ("text", "score", "problem"),
    [
        ("4", 4, None),
        ("4/5", 4, None),
        ("8 out of 10", 4, None),
        ("three", 3, None),
        ("four out of five", 4, None),
        ("two of 5", 2, None),
        ("I'd give it a 2", 2, None),
        ("5 stars", 5, None),
        ("★★★★", 4, None),
        ("great", 5, None),
        ("not great", 2, None),
        ("not bad", 3, None),
        ("terrible", 1, None),
        ("7", None, "out_of_range"),
        ("0", None, "out_of_range"),
        ("-1", None, "out_of_range"),
        ("1.5", None, "out_of_range"),
        ("3 or 4", None, "not_understood"),
        ("hmm", None, "not_understood"),
        ("skip", None, "skip"),
        ("no thanks", None, "skip"),
    ],
)
def test_ratings_in_numbers_words_and_stars(text: str, score: int | None, problem: str | None) -> None:
    rating = csat.parse_rating(text)
    assert (rating.score, rating.problem) == (score, problem)


def test_unanswered_surveys_expire_and_a_chat_is_not_asked_twice_a_day(db_session: Session) -> None:
    seed_demo_data(db_session, date(2026, 11, 20))
    conversation = get_or_create_conversation(db_session, "web", "visitor-csat")
    assert not csat.recently_surveyed(db_session, conversation.id)
    survey = csat.request_survey(db_session, trigger="conversation_end", conversation=conversation)
    assert survey is not None and survey.status is SurveyStatus.PENDING
    assert csat.recently_surveyed(db_session, conversation.id)
    csat.mark_asked(survey, utcnow() - timedelta(hours=25))
    db_session.flush()
    assert csat.expire_unanswered(db_session) == 1 and survey.status is SurveyStatus.SKIPPED
    with pytest.raises(ValueError, match="1-5"):
        csat.record_answer(db_session, survey, 6, None)


def test_a_survey_without_a_channel_is_recorded_as_undeliverable(db_session: Session) -> None:
    survey = csat.request_survey(db_session, trigger="ticket_resolved")
    assert survey is not None and survey.status is SurveyStatus.UNDELIVERABLE
